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


async def test_a_held_zero_nhs_number_stops_0014(empty_url: str) -> None:
    # a database from before 0014 may hold 0000000000 (it passed the check then): 0014 checks
    # the rows it holds under the new rule, and stops rather than keep one it would refuse
    connection = await connect(empty_url)
    earlier = [migration for migration in available_migrations() if migration.version < 14]
    try:
        for migration in earlier:
            await connection.execute(migration.sql)
        await connection.execute(
            "INSERT INTO regions VALUES ('LONDON', 'London');"
            "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth, postcode,"
            " region_code, latitude, longitude) VALUES ('0000000000', 'No', 'One', '1970-01-01',"
            " 'ZZ99 3VZ', 'LONDON', 51.5, -0.1)"
        )
        fourteen = next(m for m in available_migrations() if m.version == 14)
        with pytest.raises(asyncpg.CheckViolationError) as stopped:
            async with connection.transaction():
                await connection.execute(fourteen.sql)
        assert stopped.value.constraint_name == "patients_nhs_number_valid"
        assert await connection.fetchval("SELECT nhs_number_is_valid('0000000000')") is True
        await connection.execute("UPDATE patients SET nhs_number = '9434765919'")
        await connection.execute(fourteen.sql)
        assert await connection.fetchval("SELECT nhs_number_is_valid('0000000000')") is False
    finally:
        await connection.close()
