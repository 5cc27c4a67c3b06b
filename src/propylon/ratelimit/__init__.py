"""Distributed rate limiting: GCRA (gcra.py), a memory and a Redis backend,
the limiter of a config (service.py) and operations (ops.py).

The plugins live in plugins/rate_limit.py; docs/rate-limits.md has the
semantics.
"""
