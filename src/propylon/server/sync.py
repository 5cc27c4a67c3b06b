"""Spreading run-time state changes to other workers and nodes.

A breaker transition or a target change (weight, drain) made in one worker
becomes an *event*. The hub hands every local event to its sinks (Redis
pub/sub across nodes; the supervisor channel across the workers of a node)
and applies events arriving from them without publishing them again. Redis
is never on the request path: publishing is a fire-and-forget task.

Events are small dicts:
    {"kind": "breaker", "service": "crm", "state": "OPEN", "reason": "..."}
    {"kind": "target", "service": "crm", "target": "blue", "weight": 0, "draining": true}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from propylon.config.redis import RedisConfig
    from propylon.server.upstream.breaker import Transition
    from propylon.server.upstream.service import ServiceRuntime
    from propylon.server.upstream.target import Target

log = logging.getLogger("propylon.sync")

Event = dict[str, Any]
Sink = Callable[[Event], None]


class EventHub:
    def __init__(self, services: dict[str, ServiceRuntime]) -> None:
        self.origin = f"{os.getpid()}-{os.urandom(4).hex()}"
        self.services = services
        self.sinks: list[Sink] = []
        # Other kinds of events, by kind (e.g. "cache" invalidations, cache/runtime.py).
        self.handlers: dict[str, Sink] = {}
        for service in services.values():
            service.breaker.add_observer(self._on_transition)
            service.add_observer(self._on_target_change)

    def _on_transition(self, transition: Transition) -> None:
        if transition.remote or transition.to_state == "HALF_OPEN":
            return  # every worker finds its own way from OPEN to HALF_OPEN
        self._publish(
            {
                "kind": "breaker",
                "service": transition.service,
                "state": transition.to_state,
                "reason": transition.reason,
            }
        )

    def _on_target_change(self, service: ServiceRuntime, target: Target) -> None:
        self._publish(
            {
                "kind": "target",
                "service": service.name,
                "target": target.id,
                "weight": target.weight,
                "draining": target.draining,
            }
        )

    def publish(self, event: Event) -> None:
        """Hand a local event of another kind (see ``handlers``) to the sinks."""
        self._publish(event)

    def _publish(self, event: Event) -> None:
        event["origin"] = self.origin
        for sink in self.sinks:
            try:
                sink(event)
            except Exception:
                log.exception("publishing a state event failed")

    def apply(self, event: Event) -> None:
        """Apply an event from another worker or node (never re-published)."""
        if event.get("origin") == self.origin:
            return
        handler = self.handlers.get(str(event.get("kind")))
        if handler is not None:
            try:
                handler(event)
            except Exception:
                log.exception("applying a %s event failed", event.get("kind"))
            return
        service = self.services.get(str(event.get("service")))
        if service is None:
            return  # a service this config does not have (another config version)
        try:
            if event.get("kind") == "breaker":
                state = str(event["state"])
                service.breaker.apply_remote(state, f"from another worker: {event.get('reason')}")
            elif event.get("kind") == "target":
                target_id = str(event["target"])
                service.set_weight(target_id, int(event["weight"]), remote=True)
                service.set_draining(target_id, bool(event["draining"]), remote=True)
        except (KeyError, ValueError, TypeError) as exc:
            log.warning("ignored a malformed state event %r: %s", event, exc)


class RedisEvents:
    """Pub/sub of hub events over Redis, reconnecting in the background."""

    def __init__(self, hub: EventHub, config: RedisConfig) -> None:
        self.hub = hub
        self.config = config
        self.channel = config.key_prefix + "events"
        self._client: aioredis.Redis | None = None
        self._listener: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Task[None]] = set()
        self.connected = asyncio.Event()

    def start(self) -> None:
        import redis.asyncio as aioredis

        self._client = aioredis.Redis.from_url(
            self.config.url,
            socket_timeout=self.config.timeout,
            socket_connect_timeout=self.config.timeout,
        )
        self.hub.sinks.append(self.publish)
        self._listener = asyncio.get_running_loop().create_task(self._listen())

    def publish(self, event: Event) -> None:
        task = asyncio.get_running_loop().create_task(self._send(json.dumps(event)))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, payload: str) -> None:
        assert self._client is not None
        try:
            await self._client.publish(self.channel, payload)
        except Exception as exc:  # Redis down: the local change stands
            log.warning("could not publish a state event to Redis: %s", exc)

    async def _listen(self) -> None:
        import redis.asyncio as aioredis

        # Its own client: a subscriber blocks on reads, which the publisher's
        # short socket timeout would cut.
        subscriber = aioredis.Redis.from_url(
            self.config.url, socket_connect_timeout=self.config.timeout
        )
        delay = 0.1
        try:
            await self._subscribe_loop(subscriber, delay)
        finally:
            with contextlib.suppress(Exception):
                await subscriber.aclose()

    async def _subscribe_loop(self, subscriber: aioredis.Redis, delay: float) -> None:
        while True:
            pubsub = subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.connected.set()
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    with contextlib.suppress(ValueError):
                        event = json.loads(message["data"])
                        if isinstance(event, dict):
                            self.hub.apply(event)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.connected.clear()
                log.warning("Redis state events interrupted (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
