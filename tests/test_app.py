"""Health and readiness through real ASGI requests against the real database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest

from care_graph.app import create_app
from care_graph.config import Settings
from care_graph.db.migrate import latest_version
from care_graph.errors import CareGraphError
from care_graph.testing import DatabaseFactory, asgi_client


def settings_for(url: str) -> Settings:
    return replace(Settings.from_environment(), database_url=url)


@pytest.fixture
async def client(migrated_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(migrated_url) as client:
        yield client


async def test_healthz_is_liveness_alone(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_current(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"ready": True, "migration": latest_version()}


@pytest.fixture
def unmigrated_url(databases: DatabaseFactory) -> str:
    return databases.create(migrated=False)


async def test_readyz_refuses_when_migrations_are_pending(unmigrated_url: str) -> None:
    async with asgi_client(unmigrated_url) as client:
        response = await client.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "ready": False,
            "reason": f"migrations pending: at 0, need {latest_version()}",
        }


def test_app_needs_a_database_url() -> None:
    with pytest.raises(CareGraphError, match="DATABASE_URL is not set"):
        create_app(replace(Settings.from_environment(), database_url=None))
