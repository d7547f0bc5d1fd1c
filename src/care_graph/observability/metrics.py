"""Prometheus metrics: requests by operation and outcome code, and the pool.

Labels are bounded: an operation name comes from the client's document, so only the first
``MAX_OPERATION_NAMES`` distinct names are kept and any later one is counted as ``other``;
an outcome code is ``OK`` or one of the project's stable error codes, anything else ``other``.
No label ever holds a variable, a query text or a record, so nothing here is patient data.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

import asyncpg
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from care_graph.api.errors import ApiErrorCode
from care_graph.errors import CareGraphError, ErrorCode

MAX_OPERATION_NAMES = 100
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
POOL_WAITING = Gauge(
    "care_graph_pool_waiting",
    "Requests waiting for a database connection",
    registry=REGISTRY,
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
    """What the live collector reads of db/live.py's LiveEvents."""

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up."""

    def subscriber_count(self) -> int:
        """Live subscriptions open in this process."""


class LiveCollector(Collector):
    """Live subscriptions and whether the listener is connected, read at scrape time."""

    def __init__(self) -> None:
        self.live: Listening | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Subscriptions open and the listener's state (1 connected, 0 not)."""
        subscriptions = GaugeMetricFamily(
            "care_graph_live_subscriptions", "Live subscriptions open"
        )
        connected = GaugeMetricFamily(
            "care_graph_listener_connected", "1 while the LISTEN connection is up, else 0"
        )
        if self.live is not None:
            subscriptions.add_metric([], self.live.subscriber_count())
            connected.add_metric([], 1 if self.live.listening else 0)
        yield subscriptions
        yield connected


class PoolCollector(Collector):
    """Connections of the server's pool in use, read at scrape time."""

    def __init__(self) -> None:
        self.pool: asyncpg.Pool[Any] | None = None

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Connections in use and open, or nothing while no pool is open."""
        family = GaugeMetricFamily(
            "care_graph_pool_in_use", "Database connections lent to requests"
        )
        size = GaugeMetricFamily("care_graph_pool_size", "Database connections open")
        if self.pool is not None:
            family.add_metric([], self.pool.get_size() - self.pool.get_idle_size())
            size.add_metric([], self.pool.get_size())
        yield family
        yield size


POOL = PoolCollector()
REGISTRY.register(POOL)
LIVE = LiveCollector()
REGISTRY.register(LIVE)


def now() -> float:
    """A monotonic clock reading, for latencies."""
    return time.perf_counter()


async def metrics(request: Request) -> Response:
    """The Prometheus text exposition of every family (docs/observability.md)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
