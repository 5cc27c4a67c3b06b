"""Turn pydantic's ValidationError into ConfigIssues a person can act on.

pydantic locates an error by a tuple such as ``('routes', 0, 'plugins',
'cors', 'literal[False]')``: keys and indexes into the input, mixed with the
names of union members it tried. We walk that tuple through the input data to
keep only the real key path, look up its line, and reword the message:
"unknown key 'lisen' (did you mean 'listen'?)", "expected a whole number, got
'abc'". A union that rejected a value outright becomes one message ("expected
a mapping or false") instead of one per member.

Values are quoted only when short, and never under a key whose name suggests
a secret (secret, token, password, key): ``${VAR}`` values from the
environment must not leak into terminals and CI logs.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from propylon.errors import ConfigIssue

KeyPath = tuple[object, ...]

_SECRET_WORDS = ("secret", "token", "password", "key")
_MAX_QUOTED = 40
_ABSENT = object()  # not in the input (None may well be)
_MAX_LISTED_KEYS = 10
_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "tuple_type": "a list",
    "set_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}
_BOUNDS = {
    "greater_than_equal": ("ge", "must be at least {}"),
    "greater_than": ("gt", "must be greater than {}"),
    "less_than_equal": ("le", "must be at most {}"),
    "less_than": ("lt", "must be less than {}"),
}
_PYTHON_WORDS = re.compile(r"\b(True|False|None)\b")
_YAML_WORDS = {"True": "true", "False": "false", "None": "null"}


def format_path(path: KeyPath) -> str:
    return ".".join(str(segment) for segment in path)


def line_for(lines: Mapping[KeyPath, int], path: KeyPath) -> int | None:
    """The line of the deepest part of ``path`` that exists in the file."""
    for end in range(len(path), -1, -1):
        line = lines.get(path[:end])
        if line is not None:
            return line
    return None


@dataclass(frozen=True, slots=True)
class _Located:
    path: KeyPath  # keys and indexes only
    unions: tuple[int, ...]  # each len(path) at which pydantic tried union members
    key_error: bool  # the error is about a mapping key, not its value
    error: ErrorDetails


def validation_issues(
    exc: ValidationError,
    data: object,
    lines: Mapping[KeyPath, int],
    filename: str,
    model: type[BaseModel],
) -> list[ConfigIssue]:
    """One issue per distinct problem, located by key path and line."""
    located = [_locate(error, data) for error in exc.errors(include_url=False)]
    # A union member that failed inside the value (it was a mapping, with a
    # bad key) says more than the members that refused the value's type, so
    # refusals are dropped where such an error exists, and merged otherwise.
    explained = {
        item.path[:at] for item in located for at in item.unions if not _is_refusal(item, at)
    }
    found: list[tuple[KeyPath, str]] = []
    refusals: dict[KeyPath, list[_Located]] = {}
    for item in located:
        if item.unions and _is_refusal(item, item.unions[-1]):
            if item.path not in explained:
                refusals.setdefault(item.path, []).append(item)
        else:
            found.append((item.path, _message(item, model)))
    found.extend((path, _union_message(members)) for path, members in refusals.items())
    unique = dict.fromkeys(found)  # union members can repeat one problem
    return [
        ConfigIssue(filename, line_for(lines, path), format_path(path), problem)
        for path, problem in unique
    ]


def _locate(error: ErrorDetails, data: object) -> _Located:
    path: list[object] = []
    node = data
    unions: list[int] = []
    key_error = False
    loc = error["loc"]
    for index, segment in enumerate(loc):
        child = _child(node, segment)
        if segment == "[key]":
            key_error = True
        elif child is not _ABSENT:
            path.append(segment)
            node = child
        elif error["type"] == "missing" and index == len(loc) - 1:
            path.append(segment)  # the key that should be there
        else:
            unions.append(len(path))  # a union member's name, not part of the input
    return _Located(tuple(path), tuple(unions), key_error, error)


def _child(node: object, segment: int | str) -> object:
    if isinstance(node, dict):
        return node.get(segment, _ABSENT)
    if isinstance(node, list) and isinstance(segment, int) and 0 <= segment < len(node):
        return node[segment]
    return _ABSENT


def _is_refusal(item: _Located, at: int) -> bool:
    """Whether ``item`` is a union member refusing the type of the value at ``at``."""
    kind = item.error["type"]
    return len(item.path) == at and (kind in _EXPECTED or kind == "literal_error")


def _message(item: _Located, model: type[BaseModel]) -> str:
    error, path = item.error, item.path
    kind, value = error["type"], error["input"]
    ctx = error.get("ctx") or {}
    secret = _is_secret(path)
    if item.key_error:
        return f"invalid key {_describe(path[-1])}: expected {_EXPECTED.get(kind, 'a string')}"
    if kind == "missing":
        return f"missing required key '{path[-1]}'"
    if kind == "extra_forbidden":
        return _unknown_key(path, model)
    if kind in _EXPECTED:
        return _expected(_EXPECTED[kind], value, secret)
    if kind == "literal_error":
        return _expected(_yaml_words(str(ctx.get("expected", ""))), value, secret)
    if kind in _BOUNDS:
        name, template = _BOUNDS[kind]
        return _with_value(template.format(ctx.get(name)), value, secret)
    if kind == "too_short":
        count = ctx.get("min_length")
        return f"needs at least {count} {'entry' if count == 1 else 'entries'}"
    if kind == "too_long":
        return f"allows at most {ctx.get('max_length')} entries"
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        text = str(ctx["error"])
    else:
        text = re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])
    if secret and isinstance(value, str) and value:
        text = text.replace(value, "***")
    return text


def _union_message(members: list[_Located]) -> str:
    words: dict[str, None] = {}
    for member in members:
        kind = member.error["type"]
        if kind == "literal_error":
            words[_yaml_words(str((member.error.get("ctx") or {}).get("expected", "")))] = None
        else:
            words[_EXPECTED[kind]] = None
    first = members[0]
    return _expected(" or ".join(words), first.error["input"], _is_secret(first.path))


def _unknown_key(path: KeyPath, model: type[BaseModel]) -> str:
    key = str(path[-1])
    allowed = _allowed_keys(path[:-1], model)
    text = f"unknown key '{key}'"
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        text += f" (did you mean '{close[0]}'?)"
    if allowed and len(allowed) <= _MAX_LISTED_KEYS:
        text += f"; allowed keys: {', '.join(allowed)}"
    return text


def _allowed_keys(path: KeyPath, model: type[BaseModel]) -> list[str]:
    """The field names of the model found at ``path`` (none when unknown)."""
    current: Any = model
    for segment in path:
        found = _as_model(current)
        if found is not None:
            field = found.model_fields.get(segment) if isinstance(segment, str) else None
            if field is None:
                return []
            current = field.annotation
            continue
        current = _unwrap(current)
        args = typing.get_args(current)
        if typing.get_origin(current) is list and args:
            current = args[0]
        elif typing.get_origin(current) is dict and len(args) == 2:
            current = args[1]
        else:
            return []
    found = _as_model(current)
    if found is None:
        return []
    return [field.alias or name for name, field in found.model_fields.items()]


def _as_model(annotation: Any) -> type[BaseModel] | None:
    for candidate in (annotation, *_union_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``; other annotations unchanged."""
    args = [arg for arg in _union_args(annotation) if arg is not type(None)]
    return args[0] if len(args) == 1 else annotation


def _union_args(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return typing.get_args(annotation)
    return ()


def _is_secret(path: KeyPath) -> bool:
    return any(
        word in segment.lower()
        for segment in path
        if isinstance(segment, str)
        for word in _SECRET_WORDS
    )


def _expected(words: str, value: object, secret: bool) -> str:
    return _with_value(f"expected {words}", value, secret)


def _with_value(text: str, value: object, secret: bool) -> str:
    return text if secret else f"{text}, got {_describe(value)}"


def _describe(value: object) -> str:
    """A value as the user wrote it in YAML, or its kind when long."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= _MAX_QUOTED else "a very long number"
    if isinstance(value, str):
        if not value:
            return "an empty string"
        return repr(value) if len(value) <= _MAX_QUOTED else "a long string"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


def _yaml_words(expected: str) -> str:
    # pydantic speaks Python ("Input should be False"); the file is YAML.
    return _PYTHON_WORDS.sub(lambda match: _YAML_WORDS[match.group(1)], expected)
