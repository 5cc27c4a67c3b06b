"""A small blocking client for the admin API, for ``propylon status|reload|stop``.

The address and token come from the same config file the gateway runs
(``admin.listen``, ``admin.token``). ``propylon reload`` is most useful when
that file has just been edited, maybe into something invalid, so the admin
section is read on its own when the whole file does not validate.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from propylon.config import ConfigError, load_config
from propylon.config.cluster import AdminConfig
from propylon.config.interpolation import read_variables, substitute
from propylon.config.models import parse_listen

# No proxies: HTTP_PROXY in the environment must not divert admin calls.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class AdminUnavailable(Exception):
    """The admin API cannot be reached or is switched off."""


@dataclass(frozen=True, slots=True)
class AdminTarget:
    url: str
    token: str | None


@dataclass(frozen=True, slots=True)
class AdminReply:
    status: int
    body: dict[str, Any]

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def admin_target(config_file: str, listen: str | None, token: str | None) -> AdminTarget:
    """Where the admin API of the gateway running ``config_file`` listens."""
    section = read_admin_section(Path(config_file))
    if not section.enabled and listen is None:
        raise AdminUnavailable(f"the admin API is switched off in {config_file} (admin.enabled)")
    host, port = parse_listen(listen or section.listen)
    if host in ("0.0.0.0", "::"):  # listening everywhere: reachable on loopback
        host = "127.0.0.1" if host == "0.0.0.0" else "::1"
    shown = f"[{host}]" if ":" in host else host
    secret = token or (section.token.get_secret_value() if section.token is not None else None)
    return AdminTarget(f"http://{shown}:{port}", secret)


def read_admin_section(path: Path) -> AdminConfig:
    try:
        return load_config(path).admin
    except ConfigError:
        pass
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        raw = data.get("admin") if isinstance(data, dict) else None
        if not isinstance(raw, dict):
            return AdminConfig()
        variables, _ = read_variables(None, path.parent)
        values = {
            key: substitute(value, variables).text if isinstance(value, str) else value
            for key, value in raw.items()
        }
        return AdminConfig.model_validate(values)
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError):
        return AdminConfig()


def call(
    target: AdminTarget,
    method: str,
    path: str,
    timeout: float = 10.0,
    body: dict[str, Any] | None = None,
) -> AdminReply:
    headers = {"Accept": "application/json"}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(target.url + path, data, method=method, headers=headers)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return AdminReply(response.status, _json(response.read()))
    except urllib.error.HTTPError as error:
        return AdminReply(error.code, _json(error.read()))
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminUnavailable(
            f"cannot reach the admin API at {target.url}: {reason} "
            "(is the gateway running with --workers?)"
        ) from None


def _json(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except ValueError:
        return {"detail": data.decode("utf-8", "replace")[:200]}
    return body if isinstance(body, dict) else {"detail": str(body)}
