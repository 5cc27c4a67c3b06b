"""Messages between the supervisor and one worker, over a Unix socketpair.

A frame is a 4-byte big-endian length and a pickled dict. Every message has
a ``type``. A message with an ``id`` asks for an answer: the receiving side
runs its handler and sends back ``{"type": "reply", "reply_to": id, ...}``
(or ``{"error": ...}`` when the handler failed or does not know the type).

Pickle, not JSON, because the first message carries the validated config
object itself (secrets and all, exactly as the supervisor checked it). Both
ends are processes of the same installation started by the supervisor, and
the socketpair is never reachable by anyone else, so nothing untrusted is
ever unpickled.

Types so far: worker -> supervisor ``standby`` (imports done), ``ready``
(accepting), ``metrics_final`` (a drained worker's last counts);
supervisor -> worker ``config``, ``stats``, ``stop``, ``metrics`` and
``metrics_reset`` (observability/snapshot.py). Later
commands (breaker trip, target weights, cache purge) are further types that
the supervisor sends to every worker with ``request`` (Supervisor.broadcast),
and that a worker answers in ``Worker.handle``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import pickle
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

Message = dict[str, Any]
Handler = Callable[[Message], Awaitable[Message | None]]

_HEADER = struct.Struct("!I")
# A config is a few hundred KB at most; anything larger is a broken stream.
MAX_FRAME = 64 * 1024 * 1024


class ChannelClosed(ConnectionError):
    """The other side went away (its process exited or closed the channel)."""


class Channel:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._reading: asyncio.Task[None] | None = None
        self.closed = False

    @classmethod
    async def open(cls, sock: socket.socket) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock)
        return cls(reader, writer)

    def send(self, message: Message) -> None:
        if self.closed:
            raise ChannelClosed("the channel is closed")
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(_HEADER.pack(len(payload)) + payload)

    async def receive(self) -> Message | None:
        """The next message, or None once the other side has gone (or sent garbage)."""
        try:
            header = await self._reader.readexactly(_HEADER.size)
            (length,) = _HEADER.unpack(header)
            if length > MAX_FRAME:
                return None  # not our framing: nothing after this can be trusted
            message = pickle.loads(await self._reader.readexactly(length))
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        return message if isinstance(message, dict) else None

    async def request(self, message: Message, within: float) -> Message:
        """Send ``message`` and wait for its reply (needs ``serve`` running)."""
        ident = next(self._ids)
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        try:
            self.send({**message, "id": ident})
            async with asyncio.timeout(within):
                return await future
        finally:
            self._waiting.pop(ident, None)

    def serve(self, handler: Handler, on_close: Callable[[], None] | None = None) -> None:
        """Read messages in a task: replies resolve ``request``, the rest go to ``handler``."""
        self._reading = asyncio.get_running_loop().create_task(self._serve(handler, on_close))

    async def _serve(self, handler: Handler, on_close: Callable[[], None] | None) -> None:
        try:
            while (message := await self.receive()) is not None:
                if message.get("type") == "reply":
                    future = self._waiting.get(message.get("reply_to", -1))
                    if future is not None and not future.done():
                        future.set_result(message)
                    continue
                await self._answer(handler, message)
        finally:
            self._close_transport()
            if on_close is not None:
                on_close()

    async def _answer(self, handler: Handler, message: Message) -> None:
        ident = message.get("id")
        try:
            reply = await handler(message)
        except Exception as exc:  # a failing command must not end the channel
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        if ident is not None and not self.closed:
            reply = reply if reply is not None else {"error": f"unknown type {message['type']!r}"}
            self.send({**reply, "type": "reply", "reply_to": ident})

    def _close_transport(self) -> None:
        if self.closed:
            return
        self.closed = True
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ChannelClosed("the other side went away"))
        self._writer.close()

    async def close(self) -> None:
        self._close_transport()
        if self._reading is not None and self._reading is not asyncio.current_task():
            self._reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reading
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()
