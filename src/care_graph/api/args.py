"""Argument values and bind parameters for generated SQL.

The compiler caches SQL text per query shape and recomputes only the parameter values per
request, so every parameter is recorded as a function of the request's variables. An ``Arg`` is
one argument value: what it is in the request at hand (to decide the SQL's shape) and how to get
it from any request's variables (to fill the parameters).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from care_graph.auth import Viewer


@dataclass(frozen=True, slots=True)
class RequestValues:
    """What parameters are computed from: a request's coerced variables (graphql-core's
    VariableValues, or {} on the resolver path) and the verified viewer."""

    variables: Any
    viewer: Viewer


Getter = Callable[[RequestValues], Any]

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def plain(value: Any) -> Any:
    """Argument values as plain data: enum members become their codes, keys become snake_case,
    strawberry input objects become dicts."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {_CAMEL.sub("_", key).lower(): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if hasattr(value, "__strawberry_definition__"):
        return {name: plain(item) for name, item in vars(value).items()}
    return value


@dataclass(frozen=True, slots=True)
class Arg:
    """One argument (or part of one): its value now, and how to get it from other variables."""

    value: Any
    getter: Getter

    @classmethod
    def constant(cls, value: Any) -> Arg:
        """An argument whose value never changes (the resolver path's arguments)."""
        value = plain(value)
        return cls(value, lambda _request: value)

    def field(self, name: str) -> Arg:
        """The named field of an input-object argument (None where it is absent)."""
        parent = self.getter
        return Arg(
            (self.value or {}).get(name),
            lambda request: (parent(request) or {}).get(name),
        )

    @property
    def is_set(self) -> bool:
        """True when the argument has a value (not null or absent)."""
        return self.value is not None


class Params:
    """Collects bind parameters in order; each ``add`` returns its placeholder (``$n``)."""

    def __init__(self) -> None:
        self.getters: list[Getter] = []

    def add(self, arg: Arg, convert: Callable[[Any], Any] | None = None) -> str:
        """A placeholder for ``arg``'s value (passed through ``convert`` at execution)."""
        if convert is None:
            self.getters.append(arg.getter)
        else:
            getter = arg.getter
            self.getters.append(lambda request: convert(getter(request)))
        return f"${len(self.getters)}"

    def values(self, request: RequestValues) -> list[Any]:
        """Every parameter's value for one request."""
        return [getter(request) for getter in self.getters]
