"""Throwaway databases for care_graph's tests and benchmarks, on a real PostgreSQL server:
DATABASE_URL's when set, else an embedded one started for the run."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from care_graph.auth import Role, TokenSettings, mint_token
from care_graph.config import Settings
from care_graph.db.embedded import EmbeddedPostgres
from care_graph.db.migrate import migrate
from care_graph.db.pool import connect
from care_graph.seed.generate import generate
from care_graph.seed.load import advance_identities, load
from care_graph.seed.scales import SCALES, Scale

ANCHOR = date(2026, 11, 24)  # the demo data's "today" in tests: fixed, so rows are fixed
TEST_SEED = 7


@contextmanager
def database_server(scratch: Path) -> Iterator[str]:
    """The URL of DATABASE_URL's server, or of an embedded server kept in ``scratch``."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    server = EmbeddedPostgres(scratch)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


class DatabaseFactory:
    """Creates throwaway databases on a server and drops them all at the end."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.created: list[str] = []

    async def _admin(self, sql: str) -> None:
        connection = await asyncpg.connect(self.server_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    def create(
        self,
        *,
        migrated: bool = True,
        seeded: bool = False,
        anchor: date = ANCHOR,
        scale: Scale = SCALES["tiny"],
        sql: str | None = None,
    ) -> str:
        """A new database (migrated; holding demo data of ``scale`` if asked, and whatever
        ``sql`` inserts); its URL."""
        name = f"care_graph_test_{secrets.token_hex(4)}"
        asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        url = with_database(self.server_url, name)
        if migrated or seeded or sql:
            asyncio.run(_prepare(url, scale if seeded else None, anchor, sql))
        return url

    def copy(self, url: str) -> str:
        """A new database holding what the database at ``url`` holds (nobody may be connected
        to it); its URL. Much cheaper than making and filling one again."""
        name = f"care_graph_test_{secrets.token_hex(4)}"
        template = urlsplit(url).path.lstrip("/")
        asyncio.run(self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        self.created.append(name)
        return with_database(self.server_url, name)

    def drop_all(self) -> None:
        """Drop every database this factory made."""
        for name in self.created:
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.clear()


async def _prepare(url: str, scale: Scale | None, anchor: date, sql: str | None) -> None:
    connection = await connect(url)
    try:
        await migrate(connection)
        if scale is not None:
            await load(connection, generate(scale, seed=TEST_SEED, anchor=anchor))
        if sql is not None:
            await connection.execute(sql)
            await advance_identities(connection)
    finally:
        await connection.close()


async def fetch_one(url: str, sql: str, *args: Any) -> Any:
    """The first row of one statement, on a connection of its own to ``url`` (a test's look
    at the database beside the app): a record, or None."""
    connection = await connect(url)
    try:
        return await connection.fetchrow(sql, *args)
    finally:
        await connection.close()


def bearer(
    role: Role = Role.SCHEDULER,
    subject: str = "tester",
    patient_id: int | None = None,
    site_ids: tuple[int, ...] | None = None,
) -> dict[str, str]:
    """An Authorization header with a development token for this role."""
    settings = TokenSettings.from_environment(development=True)
    token = mint_token(
        settings, role=role, subject=subject, patient_id=patient_id, site_ids=site_ids
    )
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def asgi_client(
    url: str,
    *,
    headers: dict[str, str] | None = None,
    row_filters: bool = True,
    **settings: Any,
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client wired to a freshly built app (lifespan run) on the database at ``url``;
    ``settings`` override fields of the environment's Settings (``row_filters``: see
    ``create_app``)."""
    from care_graph.app import create_app

    app = create_app(
        replace(Settings.from_environment(), database_url=url, **settings),
        row_filters=row_filters,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=headers or {}, timeout=120
        ) as client:
            yield client


def free_port() -> int:
    """A local port nothing listens on now, for a server a test or benchmark starts."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@asynccontextmanager
async def live_server(url: str, **settings: Any) -> AsyncIterator[str]:
    """A real uvicorn server of the app on the database at ``url``, on a free local port, in
    this event loop; its ``host:port``. ``settings`` override fields of the environment's."""
    import uvicorn

    from care_graph.api.transport import uvicorn_options
    from care_graph.app import create_app

    port = free_port()
    config = replace(Settings.from_environment(), database_url=url, **settings)
    app = create_app(config)
    served = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            **uvicorn_options(config.limits),  # request heads bounded as `care-graph serve` does
        )
    )
    task = asyncio.create_task(served.serve())
    while not served.started:
        if task.done():
            task.result()  # it failed to start: say why
        await asyncio.sleep(0.05)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        served.should_exit = True
        await task
