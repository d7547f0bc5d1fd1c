"""Test fixtures: shared databases on the run's PostgreSQL (see the root conftest.py) and
connections to them that roll back what each test writes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from typing import Any

import asyncpg
import pytest
from hypothesis import settings

from care_graph.db.pool import connect
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory

# `pytest --hypothesis-profile long`: the stateful property tests run many more, longer
# sequences (tests/test_bookable_paths.py reads the profile's name)
settings.register_profile("long", deadline=None)


@pytest.fixture(scope="session")
def migrated_url(databases: DatabaseFactory) -> str:
    """One migrated, empty database shared by tests that roll back what they write."""
    return databases.create()


@pytest.fixture(scope="session")
def seeded_url(databases: DatabaseFactory) -> str:
    """One database holding the tiny demo data (seed 7), shared by read-only tests."""
    return databases.create(seeded=True)


@pytest.fixture(scope="module")
def own_seeded_url(databases: DatabaseFactory) -> str:
    """The same tiny demo in a database of the module's own, for tests that write: their
    writes (the audit events of patient reads too) never reach the shared seeded database."""
    return databases.create(seeded=True)


@pytest.fixture
async def connection(migrated_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection to the shared migrated database inside a transaction rolled back after."""
    connection = await connect(migrated_url)
    transaction = connection.transaction()
    await transaction.start()
    try:
        yield connection
    finally:
        await transaction.rollback()
        await connection.close()


@pytest.fixture
async def seeded(seeded_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    """A connection to the seeded database, inside a transaction rolled back after."""
    connection = await connect(seeded_url)
    transaction = connection.transaction()
    await transaction.start()
    try:
        yield connection
    finally:
        await transaction.rollback()
        await connection.close()


# An API test world anchored at today, so that "now" in queries (waiting days, candidate slots
# in the future) falls inside the data; a little larger than tiny so candidate slots exist.
API_SCALE = SCALES["tiny"].with_overrides(staff=160, referrals=800, patients=600, weeks=3)


@pytest.fixture(scope="session")
def api_url(databases: DatabaseFactory) -> str:
    """A database with demo data anchored today, shared by read-only API tests."""
    return databases.create(seeded=True, anchor=date.today(), scale=API_SCALE)
