"""Checks for the gateway's own error responses (RFC 9457 problem details)."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is a gateway-made problem+json with ``status``; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert body["type"].startswith("https://")
    assert body["request_id"] == response.headers["x-request-id"]
    return body
