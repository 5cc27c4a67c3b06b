"""The supervisor <-> worker channel: framed messages, requests and replies, EOF."""

from __future__ import annotations

import asyncio
import socket
import struct
from typing import Any

import pytest

from propylon.cluster.channel import MAX_FRAME, Channel, ChannelClosed, Message


async def _pair() -> tuple[Channel, Channel]:
    left, right = socket.socketpair()
    return await Channel.open(left), await Channel.open(right)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_messages_arrive_whole_and_in_order() -> None:
    async def scenario() -> list[Message | None]:
        a, b = await _pair()
        big = "x" * 1_000_000
        for index in range(3):
            a.send({"type": "note", "n": index, "payload": big if index == 1 else ""})
        received = [await b.receive() for _ in range(3)]
        await a.close()
        received.append(await b.receive())  # EOF
        await b.close()
        return received

    first, second, third, end = _run(scenario())
    assert [m["n"] for m in (first, second, third) if m] == [0, 1, 2]
    assert second is not None
    assert len(second["payload"]) == 1_000_000
    assert end is None


def test_request_gets_the_reply_of_the_handler() -> None:
    async def scenario() -> tuple[Message, Message]:
        a, b = await _pair()

        async def handler(message: Message) -> Message | None:
            if message["type"] == "stats":
                return {"requests": 7}
            return None

        b.serve(handler)
        a.serve(handler)
        stats = await a.request({"type": "stats"}, within=1.0)
        unknown = await a.request({"type": "trip-breaker"}, within=1.0)
        await a.close()
        await b.close()
        return stats, unknown

    stats, unknown = _run(scenario())
    assert stats["requests"] == 7
    assert unknown["error"] == "unknown type 'trip-breaker'"


def test_a_failing_handler_answers_an_error_and_keeps_serving() -> None:
    async def scenario() -> tuple[Message, Message]:
        a, b = await _pair()

        async def handler(message: Message) -> Message | None:
            if message["type"] == "boom":
                raise ValueError("no such breaker")
            return {"ok": True}

        b.serve(handler)
        a.serve(handler)
        failed = await a.request({"type": "boom"}, within=1.0)
        fine = await a.request({"type": "ping"}, within=1.0)
        await a.close()
        await b.close()
        return failed, fine

    failed, fine = _run(scenario())
    assert failed["error"] == "ValueError: no such breaker"
    assert fine["ok"] is True


def test_a_pending_request_fails_when_the_other_side_goes() -> None:
    async def scenario() -> None:
        a, b = await _pair()

        async def silent(message: Message) -> Message | None:
            await b.close()  # the worker dies before answering
            return None

        b.serve(silent)
        closed: list[bool] = []
        a.serve(silent, on_close=lambda: closed.append(True))
        with pytest.raises(ChannelClosed):
            await a.request({"type": "stats"}, within=2.0)
        await asyncio.sleep(0)
        assert closed == [True]
        await a.close()

    _run(scenario())


def test_an_oversized_frame_ends_the_channel() -> None:
    async def scenario() -> Message | None:
        left, right = socket.socketpair()
        channel = await Channel.open(right)
        left.sendall(struct.pack("!I", MAX_FRAME + 1))
        received = await channel.receive()
        left.close()
        await channel.close()
        return received

    assert _run(scenario()) is None
