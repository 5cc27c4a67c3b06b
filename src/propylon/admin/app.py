"""Build the admin application and run its listener inside the supervisor."""

from __future__ import annotations

from aiohttp import web

from propylon.admin.auth import bearer_middleware
from propylon.admin.control import ClusterControl
from propylon.admin.problems import problems_middleware
from propylon.admin.routes import CONTROL, ROUTE_TABLES
from propylon.admin.routes.keys import OBSERVABILITY
from propylon.config.cluster import AdminConfig
from propylon.config.models import GatewayConfig, parse_listen
from propylon.observability.hub import ObservabilityHub

# Admin requests are small JSON documents.
MAX_BODY = 1024 * 1024


def build_app(
    control: ClusterControl, token: str | None, hub: ObservabilityHub | None = None
) -> web.Application:
    # problems_middleware is outermost, so even a 401 carries a request id.
    app = web.Application(
        middlewares=[problems_middleware, bearer_middleware(token)],
        client_max_size=MAX_BODY,
    )
    app[CONTROL] = control
    app[OBSERVABILITY] = hub or ObservabilityHub(control.broadcast, GatewayConfig)
    for table in ROUTE_TABLES:
        app.router.add_routes(table)
    return app


class AdminServer:
    """The running admin listener; ``url`` is where it listens."""

    def __init__(self, runner: web.AppRunner, url: str) -> None:
        self._runner = runner
        self.url = url

    @classmethod
    async def start(
        cls, config: AdminConfig, control: ClusterControl, hub: ObservabilityHub | None = None
    ) -> AdminServer:
        """Raises OSError when the address cannot be bound."""
        token = config.token.get_secret_value() if config.token is not None else None
        runner = web.AppRunner(
            build_app(control, token, hub),
            access_log=None,
            handle_signals=False,
            shutdown_timeout=1.0,
        )
        await runner.setup()
        host, port = parse_listen(config.listen)
        try:
            site = web.TCPSite(runner, host, port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        bound_host, bound_port = runner.addresses[0][:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        return cls(runner, f"http://{shown}:{bound_port}")

    async def close(self) -> None:
        await self._runner.cleanup()
