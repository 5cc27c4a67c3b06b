"""Which limits apply to a request, and the bucket key of each.

Everything is decided at load: each rule knows its policy and how to build
its key with a couple of string operations. A key is ``NAME:SUBJECT``, the
subject being the rule's ``by`` parts joined by ``|``; the Redis backend
puts its hash tag in front. A rule whose part is missing on a request (no
user, no such header) does not apply to it.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from propylon.ratelimit.gcra import Policy

if TYPE_CHECKING:
    from propylon.config.ratelimit import LimitSpec
    from propylon.plugins.base import RequestContext

_MAX_PART = 128  # longer header values are hashed: a key must stay small


def policy_for(name: str, spec: LimitSpec) -> Policy:
    rate = spec.rate
    return Policy(name=name, count=rate.limit, window=rate.window, burst=spec.burst or rate.limit)


class Rule:
    """One limit with its key parts."""

    __slots__ = ("_headers", "_ip_only", "_parts", "_prefix", "needs_identity", "policy")

    def __init__(self, policy: Policy, parts: list[str]) -> None:
        self.policy = policy
        self._prefix = policy.name + ":"
        self._parts = tuple(parts)
        self._ip_only = self._parts == ("ip",)
        self.needs_identity = "user" in parts or "consumer" in parts
        self._headers = {p: p[7:].encode() for p in parts if p.startswith("header:")}

    def key(self, ctx: RequestContext) -> str | None:
        if self._ip_only:
            return self._prefix + ctx.client_ip
        values: list[str] = []
        for part in self._parts:
            value = self._part(ctx, part)
            if value is None:
                return None
            values.append(value)
        return self._prefix + "|".join(values)

    def _part(self, ctx: RequestContext, part: str) -> str | None:
        if part == "ip":
            return ctx.client_ip
        if part == "route":
            return ctx.route_name
        identity = ctx.identity
        if part == "user":
            return identity.user_id if identity is not None else None
        if part == "consumer":
            return identity.consumer_id if identity is not None else None
        raw = ctx.request_header(self._headers[part])
        if raw is None:
            return None
        return subject_text(raw)


def subject_text(raw: bytes) -> str:
    """A client-chosen value as a key part: short as is, else its hash."""
    if len(raw) <= _MAX_PART and b"|" not in raw:
        return raw.decode("latin-1")
    return "#" + hashlib.blake2b(raw, digest_size=16).hexdigest()
