"""Rate limit plugins: request limits (after auth) and the failed-login limiter
(before auth). Semantics in docs/rate-limits.md.

``rate-limit`` (priority 900, below auth's 1000: it keys on the identity)
decides every limit that applies to a request in one backend call: the
global per-IP limit, per user, the consumer's tier and the route's own. All
must pass. Responses carry the RateLimit-* headers of the most restrictive
limit; a 429 names the limit that was hit, never its key.

``failed-login`` (priority 1500, above auth) rejects a client that has run
out of failed attempts before auth even looks at its credentials, so the
right password does not help during the lockout. It counts only failures:
the gateway's own 401s (auth/events.py) and 401/403 from the upstream of
routes listed in ``rate_limits.failed_login.routes``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, ClassVar

from propylon.config.ratelimit import RateLimitsConfig
from propylon.plugins.base import Plugin, RequestContext
from propylon.ratelimit.memory import ALL, PEEK
from propylon.ratelimit.rules import subject_text
from propylon.ratelimit.service import RedisDown, limiter_for
from propylon.server.http import Header, Response, problem

if TYPE_CHECKING:
    from collections.abc import Callable

    from propylon.auth.events import AuthFailure
    from propylon.config.models import GatewayConfig, RouteConfig
    from propylon.ratelimit.gcra import Policy, Verdict
    from propylon.ratelimit.rules import Rule
    from propylon.ratelimit.service import RateLimiter

log = logging.getLogger("propylon.ratelimit")


def rate_limit_plugins(config: GatewayConfig, route: RouteConfig | None) -> list[Plugin]:
    if route is None or route.rate_limit is False:
        return []
    limiter = limiter_for(config)
    if not limiter.enabled:
        return []
    plugins: list[Plugin] = []
    rules = [limiter.global_rule, limiter.user_rule, *limiter.route_rules(route)]
    present = [rule for rule in rules if rule is not None]
    if present or limiter.tier_rules:
        plugins.append(RateLimitPlugin(limiter, present))
    failed = limiter.settings.failed_login
    if failed is not False and limiter.login_policy is not None:
        upstream_login = route.name in failed.routes
        gateway_auth = failed.gateway_auth and route.auth.required
        if upstream_login or gateway_auth:
            plugins.append(FailedLoginPlugin(limiter, route, upstream_login, gateway_auth))
    return plugins


def too_many(ctx: RequestContext, verdict: Verdict, headers: list[Header]) -> Response:
    policy = verdict.policy
    headers.append((b"retry-after", b"%d" % verdict.retry_after))
    return problem(
        429,
        f"rate limit {policy.name} ({policy.count} per {_window(policy.window)}) exceeded; "
        f"retry in {verdict.retry_after} s",
        ctx.request_id,
        kind="rate-limited",
        headers=headers,
    )


def unavailable(ctx: RequestContext) -> Response:
    return problem(
        503,
        "rate limits cannot be checked right now",
        ctx.request_id,
        kind="rate-limiter-unavailable",
        headers=[(b"retry-after", b"1")],
    )


def _window(seconds: float) -> str:
    from propylon.config.units import format_duration

    return format_duration(seconds)


def header_lines(verdict: Verdict, policies: list[Policy]) -> list[Header]:
    policy = verdict.policy
    if len(policies) == 1:
        listed = policy.header_policy
    else:
        listed = b", ".join(p.header_policy for p in policies)
    return [
        (b"ratelimit-limit", b"%d" % policy.burst),
        (b"ratelimit-remaining", b"%d" % verdict.remaining),
        (b"ratelimit-reset", b"%d" % verdict.reset),
        (b"ratelimit-policy", listed),
    ]


class RateLimitPlugin(Plugin):
    name: ClassVar[str] = "rate-limit"
    priority: ClassVar[int] = 900
    config_model = RateLimitsConfig

    def __init__(self, limiter: RateLimiter, rules: list[Rule]) -> None:
        self._limiter = limiter
        self._rules = tuple(rules)
        # Without an identity, rules keyed on the user or consumer never apply.
        self._anonymous = tuple(rule for rule in rules if not rule.needs_identity)
        self._tiers = limiter.tier_rules
        self._bypass = limiter.bypass
        self._headers = limiter.settings.headers
        self._sync = limiter.sync
        # Verdicts of requests in flight, for their response headers.
        self._pending: dict[RequestContext, tuple[Verdict, list[Policy]]] = {}

    async def start(self) -> None:
        await self._limiter.start()

    async def close(self) -> None:
        await self._limiter.close()

    async def on_request(self, ctx: RequestContext) -> Response | None:
        identity = ctx.identity
        tier_rule: Rule | None = None
        rules = self._anonymous
        if identity is not None:
            if self._bypass and not self._bypass.isdisjoint(identity.roles):
                ctx.note("rate_limit", {"result": "bypass"})
                return None
            if identity.tier is not None and identity.consumer_id is not None:
                tier_rule = self._tiers.get(identity.tier)
            rules = self._rules
        policies: list[Policy] = []
        keys: list[str] = []
        for rule in rules:
            key = rule.key(ctx)
            if key is not None:
                policies.append(rule.policy)
                keys.append(key)
        if tier_rule is not None:
            key = tier_rule.key(ctx)
            if key is not None:
                policies.append(tier_rule.policy)
                keys.append(key)
        if not keys:
            return None
        if self._sync:
            verdict: Verdict | None = self._limiter.decide_memory(policies, keys, ALL)
        else:
            try:
                verdict = await self._limiter.decide(policies, keys, ALL)
            except RedisDown:
                return unavailable(ctx)
            if verdict is None:
                return None  # Redis failed and on_redis_error: allow
        assert verdict is not None
        ctx.note(
            "rate_limit",
            {
                "limit": verdict.policy.name,
                "result": "allowed" if verdict.allowed else "rejected",
                "remaining": verdict.remaining,
            },
        )
        if not verdict.allowed:
            headers = header_lines(verdict, policies) if self._headers else []
            return too_many(ctx, verdict, headers)
        if self._headers:
            self._pending[ctx] = (verdict, policies)
        return None

    def on_response(self, ctx: RequestContext, status: int, headers: list[Header]) -> None:
        pending = self._pending.pop(ctx, None)
        if pending is not None:
            headers.extend(header_lines(*pending))

    def on_log(self, ctx: RequestContext) -> None:
        if self._pending:
            self._pending.pop(ctx, None)


class FailedLoginPlugin(Plugin):
    name: ClassVar[str] = "failed-login"
    priority: ClassVar[int] = 1500
    config_model = RateLimitsConfig

    def __init__(
        self, limiter: RateLimiter, route: RouteConfig, upstream_login: bool, gateway_auth: bool
    ) -> None:
        settings = limiter.settings.failed_login
        assert settings is not False
        assert limiter.login_policy is not None
        self._limiter = limiter
        self._policy = limiter.login_policy
        self._route = route.name
        self._by_ip = "ip" in settings.by
        self._by_user = "username" in settings.by
        header = settings.username_header
        self._user_header = header.lower().encode() if header else None
        self._upstream_login = upstream_login
        self._gateway_auth = gateway_auth
        self._unsubscribe: Callable[[], None] | None = None
        # Usernames of requests in flight, for counting a failure that auth reports.
        self._usernames: dict[str, str] = {}

    async def start(self) -> None:
        await self._limiter.start()
        if self._gateway_auth and self._unsubscribe is None:
            # Imported here: the auth package is loaded only by configs using auth.
            from propylon.auth.events import auth_failures

            self._unsubscribe = auth_failures.subscribe(self._on_auth_failure)

    async def close(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self._limiter.close()

    def _keys(self, client_ip: str, username: str | None) -> list[str]:
        keys = []
        if self._by_ip:
            keys.append("failed_login:ip:" + client_ip)
        if username is not None:
            keys.append("failed_login:user:" + username)
        return keys

    def _username(self, ctx: RequestContext) -> str | None:
        if self._user_header is None:
            return None
        raw = ctx.request_header(self._user_header)
        return subject_text(raw.strip().lower()) if raw else None

    async def on_request(self, ctx: RequestContext) -> Response | None:
        username = self._username(ctx) if self._by_user else None
        keys = self._keys(ctx.client_ip, username)
        if not keys:
            return None
        if username is not None and self._gateway_auth:
            self._usernames[ctx.request_id.decode("ascii", "replace")] = username
        policies = [self._policy] * len(keys)
        limiter = self._limiter
        try:
            if limiter.sync:
                verdict: Verdict | None = limiter.decide_memory(policies, keys, PEEK)
            else:
                verdict = await limiter.decide(policies, keys, PEEK)
        except RedisDown:
            return unavailable(ctx)
        if verdict is None or verdict.allowed:
            return None
        return too_many(ctx, verdict, [])

    def _on_auth_failure(self, failure: AuthFailure) -> None:
        if failure.route != self._route:
            return
        username = self._usernames.pop(failure.request_id, None)
        self._count(self._keys(failure.client_ip, username))

    def on_log(self, ctx: RequestContext) -> None:
        if self._usernames:
            self._usernames.pop(ctx.request_id.decode("ascii", "replace"), None)
        if (
            self._upstream_login
            and ctx.status in (401, 403)
            and (not self._gateway_auth or ctx.identity is not None)
        ):
            # The upstream's own answer (the gateway's auth failures come as events).
            keys = self._keys(ctx.client_ip, self._username(ctx) if self._by_user else None)
            self._count(keys)

    def _count(self, keys: list[str]) -> None:
        if not keys:
            return
        limiter = self._limiter
        if limiter.sync:
            from propylon.ratelimit.memory import EACH

            limiter.memory.decide([self._policy] * len(keys), keys, EACH)
            return
        limiter.spawn(limiter.record(self._policy, keys))
