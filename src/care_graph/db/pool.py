"""Connections and pools, set up the same way everywhere: JSON as orjson, a statement timeout."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from care_graph.errors import CareGraphError, ErrorCode
from care_graph.observability.metrics import statement, waiting_for_connection

logger = logging.getLogger(__name__)

# What the data-access functions take: a plain connection or one borrowed from a pool.
Connection: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"


class ConnectionSource(Protocol):
    """Where a request gets its connection: a pool, or one connection (tests, scripts)."""

    def acquire(self) -> AbstractAsyncContextManager[Connection]:
        """Borrow a connection for the duration of a ``async with``."""
        ...


# what a lost or refused connection raises, as opposed to a statement that failed
CONNECTION_FAULTS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.InterfaceError,  # the connection is closed, or closed mid-operation
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.CannotConnectNowError,
    # the client's protocol state was left broken by a connection cut mid-operation
    asyncpg.InternalClientError,
)


def unavailable(reason: str) -> CareGraphError:
    """SERVICE_UNAVAILABLE: the request may be sent again shortly (with the same idempotency
    key for a mutation, which then cannot happen twice)."""
    return CareGraphError(ErrorCode.SERVICE_UNAVAILABLE, f"{reason}; try again shortly")


@dataclass(frozen=True, slots=True)
class BoundedPool:
    """The server's pool, where waiting for a connection is bounded: past ``timeout``
    seconds a request is refused with SERVICE_UNAVAILABLE instead of queueing for as long
    as slow statements hold every connection."""

    pool: asyncpg.Pool[Any]
    timeout: float

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """Borrow a connection, waiting at most ``timeout`` seconds for one."""
        try:
            with waiting_for_connection():  # care_graph_pool_waiting
                connection = await self.pool.acquire(timeout=self.timeout)
        except TimeoutError:
            raise unavailable("every database connection is busy") from None
        except CONNECTION_FAULTS:
            raise unavailable("the database cannot be reached") from None
        try:
            yield connection
        except CONNECTION_FAULTS:
            # a connection that failed mid-operation may look reusable to the pool and is not
            connection.terminate()
            raise
        finally:
            try:
                await self.pool.release(connection)
            except CONNECTION_FAULTS:
                # the reset after the work failed, so asyncpg has dropped this connection;
                # what the work did (or the error it raised) stands, and is what is answered
                logger.info("a connection was lost on its way back to the pool")

    async def close(self) -> None:
        """Close every connection."""
        await self.pool.close()


@dataclass(frozen=True, slots=True)
class OneConnection:
    """A ConnectionSource that always lends the same connection."""

    connection: Connection

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """Lend the connection."""
        yield self.connection


def _server_settings(statement_timeout_ms: int) -> dict[str, str]:
    return {
        "statement_timeout": str(statement_timeout_ms),
        "application_name": "care_graph",
        "timezone": "UTC",
    }


async def _init_connection(connection: asyncpg.Connection[Any]) -> None:
    """Decode json/jsonb with orjson; care_graph never sends JSON through asyncpg's encoder.
    Each statement's time is observed (care_graph_statement_seconds), never its arguments."""
    connection.add_query_logger(statement)
    for json_type in ("json", "jsonb"):
        await connection.set_type_codec(
            json_type,
            schema="pg_catalog",
            encoder=lambda value: orjson.dumps(value).decode(),
            decoder=orjson.loads,
            format="text",
        )


async def connect(
    url: str,
    *,
    statement_timeout_ms: int = 0,
    session: dict[str, str] | None = None,
    connect_timeout: float = 60,
) -> asyncpg.Connection[Any]:
    """Open one connection (for the CLI, migrations and loading), or raise a clear error;
    ``session`` as for ``create_pool``; ``connect_timeout`` bounds connecting."""
    try:
        connection: asyncpg.Connection[Any] = await asyncpg.connect(
            url,
            server_settings={**_server_settings(statement_timeout_ms), **(session or {})},
            timeout=connect_timeout,
        )
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise CareGraphError(
            ErrorCode.DATABASE_UNAVAILABLE, f"cannot connect to the database: {error}"
        ) from error
    await _init_connection(connection)
    return connection


async def create_pool(
    url: str,
    *,
    min_size: int,
    max_size: int,
    statement_timeout_ms: int,
    session: dict[str, str] | None = None,
) -> asyncpg.Pool[Any]:
    """Create the server's connection pool, or raise a clear error. ``session``: further
    settings every connection starts with (and returns to when it is given back)."""
    try:
        pool: asyncpg.Pool[Any] = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=_init_connection,
            server_settings={**_server_settings(statement_timeout_ms), **(session or {})},
        )
    except (OSError, asyncpg.PostgresError) as error:
        raise CareGraphError(
            ErrorCode.DATABASE_UNAVAILABLE, f"cannot connect to the database: {error}"
        ) from error
    return pool
