"""A bad setting as one line: the variable, what is wrong, and an example of a good value.

``PASSGATE_PLAN_FREE_PER_MINUTE: must be at least 1; e.g. PASSGATE_PLAN_FREE_PER_MINUTE=60``

A line never carries a setting's value: URLs hold passwords and API keys, and the pepper and
signer key are secrets. Examples come from the field (``Field(examples=[...])``, written as
the environment text) or else from its default.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

ENV_PREFIX = "PASSGATE_"


def variable(field: str) -> str:
    return ENV_PREFIX + field.upper()


@dataclass(frozen=True, slots=True)
class Problem:
    field: str
    message: str
    example: str | None = None
    # Names the source instead of a variable (a .env file that cannot be read).
    label: str | None = None

    @property
    def variable(self) -> str:
        return self.label or variable(self.field)

    def __str__(self) -> str:
        line = f"{self.variable}: {self.message}"
        if self.example is not None:
            line += f"; e.g. {self.variable}={self.example}"
        return line


class SettingsError(ValueError):
    """The settings cannot be used; ``problems`` has one entry per bad setting."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))

    def lines(self) -> list[str]:
        return [str(problem) for problem in self.problems]


class Conflicts(ValueError):
    """Raised by a model validator: settings that are each fine but wrong together.

    ``problems`` pairs a field name with what is wrong; pydantic keeps the exception in the
    error's context, so every pair becomes its own line.
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(f"{variable(name)}: {text}" for name, text in self.problems))


def env_text(value: Any) -> str | None:
    """A value as it would be written in the environment (None for an unset value)."""
    if value is None:
        return None
    if isinstance(value, SecretStr):
        return None  # a secret is never an example
    if isinstance(value, list | tuple | dict) and not value:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, str | int | float | Path):
        return str(value)
    if isinstance(value, list | tuple) and all(
        isinstance(item, str | int | float) and "," not in str(item) for item in value
    ):
        return ",".join(str(item) for item in value)
    return json.dumps(_plain(value), separators=(", ", ": "))


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value


def example_of(info: FieldInfo) -> str | None:
    """A good value as shell text: the field's first example (written as it should be typed,
    quotes included), else its default, quoted for the shell (None when there is none)."""
    if info.examples:
        return str(info.examples[0])
    default = info.get_default(call_default_factory=True)
    if default is PydanticUndefined:
        return None
    text = env_text(default)
    return shlex.quote(text) if text else None


def _message(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix):]
    if len(message) > 1 and message[0].isupper() and message[1].islower():
        message = message[0].lower() + message[1:]
    return message


def _where(loc: Sequence[Any]) -> str:
    """Where inside a list or map the error is (item numbers count from 1)."""
    if "[key]" in loc:
        return ""  # a bad key: the message names it
    parts: list[str] = []
    previous: Any = None
    for part in loc:
        if isinstance(part, int):
            parts.append(f"item {part + 1}")
        else:
            # A field of a list item reads plain; a key of a map is quoted.
            parts.append(str(part) if isinstance(previous, int) else repr(part))
        previous = part
    return ", ".join(parts)


def problems_from(exc: ValidationError, fields: Mapping[str, FieldInfo]) -> list[Problem]:
    """One problem per error, in field order; a model validator's ``Conflicts`` expand."""
    problems: list[Problem] = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        context = error.get("ctx") or {}
        cause = context.get("error")
        if not loc and isinstance(cause, Conflicts):
            problems.extend(
                Problem(name, text, _example(fields, name)) for name, text in cause.problems
            )
            continue
        name = str(loc[0]) if loc else ""
        where = _where(loc[1:])
        message = _message(error)
        problems.append(
            Problem(name, f"{where}: {message}" if where else message, _example(fields, name))
        )
    order = list(fields)
    problems.sort(key=lambda p: order.index(p.field) if p.field in order else len(order))
    return problems


def _example(fields: Mapping[str, FieldInfo], name: str) -> str | None:
    info = fields.get(name)
    return example_of(info) if info is not None else None
