"""Prometheus metrics: requests by operation and outcome code, the pool, bookings, offers,
the matcher and live events; summed over the workers when several serve.

Labels are bounded: an operation name comes from the client's document, so only the first
``MAX_OPERATION_NAMES`` distinct names are kept and any later one is counted as ``other``;
an outcome code is ``OK`` or one of the project's stable error codes, anything else ``other``.
No label ever holds a variable, a query text or a record, so nothing here is patient data.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import asyncpg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response

from care_graph.api.errors import ApiErrorCode
from care_graph.errors import CareGraphError, ErrorCode

MAX_OPERATION_NAMES = 100  # per process: a fleet of N workers keeps at most N times as many
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
REFRESH_S = 1.0
OTHER = "other"
ANONYMOUS = "anonymous"
OK = "OK"
_CODES = frozenset(code.value for code in ErrorCode) | frozenset(
    code.value for code in ApiErrorCode
)
_CODE = re.compile(rb'"errors":\[\{.*?"code":"([A-Z_]{1,64})"', re.DOTALL)

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "care_graph_requests",
    "GraphQL operations answered, by operation type, name and outcome code",
    ("type", "operation", "code"),
    registry=REGISTRY,
)
LATENCY = Histogram(
    "care_graph_request_seconds",
    "Time to answer a GraphQL operation, by operation type and name",
    ("type", "operation"),
    registry=REGISTRY,
)
# gauges are summed over the live workers, but for the listener: the least, so 0 shows that
# some worker's listener is down
POOL_WAITING = Gauge(
    "care_graph_pool_waiting",
    "Requests waiting for a database connection",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
POOL_IN_USE = Gauge(
    "care_graph_pool_in_use",
    "Database connections lent to requests",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "care_graph_pool_size",
    "Database connections open",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
LIVE_SUBSCRIPTIONS = Gauge(
    "care_graph_live_subscriptions",
    "Live subscriptions open",
    registry=REGISTRY,
    multiprocess_mode="livesum",
)
LISTENER_CONNECTED = Gauge(
    "care_graph_listener_connected",
    "1 while the LISTEN connection is up (of every worker's), else 0",
    registry=REGISTRY,
    multiprocess_mode="livemin",
)
STATEMENTS = Histogram(
    "care_graph_statement_seconds",
    "Time PostgreSQL took to answer a statement on the server's pool",
    registry=REGISTRY,
)
BOOKINGS = Counter(
    "care_graph_bookings",
    "Bookings attempted (booked directly or an offer accepted), by outcome code",
    ("code",),
    registry=REGISTRY,
)
OFFERS = Counter("care_graph_offers", "Slots offered to waiting referrals", registry=REGISTRY)
LAPSED = Counter("care_graph_offers_lapsed", "Offers whose hold lapsed", registry=REGISTRY)
SOLVES = Histogram(
    "care_graph_matcher_solve_seconds",
    "Time the compiled matcher took to choose the slots to offer",
    registry=REGISTRY,
)
READ_ROUTES = Counter(
    "care_graph_read_routes",
    "Reads sent to a standby, or to the primary (none caught up, or none configured)",
    ("to",),
    registry=REGISTRY,
)
_known_names: set[str] = set()
T = TypeVar("T")


def operation_label(name: str | None) -> str:
    """The label for an operation name: the name itself while fewer than
    ``MAX_OPERATION_NAMES`` have been seen, ``other`` beyond, so a client cannot grow the
    series without bound."""
    if not name:
        return ANONYMOUS
    if name in _known_names:
        return name
    if len(_known_names) < MAX_OPERATION_NAMES:
        _known_names.add(name)
        return name
    return OTHER


def code_label(code: str | None) -> str:
    """``OK``, a stable error code, or ``other``: never free text."""
    if code is None:
        return OK
    return code if code in _CODES else OTHER


def outcome_of(body: bytes) -> str:
    """The outcome code of a response body: its first error's code, or ``OK``."""
    if b'"errors"' not in body:
        return OK
    found = _CODE.search(body)
    return code_label(found.group(1).decode()) if found else OTHER


