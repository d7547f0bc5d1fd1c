"""Schema migrations: numbered plain-SQL files shipped in the package, each applied once in its
own transaction and recorded with a checksum, so an edited file that already ran is refused."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

import asyncpg

from care_graph.db.pool import Connection
from care_graph.errors import CareGraphError, ErrorCode

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x6361726567  # one migrator at a time across processes (several uvicorn workers)

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    checksum text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file's text: what was applied must never change afterwards."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available_migrations() -> list[Migration]:
    """The migrations shipped with this version of care_graph, in order."""
    found = []
    for entry in resources.files("care_graph.db").joinpath("migrations").iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda migration: migration.version)
    return found


async def applied_checksums(connection: Connection) -> dict[int, str]:
    """Version → checksum of every migration recorded in this database (empty if none)."""
    exists = await connection.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await connection.fetch("SELECT version, checksum FROM schema_migrations")
    return {row["version"]: row["checksum"] for row in rows}


def _check_unchanged(applied: dict[int, str], migrations: list[Migration]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise CareGraphError(
                ErrorCode.MIGRATION_CHANGED,
                f"migration {migration.version:04d}_{migration.name}.sql has changed since it was"
                " applied; add a new migration instead of editing an applied one",
            )


async def pending_migrations(connection: asyncpg.Connection[Any]) -> list[Migration]:
    """Migrations not yet applied here; raises if an applied one has changed."""
    applied = await applied_checksums(connection)
    migrations = available_migrations()
    _check_unchanged(applied, migrations)
    return [migration for migration in migrations if migration.version not in applied]


async def migrate(connection: asyncpg.Connection[Any]) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied.

    Idempotent: a second run applies nothing. Refuses to run at all if an applied file changed.
    """
    await connection.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await connection.execute(_CREATE_LEDGER)
        applied_now = []
        for migration in await pending_migrations(connection):
            async with connection.transaction():
                await connection.execute(migration.sql)
                await connection.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied_now.append(migration)
        return applied_now
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def current_version(connection: Connection) -> int:
    """The highest migration version applied here, 0 for an empty database."""
    applied = await applied_checksums(connection)
    return max(applied, default=0)


def latest_version() -> int:
    """The highest migration version this code ships."""
    return max((migration.version for migration in available_migrations()), default=0)


async def reset_schema(connection: asyncpg.Connection[Any]) -> None:
    """Drop every table, function and extension care_graph made, leaving an empty schema."""
    await connection.execute(
        "DROP SCHEMA public CASCADE; CREATE SCHEMA public; GRANT ALL ON SCHEMA public TO public"
    )
