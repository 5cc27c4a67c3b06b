"""Authentication failures as in-process events.

Every 401 the auth plugin sends is published here; a failed-login limiter
subscribes to count them per client. Subscribers are plain callables run
synchronously in the request's task, so they must be quick (schedule a task
for I/O). A subscriber that raises is logged and skipped: a broken listener
must not turn a 401 into a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("propylon.auth")


@dataclass(frozen=True, slots=True)
class AuthFailure:
    route: str
    client_ip: str
    request_id: str
    kind: Literal["missing", "invalid"]
    method: str | None  # the credential that failed: "jwt", "api_key"; None when missing
    reason: str  # for logs and limiters; never sent to the client


Subscriber = Callable[[AuthFailure], None]


class FailureHook:
    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it again."""
        self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    def publish(self, failure: AuthFailure) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(failure)
            except Exception as exc:
                log.error("an auth failure subscriber failed: %s", type(exc).__name__)


# One per process: limiters subscribe here whatever config or route they serve.
auth_failures = FailureHook()
