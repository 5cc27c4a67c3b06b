"""An in-memory JSON collection with the usual REST handlers.

The crm and tickets services each hold one; nothing is persisted, so every
``propylon demo`` starts from the same seed records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from propylon.demo.common import BadRequest, error, now_iso, parse_body, reply

Record = dict[str, Any]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


def _int_param(request: web.Request, name: str, default: int, high: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) > high:
        raise BadRequest(f"?{name}= must be an integer from 0 to {high}, got {text!r}")
    return int(text)


class Collection:
    """Records of one kind, keyed by an increasing integer id."""

    def __init__(self, kind: str, model: type[BaseModel], seed: Iterable[Mapping[str, Any]]):
        self.kind = kind  # singular, used in messages: "customer"
        self.model = model
        self._records: dict[int, Record] = {}
        self._next_id = 1
        for values in seed:
            self._insert(model.model_validate(values))

    def add_routes(self, router: web.UrlDispatcher, prefix: str) -> None:
        """Mount list/create at ``prefix`` and get/replace/delete at ``prefix/{id}``."""
        # Ids are digits only, so /slow, /health or /echo next to them never collide.
        item = f"{prefix}/{{id:\\d+}}"
        router.add_get(prefix or "/", self.list)
        router.add_post(prefix or "/", self.create)
        router.add_get(item, self.get)
        router.add_put(item, self.replace)
        router.add_delete(item, self.delete)

    def _insert(self, values: BaseModel) -> Record:
        stamp = now_iso()
        record = {
            "id": self._next_id,
            **values.model_dump(),
            "created_at": stamp,
            "updated_at": stamp,
        }
        self._records[self._next_id] = record
        self._next_id += 1
        return record

    def _lookup(self, request: web.Request) -> Record | None:
        return self._records.get(int(request.match_info["id"]))

    def _not_found(self, request: web.Request) -> web.Response:
        return error(request, 404, f"no {self.kind} with id {request.match_info['id']}")

    async def list(self, request: web.Request) -> web.Response:
        limit = _int_param(request, "limit", DEFAULT_LIMIT, MAX_LIMIT)
        offset = _int_param(request, "offset", 0, 1_000_000)
        records = list(self._records.values())
        page = {"total": len(records), "limit": limit, "offset": offset}
        return reply(request, {"data": records[offset : offset + limit], "page": page})

    async def get(self, request: web.Request) -> web.Response:
        record = self._lookup(request)
        if record is None:
            return self._not_found(request)
        return reply(request, {"data": record})

    async def create(self, request: web.Request) -> web.Response:
        record = self._insert(await parse_body(request, self.model))
        # Behind a prefix-stripping gateway request.path lacks the public
        # prefix; X-Forwarded-Prefix (when a proxy sends it) puts it back.
        prefix = request.headers.get("X-Forwarded-Prefix", "").rstrip("/")
        location = f"{prefix}{request.path.rstrip('/')}/{record['id']}"
        return reply(request, {"data": record}, status=201, headers={"Location": location})

    async def replace(self, request: web.Request) -> web.Response:
        record = self._lookup(request)
        if record is None:
            return self._not_found(request)
        values = await parse_body(request, self.model)
        record.update(values.model_dump(), updated_at=now_iso())
        return reply(request, {"data": record})

    async def delete(self, request: web.Request) -> web.StreamResponse:
        if self._records.pop(int(request.match_info["id"]), None) is None:
            return self._not_found(request)
        return web.Response(status=204)
