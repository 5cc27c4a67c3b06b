"""run_eagerly: a coroutine runs at once; if it waits, a task takes it over."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from propylon.server.eager import run_eagerly

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


def run(make_loop: Callable[[], asyncio.AbstractEventLoop], main: Coroutine[Any, Any, Any]) -> Any:
    loop = make_loop()
    try:
        return loop.run_until_complete(main)
    finally:
        loop.close()


@pytest.fixture(params=list(LOOPS))
def make_loop(request: pytest.FixtureRequest) -> Callable[[], asyncio.AbstractEventLoop]:
    return LOOPS[request.param]


def test_a_coroutine_that_never_waits_finishes_before_run_eagerly_returns(make_loop) -> None:
    done: list[str] = []

    async def quick() -> None:
        done.append("quick")

    async def main() -> list[str]:
        run_eagerly(quick(), asyncio.get_running_loop())
        return list(done)  # already, without yielding to the loop

    assert run(make_loop, main()) == ["quick"]


def test_many_coroutines_may_wait_on_one_future(make_loop) -> None:
    """The first eager step leaves the future's await flag as a task would."""
    results: list[int] = []

    async def main() -> list[int]:
        loop = asyncio.get_running_loop()
        shared: asyncio.Future[int] = loop.create_future()

        async def waiter() -> None:
            results.append(await shared)

        for _ in range(3):
            run_eagerly(waiter(), loop)
        loop.call_later(0.01, shared.set_result, 7)
        await asyncio.sleep(0.05)
        return results

    assert run(make_loop, main()) == [7, 7, 7]


def test_after_waiting_the_coroutine_runs_in_a_task(make_loop) -> None:
    seen: list[object] = []

    async def slow() -> None:
        seen.append(asyncio.current_task())
        await asyncio.sleep(0)  # a bare yield
        seen.append(asyncio.current_task())
        try:
            async with asyncio.timeout(0.01):  # needs the task
                await asyncio.sleep(1)
        except TimeoutError:
            seen.append("timed out")

    async def main() -> None:
        run_eagerly(slow(), asyncio.get_running_loop())
        await asyncio.sleep(0.1)

    run(make_loop, main())
    assert seen[0] is not None  # main's task: the eager step ran inside it
    assert seen[1] is not None
    assert seen[1] is not seen[0]
    assert seen[2] == "timed out"


def test_exceptions_before_and_after_waiting(make_loop) -> None:
    caught: list[str] = []

    async def failing(wait: bool) -> None:
        try:
            if wait:
                await asyncio.sleep(0.001)
            raise ValueError("boom")
        except ValueError:
            caught.append(f"wait={wait}")

    async def main() -> None:
        loop = asyncio.get_running_loop()
        run_eagerly(failing(False), loop)
        run_eagerly(failing(True), loop)
        await asyncio.sleep(0.05)

    run(make_loop, main())
    assert caught == ["wait=False", "wait=True"]


def test_cancelling_the_task_reaches_the_coroutine(make_loop) -> None:
    events: list[str] = []

    async def sleeper() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            events.append("cancelled")
            raise

    async def main() -> None:
        loop = asyncio.get_running_loop()
        before = asyncio.all_tasks(loop)
        run_eagerly(sleeper(), loop)
        (task,) = asyncio.all_tasks(loop) - before
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(make_loop, main())
    assert events == ["cancelled"]
