"""Run a coroutine eagerly: synchronously until it first waits.

Most plugin chains finish without waiting for anything (a cache hit, a
token already verified, a rate limit counted in memory), so creating a task
per request and a trip through the event loop would be pure overhead. The
coroutine is stepped once right away; only when it suspends is the rest
handed to a task, which takes over the very future it is waiting on.
(Python 3.12 has ``eager_start`` for this; we support 3.11.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any


def run_eagerly(coro: Coroutine[Any, Any, None], loop: asyncio.AbstractEventLoop) -> None:
    """Start ``coro`` now; if it suspends, a task finishes it."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return
    except BaseException:
        coro.close()
        raise
    if getattr(waiting_on, "_asyncio_future_blocking", False):
        # What a task does at once with a yielded future: until this is
        # cleared, another coroutine awaiting the same future fails ("await
        # wasn't used with future"). _Resumed sets it again for the task.
        waiting_on._asyncio_future_blocking = False
    loop.create_task(_finish(coro, waiting_on))


async def _finish(coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
    await _Resumed(coro, waiting_on)


class _Resumed:
    """Awaitable that continues an already started coroutine inside a task."""

    __slots__ = ("_coro", "_waiting_on")

    def __init__(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, None]:
        coro = self._coro
        # Yield what the coroutine yielded (the future it waits on, or None for
        # a bare yield), so the task waits on it; then pass whatever the task
        # sends or throws in. A future's "await me" flag, cleared by
        # run_eagerly(), is set again so the task accepts it.
        value = self._waiting_on
        if getattr(value, "_asyncio_future_blocking", None) is False:
            value._asyncio_future_blocking = True
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    value = coro.send(sent)
                except StopIteration:
                    return
