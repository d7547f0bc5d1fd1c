"""Live changes from PostgreSQL's LISTEN/NOTIFY, fanned out to in-process subscribers.

Writers call ``pg_notify`` inside their transactions, so a change is announced only once it is
committed. Each server process keeps one listening connection, which is what makes
subscriptions work across several uvicorn workers: every worker hears every change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson

from care_graph.db.pool import connect
from care_graph.errors import CareGraphError, ErrorCode

SLOTS = "care_graph_slots"
APPOINTMENTS = "care_graph_appointments"
OFFERS = "care_graph_offers"
CHANNELS = (SLOTS, APPOINTMENTS, OFFERS)
QUEUE_LIMIT = 1000  # a subscriber this far behind loses its oldest events, not the server

logger = logging.getLogger("care_graph.live")


class LiveInterrupted(CareGraphError):
    """The listening connection was lost: events may have been missed, so a subscriber must
    subscribe again and re-read what it shows (LIVE_EVENTS_INTERRUPTED)."""

    def __init__(self) -> None:
        super().__init__(
            ErrorCode.LIVE_EVENTS_INTERRUPTED,
            "live events were interrupted and may have been missed: subscribe again and"
            " re-read what you show",
        )


# the event a queue receives when its subscriber must start again
_INTERRUPTED: dict[str, Any] = {"__interrupted__": True}
RECONNECT_BACKOFF_S = (0.1, 0.2, 0.5, 1.0, 2.0)  # then every 2 s until it comes back


class LiveEvents:
    """One LISTEN connection per process and the queues of its subscribers. When the
    connection is lost (a killed backend, a restart, a failover) it is opened again with
    backoff, and every subscriber is told it may have missed events."""

    def __init__(self) -> None:
        self._connection: asyncpg.Connection[Any] | None = None
        self._url = ""
        self._reconnecting: asyncio.Task[None] | None = None
        self._stopped = False
        self._subscribers: dict[str, set[asyncio.Queue[dict[str, Any]]]] = {
            channel: set() for channel in CHANNELS
        }

    def subscriber_count(self) -> int:
        """Subscriptions open in this process (care_graph_live_subscriptions)."""
        return sum(len(queues) for queues in self._subscribers.values())

    @property
    def listening(self) -> bool:
        """Whether the listening connection is open now."""
        return self._connection is not None and not self._connection.is_closed()

    async def start(self, url: str) -> None:
        """Open the listening connection."""
        self._url, self._stopped = url, False
        await self._listen()

    async def _listen(self) -> None:
        connection = await connect(self._url)
        try:
            for channel in CHANNELS:
                await connection.add_listener(channel, self._deliver)
        except BaseException:
            connection.terminate()  # half set up: never leave it open
            raise
        connection.add_termination_listener(self._lost)
        self._connection = connection

    def _lost(self, _connection: Any) -> None:
        if self._stopped or self._reconnecting is not None:
            return
        logger.warning("the listening connection was lost; opening it again")
        self._connection = None
        self._reconnecting = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        attempt = 0
        while not self._stopped:
            await asyncio.sleep(RECONNECT_BACKOFF_S[min(attempt, len(RECONNECT_BACKOFF_S) - 1)])
            attempt += 1
            try:
                await self._listen()
            except Exception:  # whatever went wrong, the listener must keep trying
                logger.warning("opening the listening connection failed; trying again")
                continue
            logger.info("listening again after %d attempts", attempt)
            self._reconnecting = None
            for queues in self._subscribers.values():
                for queue in queues:
                    self._put(queue, _INTERRUPTED)
            return

    async def stop(self) -> None:
        """Close the listening connection (and stop reopening it)."""
        self._stopped = True
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnecting
            self._reconnecting = None
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    def _deliver(self, _connection: Any, _pid: int, channel: str, payload: object) -> None:
        event = orjson.loads(str(payload))
        for queue in self._subscribers.get(channel, ()):
            self._put(queue, event)

    @staticmethod
    def _put(queue: asyncio.Queue[dict[str, Any]], event: dict[str, Any]) -> None:
        if queue.full():
            queue.get_nowait()
            logger.warning("a slow subscriber lost an event")
        queue.put_nowait(event)

    async def subscribe(self, channel: str) -> AsyncIterator[dict[str, Any]]:
        """Every event on ``channel`` from now on, until the caller stops iterating;
        LiveInterrupted once events may have been missed."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers[channel].add(queue)
        try:
            while True:
                event = await queue.get()
                if event is _INTERRUPTED:
                    raise LiveInterrupted()
                yield event
        finally:
            self._subscribers[channel].discard(queue)
