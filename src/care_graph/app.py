"""The starlette application: GraphQL at /graphql, health at /healthz, readiness at /readyz."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute

from care_graph.api import graphiql
from care_graph.api.documents import Documents
from care_graph.api.going_away import before_server_stops
from care_graph.api.http import graphql
from care_graph.api.rate_limits import RateLimiter
from care_graph.api.request_ids import RequestIds
from care_graph.api.schema import build_schema
from care_graph.api.service import GraphQLService
from care_graph.api.transport import HeaderLimit
from care_graph.api.websocket import GraphQLWebSocket
from care_graph.auth import TokenSettings
from care_graph.config import RateStore, Settings
from care_graph.dashboard.routes import dashboard_routes
from care_graph.db.live import LiveEvents
from care_graph.db.migrate import current_version, latest_version
from care_graph.db.pool import (
    CONNECTION_FAULTS,
    BoundedPool,
    ConnectionSource,
    connect,
    create_pool,
)
from care_graph.db.rate_store import forget_idle_buckets
from care_graph.db.replicas import Replicas
from care_graph.db.row_security import SESSION_SETTINGS
from care_graph.domain.offers import SWEEP_BATCH, sweep_lapsed_holds
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.fhir.http import fhir_routes
from care_graph.observability import metrics, tracing
from care_graph.observability.tracing import TracedRequests

logger = logging.getLogger(__name__)
READY_TIMEOUT_S = 2.0
NOT_READY: tuple[type[Exception], ...] = (
    TimeoutError,
    CareGraphError,
    asyncpg.PostgresError,
    *CONNECTION_FAULTS,
)


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process and its event loop answer. It asks nothing of the database, so
    a saturated pool or a database failover never gets a live server restarted."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: the database answers, on a connection of its own opened with a short
    timeout (never one the requests are waiting for), and every shipped migration is applied."""
    settings: Settings = request.app.state.settings
    expected = latest_version()
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            connection = await connect(settings.database_url or "", connect_timeout=READY_TIMEOUT_S)
            try:
                version = await current_version(connection)
            finally:
                await connection.close()
    except NOT_READY:
        return JSONResponse({"ready": False, "reason": "database unreachable"}, status_code=503)
    if version != expected:
        return JSONResponse(
            {"ready": False, "reason": f"migrations pending: at {version}, need {expected}"},
            status_code=503,
        )
    return JSONResponse({"ready": True, "migration": version})


async def sweep_forever(pool: ConnectionSource, config: Settings) -> None:
    """Every ``sweep_seconds``, offer on the slots whose holds have lapsed (domain/offers.py),
    a batch at a time until none is left, and drop rate buckets idle for an hour when they live
    in PostgreSQL. A failed sweep is logged and tried again later."""
    while True:
        await asyncio.sleep(config.sweep_seconds)
        try:
            async with pool.acquire() as connection:
                swept = await sweep_lapsed_holds(connection, model=config.cost_model)
                while len(swept.lapsed) == SWEEP_BATCH:  # more may be waiting
                    swept = await sweep_lapsed_holds(connection, model=config.cost_model)
                if config.rate_store is RateStore.POSTGRES:
                    await forget_idle_buckets(connection)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            logger.warning("sweeping lapsed holds failed; trying again later", exc_info=True)
        except Exception:  # a sweeper that died would stop offering lapsed slots for good
            logger.exception("sweeping lapsed holds failed unexpectedly; trying again later")


def create_app(settings: Settings | None = None, *, row_filters: bool = True) -> Starlette:
    """Build the ASGI app; it opens its pool to ``DATABASE_URL`` on startup.

    The app never starts a database itself: `care-graph serve` (or the tests) decide which
    server it talks to and pass it in through ``DATABASE_URL``. ``row_filters`` False leaves
    whose rows a caller reads to PostgreSQL's row-level security alone (a test proves it
    suffices; never in service).
    """
    config = settings or Settings.from_environment()
    if not config.database_url:
        raise CareGraphError(
            ErrorCode.DATABASE_UNAVAILABLE,
            "DATABASE_URL is not set; `care-graph serve` sets it before starting the app",
        )

    endpoint = config.otlp_traces_endpoint
    provider = tracing.provider_for(endpoint) if endpoint else None

    async def standby_pool(url: str) -> BoundedPool:
        standby = await create_pool(
            url,
            min_size=1,
            max_size=config.pool_max_size,
            statement_timeout_ms=config.statement_timeout_ms,
            session=SESSION_SETTINGS,
        )
        return BoundedPool(standby, config.pool_acquire_timeout_s)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if provider is not None:
            tracing.start(provider)
        pool = await create_pool(
            config.database_url or "",
            min_size=config.pool_min_size,
            max_size=config.pool_max_size,
            statement_timeout_ms=config.statement_timeout_ms,
            session=SESSION_SETTINGS,  # the API's own role, under row-level security
        )
        app.state.pool = BoundedPool(pool, config.pool_acquire_timeout_s)
        replicas = None
        if config.replica_urls:
            replicas = Replicas(
                app.state.pool, [await standby_pool(url) for url in config.replica_urls]
            )
            service.reads = replicas
        metrics.SOURCES.pool, metrics.SOURCES.live = pool, live  # read into the gauges
        rate_limiter.pool = documents.pool = app.state.pool
        await live.start(config.database_url or "")
        gauges = asyncio.create_task(metrics.refresh_forever())
        sweeper = (
            asyncio.create_task(sweep_forever(app.state.pool, config))
            if config.sweep_seconds > 0
            else None
        )
        # SIGTERM: subscribers hear 1001 before uvicorn stops listening (api/going_away.py)
        restore_signals = before_server_stops(websockets.going_away)
        try:
            yield
        finally:
            restore_signals()
            if sweeper is not None:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper
            gauges.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gauges
            metrics.process_exits()
            await live.stop()
            if replicas is not None:
                await replicas.close()
            await app.state.pool.close()
            if provider is not None:
                tracing.stop(provider)  # exports what is buffered

    live = LiveEvents()
    tokens = TokenSettings.from_environment(development=config.development)
    service = GraphQLService(
        build_schema(),
        introspection=config.introspection,
        limits=config.limits,
        cost_model=config.cost_model,
        row_filters=row_filters,
    )
    rate_limiter = RateLimiter(config.limits, config.rate_store)
    documents = Documents(config.documents)
    websockets = GraphQLWebSocket(service, live, tokens, config.limits, rate_limiter, documents)
    routes = [
        Route("/graphql", graphql, methods=["GET", "POST"]),
        WebSocketRoute("/graphql", websockets),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        # bounded labels only, never patient data (docs/observability.md)
        Route("/metrics", metrics.metrics),
        *fhir_routes(),  # FHIR R4 at /fhir/R4 (docs/fhir.md)
        *dashboard_routes(),  # the page for clinic staff (docs/dashboard.md)
    ]
    if config.development:
        routes.append(Route("/graphiql/assets/{name}", graphiql.asset))
    # headers are bounded before any route, WebSocket upgrades included (api/transport.py)
    middleware = [
        Middleware(HeaderLimit, max_header_bytes=config.limits.max_header_bytes),
        Middleware(RequestIds),  # X-Request-ID in and out, in every log line (api/request_ids.py)
    ]
    if provider is not None:  # a span per request, outside all else (observability/tracing.py)
        middleware.insert(0, Middleware(TracedRequests, provider=provider))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings = config
    app.state.tokens = tokens
    app.state.graphql = service
    app.state.rate_limiter = rate_limiter
    app.state.documents = documents
    return app
