"""Load generated demo data into PostgreSQL with COPY, in one transaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC
from typing import Any

import asyncpg
import numpy as np

from care_graph.errors import CareGraphError, ErrorCode
from care_graph.seed.generate import Column, DemoData, Table

# Every table the demo data fills, children first: the order to empty them in.
DATA_TABLES = (
    "audit_events",
    "idempotency_keys",
    "appointments",
    "referral_clock_events",
    "referrals",
    "patients",
    "slots",
    "roster_shifts",
    "staff_leave",
    "staff_sites",
    "staff_skills",
    "staff",
    "site_services",
    "sites",
    "services",
    "skills",
    "regions",
)


_WITHOUT_ID = frozenset(
    {"regions", "skills", "site_services", "staff_skills", "staff_sites", "idempotency_keys"}
)


def _python_values(column: Column) -> list[Any]:
    """Values asyncpg can encode: timestamps become aware UTC datetimes, NaT becomes NULL."""
    if isinstance(column, list):
        return column
    if column.dtype == np.dtype("datetime64[us]"):
        return [None if value is None else value.replace(tzinfo=UTC) for value in column.tolist()]
    return list(column.tolist())


def table_records(table: Table) -> list[tuple[Any, ...]]:
    """A table's rows as tuples ready for COPY."""
    return list(zip(*(_python_values(column) for column in table.columns.values()), strict=True))


async def database_is_empty(connection: asyncpg.Connection[Any]) -> bool:
    """True when no demo or real data has been loaded (the reference tables are empty)."""
    return not await connection.fetchval("SELECT EXISTS (SELECT 1 FROM services)")


async def clear(connection: asyncpg.Connection[Any]) -> None:
    """Empty every data table (the schema and migrations stay)."""
    await connection.execute(f"TRUNCATE {', '.join(DATA_TABLES)} RESTART IDENTITY")


async def ensure_loadable(connection: asyncpg.Connection[Any], *, replace: bool) -> None:
    """Refuse to load over existing data unless the caller asked to replace it."""
    if not replace and not await database_is_empty(connection):
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT,
            "the database already holds data; pass --replace to empty it first",
        )


async def load(
    connection: asyncpg.Connection[Any],
    data: DemoData,
    *,
    replace: bool = False,
    progress: Callable[[str, int], None] | None = None,
) -> None:
    """COPY every table in one transaction, then move identity sequences past the loaded ids.

    Refuses to load over existing data unless ``replace`` (which empties the tables first).
    """
    report = progress or (lambda _name, _rows: None)
    async with connection.transaction():
        await ensure_loadable(connection, replace=replace)
        if replace:
            await clear(connection)
        for table in data.tables:
            await connection.copy_records_to_table(
                table.name, records=table_records(table), columns=list(table.columns)
            )
            report(table.name, len(table))
        await advance_identities(connection)
    await connection.execute("ANALYZE")


async def advance_identities(connection: asyncpg.Connection[Any]) -> None:
    """Move every identity sequence past the largest id its table holds, so rows inserted with
    explicit ids (COPY, fixtures) do not collide with the next generated one."""
    for table in DATA_TABLES:
        # table names come from DATA_TABLES, never from user input
        await connection.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"  # noqa: S608
            f" greatest((SELECT max(id) FROM {table}), 1))"
            if table not in _WITHOUT_ID
            else "SELECT 1"
        )
