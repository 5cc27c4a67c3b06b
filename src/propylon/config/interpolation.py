"""``${VAR}`` references in config values, and the variables they read.

Syntax, as in docker compose and the POSIX shell:

    ${NAME}            the variable's value; an error when it is not set
    ${NAME:-default}   the default when NAME is unset or empty
    $${                a literal ``${`` (nothing is substituted)

Anything else containing ``$`` is left alone, so regexes and ``$1`` pass through.
Defaults are taken literally: no nesting (``${A:-${B}}``) and no ``}`` inside.

Variables come from the process environment layered over a ``.env`` file next
to the config: a real environment variable wins, so a deployment can override
whatever a checked-in ``.env`` says. ``.env`` values are taken literally too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dotenv import dotenv_values

_REFERENCE = re.compile(r"\$\$\{|\$\{([^}]*)(\})?")
_BODY = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Substitution:
    """The result of interpolating one string."""

    text: str
    # True when the input was exactly one ``${...}`` and nothing else: only
    # then may the caller re-read the result as a number, bool or null.
    whole: bool
    # Problems in human words; empty when every reference could be resolved.
    problems: tuple[str, ...]


def substitute(text: str, variables: Mapping[str, str]) -> Substitution:
    """Replace every reference in ``text``; never raises."""
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        body, closed = match.group(1), match.group(2)
        if closed is None:
            problems.append(f"unclosed '${{{_cut(body)}': add the closing '}}'")
            return match.group(0)
        reference = _BODY.fullmatch(body)
        if reference is None:
            problems.append(
                f"invalid reference '${{{_cut(body)}}}': expected ${{NAME}} or ${{NAME:-default}}"
            )
            return ""
        name, default = reference.group(1), reference.group(2)
        value = variables.get(name)
        if default is not None and not value:
            return default
        if value is None:
            problems.append(
                f"undefined variable '{name}': set it in the environment or in .env, "
                f"or give a default with ${{{name}:-value}}"
            )
            return ""
        return value

    result = _REFERENCE.sub(replace, text)
    first = _REFERENCE.match(text)
    whole = first is not None and first.end() == len(text) and first.group(0) != "$${"
    return Substitution(result, whole, tuple(problems))


def read_variables(
    env: Mapping[str, str] | None, dotenv_dir: Path | None
) -> tuple[dict[str, str], str | None]:
    """Merge ``env`` (default: os.environ) over ``dotenv_dir/.env``.

    Returns the variables and, when the ``.env`` file exists but cannot be
    read, a sentence saying why (the caller turns it into a ConfigIssue).
    """
    variables: dict[str, str] = {}
    problem = None
    if dotenv_dir is not None:
        dotenv_path = dotenv_dir / ".env"
        if dotenv_path.is_file():
            try:
                values = dotenv_values(dotenv_path, interpolate=False, encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                problem = f"cannot read {dotenv_path}: {_reason(exc)}"
            else:
                # A bare `NAME` line has no value: it defines nothing.
                variables.update({k: v for k, v in values.items() if v is not None})
    variables.update(os.environ if env is None else env)
    return variables, problem


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return str(exc)


def _cut(text: str) -> str:
    # Messages quote what the user wrote; keep a runaway line readable.
    return text if len(text) <= 30 else text[:27] + "..."
