"""Reads on streaming-replication standbys (``CARE_GRAPH_REPLICA_URLS``), never stale for the
caller.

How a read decides: when it arrives, the primary's WAL position is read; a standby serves the
read only once it has replayed up to that position, so the read sees every transaction
committed before it arrived — the caller's own writes included, whichever worker made them,
and without remembering who wrote what. A standby that has not caught up within
``CATCH_UP_S``, or cannot be reached, leaves the read to the primary. Writes, and reads that
write (a patient read's audit event), never come here: the caller sends those to the primary.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager

from care_graph.db.pool import CONNECTION_FAULTS, BoundedPool, Connection
from care_graph.errors import CareGraphError
from care_graph.observability import metrics

logger = logging.getLogger(__name__)
CATCH_UP_S = 0.05  # the longest a read waits for a standby to replay up to its arrival
POLL_S = 0.002
# what sends a read elsewhere: a standby busy or unreachable, or lost while asked
STANDBY_FAULTS: tuple[type[Exception], ...] = (CareGraphError, *CONNECTION_FAULTS)


class Replicas:
    """A ConnectionSource for reads: a caught-up standby's connection, else the primary's."""

    def __init__(self, primary: BoundedPool, standbys: Sequence[BoundedPool]) -> None:
        self.primary = primary
        self.standbys = tuple(standbys)
        self._turns = itertools.cycle(range(len(self.standbys))) if standbys else None

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[Connection]:
        """A connection that sees every transaction committed before this call."""
        async with AsyncExitStack() as stack:
            connection = await self._caught_up_standby(stack) if self.standbys else None
            if connection is None:
                metrics.READ_ROUTES.labels("primary").inc()
                connection = await stack.enter_async_context(self.primary.acquire())
            else:
                metrics.READ_ROUTES.labels("standby").inc()
            yield connection

    async def close(self) -> None:
        """Close every standby's pool (the primary's is the app's to close)."""
        await asyncio.gather(*(standby.close() for standby in self.standbys))

    async def _caught_up_standby(self, stack: AsyncExitStack) -> Connection | None:
        """A standby connection, entered on ``stack``, that has replayed up to the primary's
        position now; None when none has within ``CATCH_UP_S``."""
        async with self.primary.acquire() as primary:
            position: str = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
        assert self._turns is not None
        first = next(self._turns)
        for turn in range(len(self.standbys)):
            standby = self.standbys[(first + turn) % len(self.standbys)]
            attempt = AsyncExitStack()
            try:
                connection = await attempt.enter_async_context(standby.acquire())
                if await _replayed(connection, position):
                    await stack.enter_async_context(attempt.pop_all())
                    return connection
            except STANDBY_FAULTS:
                logger.warning("a standby could not serve a read; trying elsewhere", exc_info=True)
            await attempt.aclose()
        return None


async def _replayed(connection: Connection, position: str) -> bool:
    """Whether the standby has replayed the WAL up to ``position``, waiting a little for it."""
    deadline = time.monotonic() + CATCH_UP_S
    while True:
        done = await connection.fetchval(
            "SELECT coalesce(pg_last_wal_replay_lsn() >= $1::text::pg_lsn, false)", position
        )
        if done or time.monotonic() >= deadline:
            return bool(done)
        await asyncio.sleep(POLL_S)
