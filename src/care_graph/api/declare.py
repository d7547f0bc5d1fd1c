"""How a GraphQL field is declared, once: its SQL rides in the strawberry field's metadata, and
both execution paths read it from there. The compiler turns it into part of one SQL statement;
the resolver path selects it column by column and resolves fields in Python.

- ``column(sql)``: a value computed from the row ``{t}``.
- ``computed(sql)``: a value with arguments, each written ``{argumentName}`` in the SQL.
- ``to_one(target, key_sql)``: the ``target`` row whose id is ``key_sql`` (null when absent).
- ``Nested(spec)`` on a list field: a page of ``spec`` joined to the row.
- ``RootRows(spec)``: a root list of plain rows (the capacity outlook), not paged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import strawberry

from care_graph.api.lists import ListSpec, RowList

SQL = "care_graph.sql"


@dataclass(frozen=True, slots=True)
class Column:
    """A scalar (or list of scalars) computed by an SQL expression over the row ``{t}``."""

    sql: str


@dataclass(frozen=True, slots=True)
class Computed:
    """A scalar with arguments: ``{t}`` is the row, ``{name}`` each argument's placeholder."""

    sql: str


@dataclass(frozen=True, slots=True)
class ToOne:
    """The ``target`` node whose id is ``key_sql`` (an expression over the row ``{t}``)."""

    target: str
    key_sql: str


@dataclass(frozen=True, slots=True)
class Nested:
    """A connection over ``spec``, whose join condition relates child ``{t}`` to parent ``{p}``."""

    spec: ListSpec


@dataclass(frozen=True, slots=True)
class Root:
    """A root connection over ``spec``."""

    spec: ListSpec


@dataclass(frozen=True, slots=True)
class RootRows:
    """A root list of the plain rows ``spec`` reads."""

    spec: RowList


def _row_value(root: Any, info: strawberry.Info) -> Any:
    return root.row[info.field_name]


def column(sql: str, description: str | None = None) -> Any:
    """Declare a field whose value is ``sql`` evaluated over the row."""
    return strawberry.field(
        resolver=_row_value, description=description, metadata={SQL: Column(sql)}
    )


def to_one(target: str, key_sql: str, description: str | None = None) -> Any:
    """Declare a link to one ``target`` node found by ``key_sql``."""
    declaration = ToOne(target, key_sql)

    async def resolve(root: Any, info: strawberry.Info) -> Any:
        key = root.row[f"__{info.field_name}"]
        return None if key is None else await info.context.loaders.node(declaration.target, key)

    return strawberry.field(resolver=resolve, description=description, metadata={SQL: declaration})


Declaration = Column | Computed | ToOne | Nested | Root | RootRows


def sql_of(metadata: dict[str, Any]) -> Declaration | None:
    """The SQL declaration of a field, if it has one."""
    found: Declaration | None = metadata.get(SQL)
    return found
