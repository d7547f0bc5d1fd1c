"""Live changes from PostgreSQL's LISTEN/NOTIFY, fanned out to in-process subscribers.

Writers call ``pg_notify`` inside their transactions, so a change is announced only once it is
committed. Each server process keeps one listening connection, which is what makes
subscriptions work across several uvicorn workers: every worker hears every change.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson

from care_graph.db.pool import connect

SLOTS = "care_graph_slots"
APPOINTMENTS = "care_graph_appointments"
OFFERS = "care_graph_offers"
CHANNELS = (SLOTS, APPOINTMENTS, OFFERS)
QUEUE_LIMIT = 1000  # a subscriber this far behind loses its oldest events, not the server

logger = logging.getLogger("care_graph.live")


class LiveEvents:
    """One LISTEN connection per process and the queues of its subscribers."""

    def __init__(self) -> None:
        self._connection: asyncpg.Connection[Any] | None = None
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {
            channel: set() for channel in CHANNELS
        }

    async def start(self, url: str) -> None:
        """Open the listening connection."""
        self._connection = await connect(url)
        for channel in CHANNELS:
            await self._connection.add_listener(channel, self._deliver)

    async def stop(self) -> None:
        """Close the listening connection."""
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    def _deliver(self, _connection: Any, _pid: int, channel: str, payload: object) -> None:
        event = orjson.loads(str(payload))
        for queue in self._subscribers.get(channel, ()):
            if queue.full():
                queue.get_nowait()
                logger.warning("a slow subscriber on %s lost an event", channel)
            queue.put_nowait(event)

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        """Every event on ``channel`` from now on, until the caller stops iterating."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers[channel].add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._subscribers[channel].discard(queue)
