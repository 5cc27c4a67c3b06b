"""What ``propylon demo`` prints: URLs, demo users and curl lines to paste.

Printed with rich, but every line is plain text without colour too (tests
and pipes read it), and never wrapped, so a curl line stays pasteable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from rich.console import Console
from rich.text import Text

from propylon.demo.services import DEMO_PASSWORD, DEMO_USERS

if TYPE_CHECKING:
    from propylon.demo.credentials import DemoCredentials

ROUTES = {"auth": "/api/auth", "crm": "/api/crm", "tickets": "/api/tickets", "admin": "/api/admin"}


def examples(gateway: str) -> list[tuple[str, str]]:
    """(what it shows, curl line) pairs, in the order a newcomer would try them."""
    origin = "https://app.example.com"
    customer = '{"name":"Dana Scully","email":"dana@fbi.example","tier":"pro"}'
    login = f'{{"username":"alice","password":"{DEMO_PASSWORD}"}}'
    return [
        ("gateway health", f"curl -s {gateway}/health"),
        ("list customers (paginated)", f"curl -s '{gateway}/api/crm/customers?limit=2&offset=1'"),
        (
            "create a customer: 201 with a Location header",
            f"curl -si -X POST {gateway}/api/crm/customers "
            f"-H 'Content-Type: application/json' -d '{customer}'",
        ),
        (
            f"log in (then: curl -s {gateway}/api/auth/me -H 'Authorization: Bearer TOKEN')",
            f"curl -s -X POST {gateway}/api/auth/login "
            f"-H 'Content-Type: application/json' -d '{login}'",
        ),
        ("get one ticket", f"curl -s {gateway}/api/tickets/1"),
        (
            "slow upstream beyond the 1s read timeout: 504 problem+json",
            f"curl -si '{gateway}/api/tickets/slow?delay=3'",
        ),
        (
            "flaky upstream: about 1 request in 3 fails with 500",
            f"for i in 1 2 3 4 5 6; do curl -s -o /dev/null -w '%{{http_code}} ' "
            f"{gateway}/api/tickets/flaky; done; echo",
        ),
        ("no route: 404 problem+json", f"curl -si {gateway}/api/nowhere"),
        (
            "method not allowed on the auth route: 405 problem+json",
            f"curl -si -X DELETE {gateway}/api/auth/me",
        ),
        (
            "CORS preflight answered by the gateway",
            f"curl -si -X OPTIONS {gateway}/api/crm/customers "
            f"-H 'Origin: {origin}' -H 'Access-Control-Request-Method: POST'",
        ),
        (
            "what the backend received: X-Forwarded-For, Via, X-Request-ID, stripped path",
            f"curl -s '{gateway}/api/crm/echo?hello=world' -H 'X-Request-ID: my-trace-42'",
        ),
        (
            "stream 100MB through the gateway without buffering it",
            f"curl -s -o /dev/null -w '%{{size_download}} bytes in %{{time_total}}s\\n' "
            f"'{gateway}/api/tickets/stream?size=100MB'",
        ),
    ]


def protected_examples(gateway: str, token: str, api_key: str) -> list[tuple[str, str]]:
    """The admin-only route: refused without credentials, served with either."""
    url = f"{gateway}{ROUTES['admin']}/customers"
    return [
        ("admin route without credentials: 401 problem+json", f"curl -si {url}"),
        ("admin route with the demo JWT", f"curl -s {url} -H 'Authorization: Bearer {token}'"),
        ("admin route with the demo API key", f"curl -s {url} -H 'X-API-Key: {api_key}'"),
    ]


def print_banner(
    console: Console,
    gateway: str,
    services: Mapping[str, str],
    read_timeouts: Mapping[str, str],
    credentials: DemoCredentials | None = None,
) -> None:
    def line(text: str, style: str = "") -> None:
        # soft_wrap: rich would otherwise break lines at 80 columns off a TTY.
        console.print(Text(text, style=style), soft_wrap=True)

    line("propylon demo is running", "bold green")
    line(f"  gateway   {gateway}", "bold")
    line("  services  (internal; the gateway forwards to these)")
    for name, url in services.items():
        route = ROUTES.get(name, "?")
        timeout = f", read timeout {read_timeouts[name]}" if name in read_timeouts else ""
        line(f"    {name:<8}  {url:<24}  <- {route}/*{timeout}")
    users = ", ".join(f"{user.username} ({user.role})" for user in DEMO_USERS.values())
    line(f"  users     {users}; password {DEMO_PASSWORD!r}")
    pairs = examples(gateway)
    if credentials is not None:
        token = credentials.token()
        line(f"  demo JWT  {token}")
        line(f"  API key   {credentials.api_key}")
        line(f"  (alice, role admin, 1h; both made for this run only, for {ROUTES['admin']}/*)")
        pairs += protected_examples(gateway, token, credentials.api_key)
    line("")
    line("Try these:", "bold")
    for what, curl in pairs:
        line(f"  # {what}", "dim")
        line(f"  {curl}", "cyan")
    line("")
    line("Press Ctrl-C to stop", "bold")
