"""Turn what the loop handed over into log lines (runs in the writer thread).

Access entries arrive as a tuple of plain values (``access_entry``, the
only part that runs on the loop); the record, its timestamp, JSON and
redaction are made here, off the loop.
App entries are stdlib ``LogRecord``s, rendered by structlog's
ProcessorFormatter.

Plugins note their outcome on the exchange (``ctx.note("cache", "HIT")``,
``ctx.note("rate_limit", {...})``); those two fields are formatted in place.
``ACCESS_FIELDS`` maps further fields to a function of the exchange, called
on the loop when the exchange ends (keep them to an attribute read).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
import structlog

from propylon.observability.timestamps import iso, iso_fast

if TYPE_CHECKING:
    from propylon.server.exchange_base import ExchangeBase

REDACTED = "[REDACTED]"
_REDACTED_BYTES = REDACTED.encode()
# Further fields beyond the documented ones (cache and rate_limit come from notes).
ACCESS_FIELDS: dict[str, Callable[[ExchangeBase], object]] = {}
# "Authorization: Bearer x", "api_key=x", "Cookie: a=b" in free text (app logs).
_SECRET_TEXT = re.compile(
    r"(?i)\b(authorization|proxy-authorization|x-api-key|api[_-]?key|cookie|set-cookie|"
    r"password|secret|token)(\"?\s*[:=]\s*\"?)([^\s\",;]+(?:\s+[^\s\",;]+)?)"
)


class Redactor:
    """Replaces configured secret values, and credentials in free text."""

    def __init__(self, values: Iterable[str]) -> None:
        # Longest first, so a secret that contains another is replaced whole.
        self.values = sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)
        self.encoded = [value.encode() for value in self.values]

    def literal(self, line: str) -> str:
        for value in self.values:
            if value in line:
                line = line.replace(value, REDACTED)
        return line

    def literal_bytes(self, line: bytes) -> bytes:
        for value in self.encoded:
            if value in line:
                line = line.replace(value, _REDACTED_BYTES)
        return line

    def text(self, line: str) -> str:
        return _SECRET_TEXT.sub(lambda m: m.group(1) + m.group(2) + REDACTED, self.literal(line))


def access_entry(now: float, ex: ExchangeBase) -> tuple[Any, ...]:
    """What the loop queues for one finished exchange: plain values only, so
    the exchange itself is freed at once (keeping it alive until the writer
    ran cost more than everything else here, in GC and cache misses).
    ``now`` is monotonic; the writer turns it into wall-clock time."""
    target = ex._target
    attempt = ex._attempt_started
    identity = ex.identity
    extra = None
    if ACCESS_FIELDS:
        extra = {}
        for name, field in ACCESS_FIELDS.items():
            try:
                extra[name] = field(ex)
            except Exception:
                extra[name] = None
    return (
        now,
        now - ex.started,
        now - attempt if attempt else None,
        ex.request_id,
        ex.method,
        ex.path,
        ex.route_name,
        ex.status,
        target.id if target is not None else None,
        ex.bytes_in,
        ex.bytes_out,
        ex.client_ip,
        ex.headers,  # for the user agent; the list is not changed after the exchange
        identity.consumer_id if identity is not None else None,
        ex.trace_id or None,
        extra,
        ex.log_notes,
    )


def access_record(entry: tuple[Any, ...], worker: int, pid: int) -> dict[str, Any]:
    (
        wall,
        duration,
        upstream,
        request_id,
        method,
        path,
        route,
        status,
        target,
        bytes_in,
        bytes_out,
        client_ip,
        headers,
        consumer,
        trace_id,
        extra,
        notes,
    ) = entry
    agent = None
    for key, value in headers:
        if key == b"user-agent":
            agent = value.decode("latin-1")
            break
    record: dict[str, Any] = {
        "time": iso_fast(wall),
        "level": "info",
        "type": "access",
        "request_id": request_id.decode("latin-1"),
        "method": method,
        "path": path,  # without the query string, which may carry credentials
        "route": route or None,
        "status": status,
        "duration_ms": round(duration * 1000, 3),
        "upstream_target": target,
        "upstream_duration_ms": round(upstream * 1000, 3) if upstream is not None else None,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        "client_ip": client_ip,
        "user_agent": agent,
        "consumer": consumer,
        "trace_id": trace_id.decode() if trace_id is not None else None,
        "cache": notes.get("cache") if notes else None,
        "rate_limit": notes.get("rate_limit") if notes else None,
        "worker": worker,
        "pid": pid,
    }
    if extra:
        record.update(extra)
    return record


_dumps = orjson.dumps
# Names from the config (routes, targets) and methods: quoted once, then reused.
_QUOTED: dict[str | None, bytes] = {None: b"null"}


def _quoted(value: str | None) -> bytes:
    found = _QUOTED.get(value)
    if found is None:
        found = _dumps(value)
        if len(_QUOTED) < 4096:
            _QUOTED[value] = found
    return found


def _ms(seconds: float | None) -> bytes:
    return b"null" if seconds is None else b"%.3f" % (seconds * 1000)


def access_json(entry: tuple[Any, ...], worker: int, pid: int) -> bytes:
    """The JSON line of ``access_record``, formatted directly (about a third of
    the cost of building the dict and serialising it). Values a client
    controls (path, user agent, consumer) go through orjson for escaping;
    the request id only ever holds log-safe characters (server/http.py)."""
    (
        wall,
        duration,
        upstream,
        request_id,
        method,
        path,
        route,
        status,
        target,
        bytes_in,
        bytes_out,
        client_ip,
        headers,
        consumer,
        trace_id,
        extra,
        notes,
    ) = entry
    agent = b"null"
    for key, value in headers:
        if key == b"user-agent":
            agent = _dumps(value.decode("latin-1"))
            break
    line = (
        b'{"time":"%s","level":"info","type":"access","request_id":"%s","method":%s,'
        b'"path":%s,"route":%s,"status":%d,"duration_ms":%.3f,"upstream_target":%s,'
        b'"upstream_duration_ms":%s,"bytes_in":%d,"bytes_out":%d,"client_ip":%s,'
        b'"user_agent":%s,"consumer":%s,"trace_id":%s,"cache":%s,"rate_limit":%s,'
        b'"worker":%d,"pid":%d}'
        % (
            iso_fast(wall).encode(),
            request_id,
            _quoted(method),
            _dumps(path),
            _quoted(route or None),
            status,
            duration * 1000,
            _quoted(target),
            _ms(upstream),
            bytes_in,
            bytes_out,
            _dumps(client_ip),
            agent,
            _dumps(consumer),
            b'"%s"' % trace_id if trace_id is not None else b"null",
            _quoted(notes.get("cache")) if notes else b"null",
            _dumps(notes.get("rate_limit")) if notes else b"null",
            worker,
            pid,
        )
    )
    if extra:  # registered fields replace the nulls: take the slow, general path
        record = orjson.loads(line)
        record.update(extra)
        return _dumps(record, default=str)
    return line


def access_text(record: dict[str, Any]) -> str:
    """The ``format: text`` line: close to nginx's combined format, plus timings."""
    return (
        f"{record['client_ip']} - {record['consumer'] or '-'} [{record['time']}] "
        f'"{record["method"]} {record["path"]}" {record["status"]} {record["bytes_out"]} '
        f'"{record["user_agent"] or "-"}" {record["duration_ms"]}ms '
        f"route={record['route'] or '-'} upstream={record['upstream_target'] or '-'} "
        f"id={record['request_id']}"
    )


def _json(event: dict[str, Any], **_: Any) -> str:
    return orjson.dumps(event, default=str).decode()


def _rename_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    event["message"] = event.pop("event", "")
    return event


def _record_time(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """When the record was made (it is formatted later, in the writer thread)."""
    record = event.get("_record")
    event["time"] = iso(record.created if record is not None else time.time())
    return event


def _keep(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return event


def app_formatter(worker: int | None, text: bool) -> logging.Formatter:
    def add_process(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        event["type"] = "app"
        event["pid"] = os.getpid()
        if worker is not None:
            event["worker"] = worker
        return event

    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if text
        else structlog.processors.JSONRenderer(serializer=_json)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            _record_time,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            add_process,
            structlog.processors.format_exc_info,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            _keep if text else _rename_event,
            renderer,
        ],
    )
