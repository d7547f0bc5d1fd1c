"""PostgreSQL as the second wall: the API runs as a role that owns nothing, under row-level
security, and the audit trail is append-only for it.

The read oracle's visibility tests run here a second time against an app whose own row filters
are switched off: the database's policies alone must give every caller exactly their rows,
no foreign row and no missing one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from care_graph.db.pool import create_pool
from care_graph.db.row_security import APP_ROLE, SESSION_SETTINGS, see_as_viewer
from care_graph.testing import DatabaseFactory, asgi_client, fetch_one
from tests.test_read_oracle import (
    test_lists_agree_with_the_oracle,
    test_lookups_by_id_hide_what_the_caller_may_not_see,
    world,
    world_url,
)

__all__ = [  # collected here again, with the client below
    "test_lists_agree_with_the_oracle",
    "test_lookups_by_id_hide_what_the_caller_may_not_see",
    "world",
    "world_url",
]


@pytest.fixture
async def client(world_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The oracle's client, on an app that leaves rows to the database's policies alone."""
    async with asgi_client(world_url, sweep_seconds=0, row_filters=False) as client:
        yield client


@pytest.fixture(scope="module")
def seeded_url(databases: DatabaseFactory) -> str:
    return databases.create(seeded=True)


@pytest.fixture
async def api_pool(seeded_url: str) -> AsyncIterator[asyncpg.Pool[Any]]:
    """A pool set up as the API's is."""
    pool = await create_pool(
        seeded_url, min_size=1, max_size=2, statement_timeout_ms=0, session=SESSION_SETTINGS
    )
    try:
        yield pool
    finally:
        await pool.close()


async def test_the_api_runs_as_a_role_that_owns_nothing(api_pool: asyncpg.Pool[Any]) -> None:
    async with api_pool.acquire() as connection:
        assert await connection.fetchval("SELECT current_user") == APP_ROLE
        owned = await connection.fetchval(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = current_user"
        )
        assert owned == 0
        assert not await connection.fetchval(
            "SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute("DROP TABLE patients")
    # the role is the session's default: a connection given back and borrowed again keeps it
    async with api_pool.acquire() as connection:
        await connection.execute("RESET ALL")
        assert await connection.fetchval("SELECT current_user") == APP_ROLE


async def test_every_table_with_patient_data_is_under_row_security(
    api_pool: asyncpg.Pool[Any],
) -> None:
    async with api_pool.acquire() as connection:
        secured = {
            row["relname"]
            for row in await connection.fetch(
                "SELECT relname FROM pg_class WHERE relrowsecurity AND relkind = 'r'"
            )
        }
    assert {
        "patients",
        "referrals",
        "appointments",
        "referral_clock_events",
        "audit_events",
        "idempotency_keys",
    } <= secured


async def test_a_viewer_sees_only_their_rows_even_without_our_filters(
    api_pool: asyncpg.Pool[Any],
) -> None:
    async with api_pool.acquire() as connection:
        everyone = await connection.fetchval("SELECT count(*) FROM patients")
        assert everyone > 1  # the domain services' default: every row
        some_patient = await connection.fetchval("SELECT min(id) FROM patients")
        async with connection.transaction():
            await see_as_viewer(connection, "patient", "p", some_patient)
            assert await connection.fetchval("SELECT array_agg(id) FROM patients") == [some_patient]
            foreign = await connection.fetchval(
                "SELECT count(*) FROM referrals WHERE patient_id <> $1", some_patient
            )
            assert foreign == 0
            assert await connection.fetchval("SELECT count(*) FROM audit_events") == 0
        async with connection.transaction():
            await see_as_viewer(connection, "referrer", "nobody-at-all", None)
            assert await connection.fetchval("SELECT count(*) FROM patients") == 0
            assert await connection.fetchval("SELECT count(*) FROM appointments") == 0
        async with connection.transaction():
            await see_as_viewer(connection, "no such role", "x", None)
            assert await connection.fetchval("SELECT count(*) FROM referrals") == 0
        # the settings end with their transaction
        assert await connection.fetchval("SELECT count(*) FROM patients") == everyone


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "DELETE FROM schema_migrations",
    ],
)
async def test_the_audit_trail_is_append_only_for_the_api(
    api_pool: asyncpg.Pool[Any], statement: str
) -> None:
    async with api_pool.acquire() as connection:
        await connection.execute(
            "INSERT INTO audit_events (actor, actor_role, operation, record_type)"
            " VALUES ('tester', 'admin', 'READ', 'patient')"
        )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await connection.execute(statement)


@pytest.fixture(scope="module")
def world_db_url(databases: DatabaseFactory) -> str:
    from tests.test_auth import WORLD

    return databases.create(sql=WORLD)


async def test_a_failed_read_does_not_undo_the_audit_of_the_reads_before_it(
    world_db_url: str,
) -> None:
    """Review finding: on the resolver path one read PostgreSQL refused aborted the request's
    transaction, so its COMMIT rolled back the READ audit events of the patient records
    already returned. Each read is now a savepoint."""
    from care_graph.api.ids import encode_global_id
    from care_graph.auth import Role
    from care_graph.testing import bearer

    query = (
        '{ __type(name: "Query") { name }'  # introspection: the resolver path
        f' a: node(id: "{encode_global_id("Patient", 1)}") {{ ... on Patient {{ nhsNumber }} }}'
        f' s: node(id: "{encode_global_id("Site", 1)}") {{ ... on Site'
        " { distanceKm(latitude: 5e-324, longitude: 0) } } }"
    )

    async def audited_reads() -> int:
        [count] = await fetch_one(
            world_db_url,
            "SELECT count(*) FROM audit_events WHERE operation = 'READ'"
            " AND record_type = 'patient' AND record_id = 1",
        )
        return int(count)

    before = await audited_reads()
    async with asgi_client(world_db_url, headers=bearer(Role.ADMIN, "root")) as client:
        body = (await client.post("/graphql", json={"query": query})).json()
    assert body["data"]["a"]["nhsNumber"]
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert await audited_reads() == before + 1