@contextmanager
def waiting_for_connection() -> Iterator[None]:
    """Count a request as waiting for a connection while the block runs."""
    POOL_WAITING.inc()
    try:
        yield
    finally:
        POOL_WAITING.dec()


@contextmanager
def solving() -> Iterator[None]:
    """Time one matcher solve (care_graph_matcher_solve_seconds)."""
    with SOLVES.time():
        yield


def observe_request(kind: str, name: str | None, code: str, started: float) -> None:
    """Record one answered operation: its type (query, mutation, subscription), its name,
    its outcome code and the time since ``started`` (a ``now()`` reading)."""
    operation = operation_label(name)
    REQUESTS.labels(kind, operation, code_label(None if code == OK else code)).inc()
    LATENCY.labels(kind, operation).observe(time.perf_counter() - started)


def statement(query: Any) -> None:
    """A query logger for asyncpg (``Connection.add_query_logger``): only the elapsed time is
    read, never the statement's arguments."""
    STATEMENTS.observe(query.elapsed)


async def booking(attempt: Awaitable[T]) -> T:
    """Await a booking and count its outcome: ``OK`` or its stable error code."""
    try:
        done = await attempt
    except CareGraphError as error:
        BOOKINGS.labels(code_label(error.code)).inc()
        raise
    BOOKINGS.labels(OK).inc()
    return done


class Listening(Protocol):
    """What the gauges read of db/live.py's LiveEvents."""

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up."""

    def subscriber_count(self) -> int:
        """Live subscriptions open in this process."""


@dataclass
class Sources:
    """The process's pool and live events, read into the gauges below whenever they are
    refreshed; None while the app is not serving."""

    pool: asyncpg.Pool[Any] | None = None
    live: Listening | None = None


SOURCES = Sources()


def refresh() -> None:
    """Read this process's pool and live events into their gauges: at each scrape, and every
    ``REFRESH_S`` when several workers serve (each writes its own values for the others'
    scrapes to sum)."""
    pool, live = SOURCES.pool, SOURCES.live
    if pool is not None:
        POOL_IN_USE.set(pool.get_size() - pool.get_idle_size())
        POOL_SIZE.set(pool.get_size())
    if live is not None:
        LIVE_SUBSCRIPTIONS.set(live.subscriber_count())
        LISTENER_CONNECTED.set(1 if live.listening else 0)


async def refresh_forever() -> None:
    """Refresh the gauges every ``REFRESH_S`` while several workers serve; a single process
    is read at scrape time and needs none of this."""
    if not multiprocess_dir():
        return
    while True:
        refresh()
        await asyncio.sleep(REFRESH_S)


def multiprocess_dir() -> str | None:
    """Where the workers' metric files are kept, when several serve (prometheus-client's
    multiprocess mode, set up by `care-graph serve --workers`)."""
    return os.environ.get(MULTIPROCESS_DIR) or None


@contextmanager
def shared_by_workers(workers: int) -> Iterator[None]:
    """While the block runs, let ``workers`` processes keep their metrics in one directory,
    so that a scrape of any of them counts them all: a fresh temporary one, or the operator's
    ``PROMETHEUS_MULTIPROC_DIR``, emptied of an earlier run's files first. One worker needs
    none (unless the operator set one)."""
    chosen = multiprocess_dir()
    if chosen is not None:
        for stale in Path(chosen).glob("*.db"):
            stale.unlink()
        yield
        return
    if workers == 1:
        yield
        return
    with tempfile.TemporaryDirectory(prefix="care-graph-metrics-") as made:
        os.environ[MULTIPROCESS_DIR] = made  # the workers, started after this, inherit it
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR]


def process_exits() -> None:
    """Drop this process's live gauges from the workers' sums as it exits cleanly."""
    if multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def now() -> float:
    """A monotonic clock reading, for latencies."""
    return time.perf_counter()


async def metrics(request: Request) -> Response:
    """The Prometheus text exposition of every family (docs/observability.md): of every worker
    together when several serve, whichever of them answers the scrape."""
    refresh()
    if multiprocess_dir():
        together = CollectorRegistry()
        multiprocess.MultiProcessCollector(together)  # type: ignore[no-untyped-call]
        return Response(generate_latest(together), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
