"""The admin API describes itself: a valid OpenAPI 3.1 document that lists
exactly the routes served, and a Swagger UI page that works offline."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from openapi_spec_validator import validate

from propylon.admin.app import AdminServer, build_app
from propylon.config.cluster import AdminConfig
from tests.integration.test_admin_app import FakeControl
from tests.support.loop import BackgroundLoop

TOKEN = "a-token-of-some-length"


@pytest.fixture
def admin_url(bg: BackgroundLoop) -> Iterator[str]:
    config = AdminConfig(listen="127.0.0.1:0", token=TOKEN)
    server = bg.run(AdminServer.start(config, FakeControl()))
    yield server.url
    bg.run(server.close())


def test_the_document_is_valid_openapi_3_1(admin_url: str) -> None:
    response = httpx.get(admin_url + "/api-docs.json")  # no token needed
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["openapi"] == "3.1.0"
    validate(document)  # raises on any schema error


def test_the_document_lists_exactly_the_served_routes() -> None:
    from propylon.admin.openapi import build_spec

    app = build_app(FakeControl(), TOKEN)
    served = set()
    for resource in app.router.resources():
        path = resource.canonical
        if path == "/" or path.startswith("/api-docs"):
            continue  # pages for a browser, not API endpoints
        for route in resource:
            if route.method != "HEAD":
                served.add((route.method.lower(), path))
    described = {(method, path) for path, item in build_spec()["paths"].items() for method in item}
    assert served == described


def test_swagger_ui_loads_from_the_gateway_alone(admin_url: str) -> None:
    page = httpx.get(admin_url + "/api-docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assets = re.findall(r'(?:src|href)="(/api-docs/assets/[^"]+)"', page.text)
    assert len(assets) >= 3
    assert "http" not in "".join(re.findall(r'(?:src|href)="([^"]+)"', page.text))  # offline
    for asset in assets:
        response = httpx.get(admin_url + asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 1000
    assert "SwaggerUIBundle" in httpx.get(admin_url + "/api-docs/assets/swagger-ui-bundle.js").text


def test_only_the_docs_are_public(admin_url: str) -> None:
    assert httpx.get(admin_url + "/admin/status").status_code == 401
    unknown = httpx.get(admin_url + "/api-docs/assets/../../admin/status")
    assert unknown.status_code in (401, 404)
    assert httpx.get(admin_url + "/api-docs/assets/index.html").status_code == 404
