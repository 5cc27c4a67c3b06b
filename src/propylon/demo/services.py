"""The demo backends: small aiohttp apps standing in for real services.

- auth: ``POST /login``, ``GET /me`` (opaque demo tokens; signed JWTs arrive
  with the gateway's auth plugin);
- crm: ``/customers`` (list, get, create, replace, delete);
- tickets: ``/tickets`` likewise, plus ``/tickets/slow``, ``/tickets/flaky``
  and ``/tickets/stream`` to show timeouts, upstream errors and streaming.

Every service answers ``GET /health`` and ``ANY /echo`` (see common.py).
"""

from __future__ import annotations

import asyncio
import random
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from propylon.config.units import parse_duration, parse_size
from propylon.demo.common import BadRequest, error, make_app, parse_body, query_number, reply
from propylon.demo.resources import Collection

TOKEN_TTL = 3600
MAX_DELAY = 30.0
DEFAULT_STREAM_SIZE = 10 * 1024**2
MAX_STREAM_SIZE = 1024**3
STREAM_CHUNK = 64 * 1024


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- auth --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DemoUser:
    username: str
    name: str
    role: str


DEMO_PASSWORD = "demo"
DEMO_USERS = {
    user.username: user
    for user in (
        DemoUser("alice", "Alice Adams", "admin"),
        DemoUser("bob", "Bob Baker", "agent"),
        DemoUser("carol", "Carol Chen", "viewer"),
    )
}


class LoginIn(_Input):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(max_length=256)


@dataclass(slots=True)
class _Session:
    user: DemoUser
    expires_at: float


SESSIONS = web.AppKey("sessions", dict[str, _Session])


def _user_json(user: DemoUser) -> dict[str, str | list[str]]:
    return {"id": user.username, "name": user.name, "roles": [user.role]}


async def login(request: web.Request) -> web.Response:
    body = await parse_body(request, LoginIn)
    user = DEMO_USERS.get(body.username)
    # compare_digest: the demo should not teach a timing leak, even with one password.
    if user is None or not secrets.compare_digest(body.password, DEMO_PASSWORD):
        return error(request, 401, "invalid username or password")
    token = f"demo.{secrets.token_urlsafe(24)}"
    request.app[SESSIONS][token] = _Session(user, time.monotonic() + TOKEN_TTL)
    return reply(
        request,
        {
            "token": token,
            "token_type": "Bearer",
            "expires_in": TOKEN_TTL,
            "user": _user_json(user),
            "note": "opaque demo token, only this demo auth service understands it; "
            "signed JWTs that the gateway can verify come with its auth plugin",
        },
    )


async def me(request: web.Request) -> web.Response:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    session = request.app[SESSIONS].get(token.strip()) if scheme.lower() == "bearer" else None
    if session is None or session.expires_at < time.monotonic():
        challenge = {"WWW-Authenticate": 'Bearer realm="propylon-demo"'}
        return error(
            request, 401, "send Authorization: Bearer <token> from POST /login", headers=challenge
        )
    return reply(request, {"user": _user_json(session.user)})


def auth_app() -> web.Application:
    app = make_app("auth")
    app[SESSIONS] = {}
    app.router.add_post("/login", login)
    app.router.add_get("/me", me)
    return app


# --- crm ---------------------------------------------------------------------


class CustomerIn(_Input):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    company: str | None = Field(default=None, max_length=200)
    tier: Literal["free", "pro", "enterprise"] = "free"


CUSTOMERS = (
    {
        "name": "Ada Lovelace",
        "email": "ada@analytical.example",
        "company": "Analytical Engines",
        "tier": "enterprise",
    },
    {
        "name": "Grace Hopper",
        "email": "grace@cobol.example",
        "company": "Compilers Inc",
        "tier": "pro",
    },
    {"name": "Alan Turing", "email": "alan@bletchley.example", "company": "Bletchley Park"},
    {"name": "Katherine Johnson", "email": "katherine@orbits.example", "tier": "pro"},
)


def crm_app() -> web.Application:
    app = make_app("crm")
    Collection("customer", CustomerIn, CUSTOMERS).add_routes(app.router, "/customers")
    return app


# --- tickets -----------------------------------------------------------------


class TicketIn(_Input):
    title: str = Field(min_length=1, max_length=200)
    customer_id: int | None = Field(default=None, ge=1)
    status: Literal["open", "pending", "solved", "closed"] = "open"
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    assignee: str | None = Field(default=None, max_length=64)


TICKETS = (
    {
        "title": "Cannot log in after password reset",
        "customer_id": 1,
        "priority": "high",
        "assignee": "bob",
    },
    {"title": "Invoice shows the wrong VAT rate", "customer_id": 2, "status": "pending"},
    {"title": "Export to CSV times out", "customer_id": 3, "priority": "urgent", "assignee": "bob"},
    {
        "title": "Feature request: dark mode",
        "customer_id": 4,
        "priority": "low",
        "status": "closed",
    },
)

RANDOM = web.AppKey("random", random.Random)


async def slow(request: web.Request) -> web.Response:
    text = request.query.get("delay", "2")
    try:
        delay = min(parse_duration(text), MAX_DELAY)
    except ValueError:
        raise BadRequest(
            f"?delay= must be seconds or a duration such as 500ms, got {text!r}"
        ) from None
    await asyncio.sleep(delay)
    return reply(request, {"slept": delay, "max_delay": MAX_DELAY})


async def flaky(request: web.Request) -> web.Response:
    fail_rate = query_number(request, "fail_rate", 1 / 3, 0.0, 1.0)
    if request.app[RANDOM].random() < fail_rate:
        return error(request, 500, "simulated failure", fail_rate=round(fail_rate, 3))
    return reply(request, {"ok": True, "fail_rate": round(fail_rate, 3)})


# One block of NDJSON-ish text reused for every chunk: the point is the
# transfer, and building each chunk anew would measure Python, not streaming.
_LINE = b'{"event":"ticket.updated","padding":"' + b"x" * 64 + b'"}\n'
_BLOCK = (_LINE * (STREAM_CHUNK // len(_LINE) + 1))[:STREAM_CHUNK]


async def stream(request: web.Request) -> web.StreamResponse:
    text = request.query.get("size")
    try:
        size = DEFAULT_STREAM_SIZE if text is None else min(parse_size(text), MAX_STREAM_SIZE)
    except ValueError:
        raise BadRequest(f"?size= must be bytes or a size such as 10MB, got {text!r}") from None
    response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    remaining = size
    while remaining > 0:
        chunk = _BLOCK[: min(remaining, STREAM_CHUNK)]
        await response.write(chunk)  # waits while the client (the gateway) is slow
        remaining -= len(chunk)
    await response.write_eof()
    return response


def tickets_app(*, seed: int | None = None) -> web.Application:
    app = make_app("tickets")
    app[RANDOM] = random.Random(seed)
    tickets = Collection("ticket", TicketIn, TICKETS)
    # Mounted twice: at /tickets (the service's own paths, like crm's
    # /customers) and at / so that the gateway route /api/tickets with
    # strip_prefix gives clean public paths: /api/tickets/1, /api/tickets/slow.
    for prefix in ("/tickets", ""):
        tickets.add_routes(app.router, prefix)
        app.router.add_get(f"{prefix}/slow", slow)
        app.router.add_get(f"{prefix}/flaky", flaky)
        app.router.add_get(f"{prefix}/stream", stream)
    return app


SERVICE_FACTORIES = {"auth": auth_app, "crm": crm_app, "tickets": tickets_app}
