"""RESP encoding and Redis URL parsing of the request-path Redis client."""

from __future__ import annotations

import hiredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from propylon.state.redis import Endpoint, Script, encode_command

args = st.lists(
    st.one_of(st.binary(max_size=64), st.text(max_size=32), st.integers(), st.floats(-1e9, 1e9)),
    min_size=1,
    max_size=12,
)


def _as_bytes(arg: bytes | str | int | float) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode()
    if isinstance(arg, int):
        return str(arg).encode()
    return repr(float(arg)).encode()


@given(args)
def test_a_command_reads_back_as_the_same_bulk_strings(command: list[bytes | str | int]) -> None:
    reader = hiredis.Reader()
    reader.feed(encode_command(command))
    assert reader.gets() == [_as_bytes(arg) for arg in command]
    assert reader.gets() is False  # nothing left over


def test_floats_are_sent_exactly() -> None:
    assert encode_command(["INCRBYFLOAT", "k", 0.1]) == (
        b"*3\r\n$11\r\nINCRBYFLOAT\r\n$1\r\nk\r\n$3\r\n0.1\r\n"
    )


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("redis://127.0.0.1:6379/0", Endpoint()),
        ("redis://cache.internal", Endpoint(host="cache.internal")),
        ("redis://:s%40cret@h:7000/3", Endpoint(host="h", port=7000, db=3, password="s@cret")),
        ("redis://app:pw@h/1", Endpoint(host="h", db=1, username="app", password="pw")),
        ("rediss://h:6380", Endpoint(host="h", port=6380, tls=True)),
        ("unix:///run/redis.sock?db=2", Endpoint(path="/run/redis.sock", db=2)),
    ],
)
def test_urls(url: str, endpoint: Endpoint) -> None:
    assert Endpoint.from_url(url) == endpoint


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        Endpoint.from_url("http://127.0.0.1:6379")


def test_handshake_authenticates_then_selects() -> None:
    endpoint = Endpoint.from_url("redis://app:pw@h/4")
    assert endpoint.handshake() == [
        encode_command(["AUTH", "app", "pw"]),
        encode_command(["SELECT", 4]),
    ]
    assert Endpoint.from_url("redis://h").handshake() == []


def test_script_sha_is_redis_sha1() -> None:
    # SCRIPT LOAD "return 1" answers this digest.
    assert Script("return 1").sha == b"e0e1f9fabfc9d4800c877a703b823ac0578ff8db"
