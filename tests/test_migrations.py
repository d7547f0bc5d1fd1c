"""Migrations: applied once each, idempotent, and guarded by checksums."""

from __future__ import annotations

import asyncpg
import pytest

from care_graph.db.migrate import (
    available_migrations,
    current_version,
    latest_version,
    migrate,
    pending_migrations,
    reset_schema,
)
from care_graph.db.pool import connect
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.testing import DatabaseFactory


@pytest.fixture
def empty_url(databases: DatabaseFactory) -> str:
    return databases.create(migrated=False)


def test_migrations_are_numbered_in_order() -> None:
    versions = [migration.version for migration in available_migrations()]
    assert versions == sorted(versions)
    assert len(set(versions)) == len(versions)
    assert versions[0] == 1


async def test_migrate_applies_everything_once(empty_url: str) -> None:
    connection = await connect(empty_url)
    try:
        assert await current_version(connection) == 0
        first = await migrate(connection)
        assert [m.version for m in first] == [m.version for m in available_migrations()]
        assert await migrate(connection) == []
        assert await pending_migrations(connection) == []
        assert await current_version(connection) == latest_version()
        recorded = await connection.fetch("SELECT version, checksum FROM schema_migrations")
        assert {r["version"]: r["checksum"] for r in recorded} == {
            m.version: m.checksum for m in available_migrations()
        }
    finally:
        await connection.close()


async def test_a_changed_migration_is_refused(empty_url: str) -> None:
    connection = await connect(empty_url)
    try:
        await migrate(connection)
        await connection.execute(
            "UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1"
        )
        with pytest.raises(CareGraphError) as caught:
            await migrate(connection)
        assert caught.value.code is ErrorCode.MIGRATION_CHANGED
        assert "0001_core.sql has changed since it was applied" in caught.value.message
    finally:
        await connection.close()


async def test_a_failing_migration_leaves_nothing(empty_url: str) -> None:
    connection = await connect(empty_url)
    try:
        await connection.execute("CREATE TABLE regions (code text)")  # collides with 0001
        with pytest.raises(asyncpg.DuplicateTableError):
            await migrate(connection)
        assert await current_version(connection) == 0
        assert await connection.fetchval("SELECT to_regclass('services')") is None
    finally:
        await connection.close()


async def test_reset_then_migrate_gives_an_empty_current_schema(empty_url: str) -> None:
    connection = await connect(empty_url)
    try:
        await migrate(connection)
        await reset_schema(connection)
        assert await current_version(connection) == 0
        await migrate(connection)
        assert await current_version(connection) == latest_version()
        assert await connection.fetchval("SELECT count(*) FROM services") == 0
    finally:
        await connection.close()
