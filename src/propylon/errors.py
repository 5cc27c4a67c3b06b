"""The one error tree of propylon.

    PropylonError
    ├── ConfigError            config file cannot be loaded or is invalid
    ├── PluginError            a plugin failed while handling a request
    └── UpstreamError          the exchange with a backend failed
        ├── UpstreamConnectError   could not connect (502)
        ├── UpstreamTimeout        connect/read/total timeout (504)
        └── UpstreamProtocolError  broken or truncated response (502)

Lower-layer errors (OSError, httptools errors) are mapped to the most specific
of these at the boundary where they are caught.
"""

from __future__ import annotations

from dataclasses import dataclass


class PropylonError(Exception):
    """Base of every error propylon raises on purpose."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a config file, located by file, line and key path."""

    file: str
    line: int | None
    path: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        key = self.path or "<root>"
        return f"{where}: {key}: {self.problem}"


class ConfigError(PropylonError):
    """The config is invalid; `issues` lists every problem found."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


class PluginError(PropylonError):
    """A plugin raised while handling a request."""


class UpstreamError(PropylonError):
    """The exchange with an upstream target failed."""


class UpstreamConnectError(UpstreamError):
    """No connection to the upstream target could be opened."""


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within a configured timeout."""


class UpstreamProtocolError(UpstreamError):
    """The upstream sent a malformed, truncated or otherwise broken response."""
