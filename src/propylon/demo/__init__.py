"""The embedded demo: backend services and a gateway config to put in front of them.

``propylon demo`` (propylon.cli.demo) runs them; tests and docs can reuse
the pieces: the aiohttp apps in ``services`` and ``build_config``.
"""

from propylon.demo.services import SERVICE_FACTORIES, auth_app, crm_app, tickets_app

__all__ = ["SERVICE_FACTORIES", "auth_app", "crm_app", "tickets_app"]
