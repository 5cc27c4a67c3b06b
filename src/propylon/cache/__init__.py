"""Response caching: keys, the HTTP rules of RFC 9111, stores, collapsing, stats.

The plugin (plugins/cache.py) is the data-plane side; ``CacheRuntime``
(runtime.py) is what all cached routes of one config share in a worker.
"""
