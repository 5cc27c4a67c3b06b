"""Plugin chains run eagerly: one that never waits answers in the same loop
turn, one that waits becomes a task; both behave, and a failing plugin is a 500."""

from __future__ import annotations

import asyncio
import json
from typing import Any, ClassVar

import httpx
import pytest

from propylon.plugins.base import Plugin, PluginChain, RequestContext
from propylon.server.http import Response
from tests.support.gateway import simple_config
from tests.support.problems import assert_problem


class Stamp(Plugin):
    """Adds a header to the upstream request; waits first when asked to."""

    name: ClassVar[str] = "stamp"
    priority: ClassVar[int] = 10

    def __init__(self, wait: str = "", fail: str = "", answer: bool = False) -> None:
        self.wait, self.fail, self.answer = wait, fail, answer
        self.in_task: list[bool] = []

    async def on_request(self, ctx: RequestContext) -> Response | None:
        if self.fail == "before":
            raise RuntimeError("boom before waiting")
        if self.wait == "sleep":
            await asyncio.sleep(0.01)
        elif self.wait == "yield":
            await asyncio.sleep(0)  # a bare yield to the loop
        elif self.wait == "timeout":
            await asyncio.sleep(0)
            async with asyncio.timeout(1):  # needs a task: only after a suspension
                await asyncio.sleep(0.01)
        self.in_task.append(asyncio.current_task() is not None)
        if self.fail == "after":
            raise RuntimeError("boom after waiting")
        if self.answer:
            return Response(418, [(b"content-type", b"text/plain")], b"short and stout")
        ctx.add_upstream_header(b"x-stamp", self.wait.encode() or b"now")
        return None


def with_chain(gateway: Any, upstream: Any, *plugins: Plugin) -> Any:
    gw = gateway(simple_config(upstream.url))
    gw.state.routes[0].chain = PluginChain(list(plugins))
    return gw


@pytest.mark.parametrize("wait", ["", "sleep", "yield", "timeout"])
def test_a_chain_that_waits_or_not_reaches_the_upstream(gateway, upstream, wait) -> None:
    plugin = Stamp(wait)
    gw = with_chain(gateway, upstream, plugin)
    with httpx.Client(base_url=gw.url) as http:
        responses = [http.get("/echo") for _ in range(3)]
    assert [r.status_code for r in responses] == [200] * 3
    assert [seen.headers["x-stamp"] for seen in upstream.requests] == [wait or "now"] * 3
    # Eager: a chain that never waits runs outside any task.
    assert plugin.in_task == [bool(wait)] * 3


@pytest.mark.parametrize("wait", ["", "sleep"])
def test_a_local_reply_from_either_kind_of_chain(gateway, upstream, wait) -> None:
    gw = with_chain(gateway, upstream, Stamp(wait, answer=True))
    response = httpx.get(gw.url + "/echo")
    assert response.status_code == 418
    assert response.text == "short and stout"
    assert upstream.requests == []


@pytest.mark.parametrize(("wait", "fail"), [("", "before"), ("", "after"), ("sleep", "after")])
def test_a_failing_plugin_gives_the_500_problem(gateway, upstream, wait, fail) -> None:
    gw = with_chain(gateway, upstream, Stamp(wait, fail=fail))
    with httpx.Client(base_url=gw.url) as http:
        assert_problem(http.get("/echo"), 500)
        assert_problem(http.get("/echo"), 500)  # the connection stays usable
    assert upstream.requests == []


def test_pipelined_requests_keep_their_order_across_both_kinds(gateway, upstream) -> None:
    from tests.support.wire import RawClient

    gw = with_chain(gateway, upstream, Stamp("sleep"))
    with RawClient(gw.port) as client:
        client.send(b"".join(b"GET /echo/%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5)))
        paths = [json.loads(client.read_response().body)["path"] for _ in range(5)]
    assert paths == [f"/echo/{i}" for i in range(5)]
