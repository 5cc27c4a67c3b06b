"""Read a gateway.yaml into a validated GatewayConfig, or fail with every problem.

    load_config(path, env=None) -> GatewayConfig
    load_config_text(text, filename="<string>", env=None, base_dir=None) -> GatewayConfig

Both raise ConfigError, whose ``issues`` list every problem found as
``FILE:LINE: key.path: problem``; no YAML or pydantic exception escapes.

Steps: PyYAML composes the node tree (so every key path keeps its line), the
tree is turned into plain data while ``${VAR}`` references are substituted
(see interpolation.py), cross references between routes and services are
checked, and pydantic validates the result (see diagnostics.py for messages).

Rules worth knowing:

- Interpolation runs on string values only, never on keys, and before any
  type conversion. When an *unquoted* value is exactly one reference, the
  result is read again as YAML would read a plain value, so ``port:
  ${PORT:-8080}`` gives the int 8080 and ``debug: ${DEBUG:-false}`` a bool
  (and an empty result gives null). Quote it (``"${PORT}"``) to keep a
  string; a value with anything around the reference (``:${PORT}``) is
  always a string.
- A duplicate key is an error (YAML parsers silently keep the last one).
  Merge keys (``<<: *defaults``) are allowed, and keys written next to them
  override the merged ones, as YAML specifies.
- Line numbers are 1-based: a key's own line, a list item's first line, and
  for a missing key the line where the mapping that lacks it starts.
- Top-level keys starting with ``x-`` are ignored: they hold anchors, e.g.
  ``x-timeouts: &timeouts {connect: 2s}`` then ``timeouts: *timeouts``.
- An empty file is an error, not a default config: a gateway with no
  services and no routes is almost certainly a mistake.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from propylon.config.diagnostics import KeyPath, format_path, line_for, validation_issues
from propylon.config.interpolation import read_variables, substitute
from propylon.config.models import GatewayConfig
from propylon.errors import ConfigError, ConfigIssue

__all__ = ["load_config", "load_config_text"]

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_ROOT_PROBLEM = (
    "the config must be a mapping with sections gateway, services, routes, cors, security_headers"
)


def load_config(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Load and validate the config file at ``path``.

    ``env`` (default: os.environ) is layered over a ``.env`` file in the
    config file's directory for ``${VAR}`` references.
    """
    file = Path(path)
    filename = os.fspath(path)
    try:
        # utf-8-sig: editors on Windows like to start files with a BOM.
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise _file_error(filename, "no such file (`propylon init` writes one)") from None
    except IsADirectoryError:
        raise _file_error(filename, "is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise _file_error(filename, "cannot read the file: it is not UTF-8 text") from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise _file_error(filename, f"cannot read the file: {reason}") from None
    return load_config_text(text, filename, env=env, base_dir=file.parent)


def load_config_text(
    text: str,
    filename: str = "<string>",
    env: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
) -> GatewayConfig:
    """Validate config ``text``; ``filename`` only labels the issues.

    With ``base_dir``, a ``.env`` file there supplies variables below ``env``.
    """
    issues: list[ConfigIssue] = []
    variables, dotenv_problem = read_variables(env, base_dir)
    if dotenv_problem is not None:
        issues.append(ConfigIssue(filename, None, "", dotenv_problem))
    tree = _Tree(filename, variables)
    try:
        data = tree.read(text)
    except ConfigError as exc:  # a syntax error: nothing more can be read
        raise ConfigError(issues + exc.issues) from None
    issues.extend(tree.issues)
    if not isinstance(data, dict):
        issues.append(ConfigIssue(filename, tree.lines.get((), 1), "", _ROOT_PROBLEM))
        raise ConfigError(issues)
    # `x-` keys hold YAML anchors to merge elsewhere, as in docker compose.
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    references = _reference_issues(data, tree.lines, filename)
    issues.extend(references)
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        found = validation_issues(exc, data, tree.lines, filename, GatewayConfig)
        # Values that failed interpolation are already reported; what pydantic
        # says about their placeholder would only repeat the problem.
        found = [issue for issue in found if issue.path not in tree.broken]
        if references:
            # GatewayConfig._references repeats, without a location, the first
            # problem that _reference_issues already reported with one.
            found = [issue for issue in found if issue.path != ""]
        issues.extend(found)
    else:
        if not issues:
            return config
    raise ConfigError(sorted(issues, key=lambda issue: issue.line or 0))


def _file_error(filename: str, problem: str) -> ConfigError:
    return ConfigError([ConfigIssue(filename, None, "", problem)])


class _Loader(yaml.SafeLoader):
    """SafeLoader that remembers which scalars were plain and untagged.

    Only those may change type after interpolation; an explicit ``!!str`` or
    quotes mean the author asked for a string.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.plain_scalars: set[Node] = set()

    # The stubs type `anchor` wrongly and leave peek_event/resolve untyped.
    def compose_scalar_node(self, anchor: Any) -> ScalarNode:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        node = super().compose_scalar_node(anchor)
        if getattr(event, "tag", None) is None and getattr(event, "style", None) is None:
            self.plain_scalars.add(node)
        return node


class _Tree:
    """Turns YAML text into plain data, recording the line of every key path."""

    def __init__(self, filename: str, variables: Mapping[str, str]) -> None:
        self.filename = filename
        self.variables = variables
        self.lines: dict[KeyPath, int] = {}
        self.issues: list[ConfigIssue] = []
        self.broken: set[str] = set()  # dotted paths whose value could not be read
        # Each node becomes one object, however many aliases point at it:
        # this keeps a "billion laughs" document linear and reports its
        # problems once. `_active` catches an alias that contains itself.
        self._built: dict[Node, object] = {}
        self._active: set[Node] = set()
        self._keys: dict[Node, object] = {}

    def read(self, text: str) -> object:
        try:
            loader = _Loader(text)  # already reads the text: may raise ReaderError
            try:
                root = loader.get_single_node()
                if root is None:
                    return None
                self.lines[()] = root.start_mark.line + 1
                return self._build(loader, root, ())
            finally:
                loader.dispose()
        except yaml.MarkedYAMLError as exc:
            raise ConfigError([self._syntax_issue(exc)]) from None
        except yaml.reader.ReaderError as exc:  # a control character: no mark, a position
            line = text.count("\n", 0, exc.position) + 1
            problem = f"invalid YAML: character #x{exc.character:04x}: {exc.reason}"
            raise ConfigError([ConfigIssue(self.filename, line, "", problem)]) from None

    def _syntax_issue(self, exc: yaml.MarkedYAMLError) -> ConfigIssue:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = f"invalid YAML: {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.problem.startswith("but "):
            # "expected a single document in the stream, but found another document"
            problem = f"invalid YAML: {exc.context}, {exc.problem}"
        elif exc.context and exc.problem and exc.context_mark is not None:
            problem += f" ({exc.context} on line {exc.context_mark.line + 1})"
        return ConfigIssue(self.filename, line, "", problem)

    def _build(self, loader: _Loader, node: Node, path: KeyPath) -> object:
        if node in self._built:
            return self._built[node]
        if node in self._active:
            self._issue(path, node, "an alias refers to the value that contains it")
            return None
        self._active.add(node)
        try:
            if isinstance(node, MappingNode):
                value: object = self._mapping(loader, node, path)
            elif isinstance(node, SequenceNode):
                value = [
                    self._item(loader, child, (*path, index))
                    for index, child in enumerate(node.value)
                ]
            elif isinstance(node, ScalarNode):
                value = self._scalar(loader, node, path)
            else:  # pragma: no cover - the composer makes only these three
                value = None
        finally:
            self._active.discard(node)
        self._built[node] = value
        return value

    def _item(self, loader: _Loader, node: Node, path: KeyPath) -> object:
        self.lines[path] = node.start_mark.line + 1
        return self._build(loader, node, path)

    def _mapping(self, loader: _Loader, node: MappingNode, path: KeyPath) -> dict[object, object]:
        first_line: dict[object, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue
            key = self._key(loader, key_node, path)
            line = key_node.start_mark.line + 1
            if key in first_line:
                self._issue(
                    (*path, key),
                    key_node,
                    f"duplicate key '{key}' (first on line {first_line[key]}): remove one",
                )
            else:
                first_line[key] = line
        loader.flatten_mapping(node)  # resolves `<<` merges; raises on a bad one
        result: dict[object, object] = {}
        for key_node, value_node in node.value:
            key = self._key(loader, key_node, path)
            if key in result:
                # A later key wins (merged first, then duplicates): forget the
                # lines of the value it replaces so none point at dead text.
                self._forget_lines((*path, key))
            self.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self._build(loader, value_node, (*path, key))
        return result

    def _forget_lines(self, prefix: KeyPath) -> None:
        for path in [path for path in self.lines if path[: len(prefix)] == prefix]:
            del self.lines[path]

    def _key(self, loader: _Loader, node: Node, path: KeyPath) -> object:
        # Keys are read twice (duplicate check, then build): report once.
        if node not in self._keys:
            self._keys[node] = self._read_key(loader, node, path)
        return self._keys[node]

    def _read_key(self, loader: _Loader, node: Node, path: KeyPath) -> object:
        if isinstance(node, ScalarNode):
            key = self._scalar(loader, node, path, interpolate=False)
            if key is None or isinstance(key, str | int | float | bool):
                return key
        self._issue(path, node, "a key must be a plain word, not a list or mapping")
        placeholder = f"<key on line {node.start_mark.line + 1}>"
        self.broken.add(format_path((*path, placeholder)))
        return placeholder

    def _scalar(
        self, loader: _Loader, node: ScalarNode, path: KeyPath, interpolate: bool = True
    ) -> object:
        if interpolate and node.tag == _STR_TAG and "${" in node.value:
            result = substitute(node.value, self.variables)
            for problem in result.problems:
                self._issue(path, node, problem)
                self.broken.add(format_path(path))
            tag = node.tag
            if result.whole and node in loader.plain_scalars:
                tag = loader.resolve(ScalarNode, result.text, (True, False))  # type: ignore[no-untyped-call]
            node = ScalarNode(tag, result.text, node.start_mark, node.end_mark, node.style)
        try:
            return loader.construct_object(node, deep=True)
        except Exception as exc:
            # YAMLError for an unknown !tag but ValueError and others for input
            # such as `!!int abc`: all mean this one value is unreadable. The
            # latter's text would quote the value, which may be a secret.
            reason = getattr(exc, "problem", None)
            if not isinstance(exc, yaml.YAMLError) or not reason:
                reason = f"it is not a valid {node.tag.rpartition(':')[2]}"
            self._issue(path, node, f"cannot read this value: {reason}")
            self.broken.add(format_path(path))
            return None

    def _issue(self, path: KeyPath, node: Node, problem: str) -> None:
        line = node.start_mark.line + 1
        self.issues.append(ConfigIssue(self.filename, line, format_path(path), problem))


def _reference_issues(
    data: dict[object, object], lines: Mapping[KeyPath, int], filename: str
) -> list[ConfigIssue]:
    """Duplicate route names and routes naming unknown services, each at its key.

    GatewayConfig checks the same, but only after every field is valid and
    without saying where: checking here reports them alongside other problems.
    """
    routes, services = data.get("routes"), data.get("services", {})
    if not isinstance(routes, list):
        return []
    known = set(services) if isinstance(services, dict) else None
    issues: list[ConfigIssue] = []

    def issue(path: KeyPath, problem: str) -> None:
        issues.append(ConfigIssue(filename, line_for(lines, path), format_path(path), problem))

    first_index: dict[str, int] = {}
    for index, route in enumerate(routes):
        if not isinstance(route, dict):
            continue
        name, service = route.get("name"), route.get("service")
        if isinstance(name, str):
            if name in first_index:
                earlier = ("routes", first_index[name], "name")
                issue(
                    ("routes", index, "name"),
                    f"route name '{name}' is already used by {format_path(earlier)} "
                    f"(line {line_for(lines, earlier)}): route names must be unique",
                )
            else:
                first_index[name] = index
        if isinstance(service, str) and known is not None and service not in known:
            names = ", ".join(sorted(str(key) for key in known)) or "none defined"
            issue(
                ("routes", index, "service"),
                f"unknown service '{service}' (services: {names})",
            )
    return issues
