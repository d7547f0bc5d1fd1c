"""Prometheus metrics: requests by operation and outcome code, and the pool.

Labels are bounded: an operation name comes from the client's document, so only the first
``MAX_OPERATION_NAMES`` distinct names are kept and any later one is counted as ``other``;
an outcome code is ``OK`` or one of the project's stable error codes, anything else ``other``.
No label ever holds a variable, a query text or a record, so nothing here is patient data.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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
from care_graph.errors import ErrorCode

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
_known_names: set[str] = set()


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


def observe_request(kind: str, name: str | None, code: str, started: float) -> None:
    """Record one answered operation: its type (query, mutation, subscription), its name,
    its outcome code and the time since ``started`` (a ``now()`` reading)."""
    operation = operation_label(name)
    REQUESTS.labels(kind, operation, code_label(None if code == OK else code)).inc()
    LATENCY.labels(kind, operation).observe(time.perf_counter() - started)


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


def now() -> float:
    """A monotonic clock reading, for latencies."""
    return time.perf_counter()


async def metrics(request: Request) -> Response:
    """The Prometheus text exposition of every family (docs/observability.md)."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
