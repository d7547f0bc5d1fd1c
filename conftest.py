"""Fixtures shared by tests/ and benchmarks/: a real PostgreSQL and throwaway databases on it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from care_graph.testing import DatabaseFactory, database_server


@pytest.fixture(scope="session")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """DATABASE_URL when set; otherwise an embedded PostgreSQL started for this run."""
    with database_server(tmp_path_factory.mktemp("embedded")) as url:
        yield url


@pytest.fixture(scope="session")
def databases(server_url: str) -> Iterator[DatabaseFactory]:
    """Make throwaway databases; all are dropped when the run ends."""
    factory = DatabaseFactory(server_url)
    try:
        yield factory
    finally:
        factory.drop_all()
