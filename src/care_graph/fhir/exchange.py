"""What every FHIR interaction shares: the media type it answers in, the caller it answers,
its statements run as that caller, and every failure answered as an OperationOutcome with the
GraphQL API's stable code (outcome.py) — never a trace."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from care_graph.api.args import RequestValues
from care_graph.api.errors import ApiErrorCode
from care_graph.api.http import (
    HttpRefusal,
    authenticate,
    check_body_headers,
    check_rate,
    json_body,
    negotiate,
)
from care_graph.api.request_ids import request_id_of
from care_graph.auth import Viewer
from care_graph.config import Settings
from care_graph.db.pool import CONNECTION_FAULTS, Connection, ConnectionSource
from care_graph.db.row_security import see_as_viewer
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.fhir.declare import Resource
from care_graph.fhir.outcome import FhirError, outcome_body
from care_graph.fhir.resources import RESOURCES
from care_graph.fhir.search import Statement

logger = logging.getLogger(__name__)
BASE_PATH = "/fhir/R4"
FHIR_JSON = "application/fhir+json"
JSON = "application/json"
ANSWERS = (FHIR_JSON, JSON)
FORMATS = {"json": FHIR_JSON, FHIR_JSON: FHIR_JSON, JSON: JSON}
RETRY_AFTER_S = 1

Handler = Callable[[Request, str], Awaitable[Response]]


def answered(handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler so that whatever goes wrong is answered as an OperationOutcome: a
    refusal with its code, a busy or lost database with 503, anything else with 500 and the
    request id (logged here, never shown)."""

    async def endpoint(request: Request) -> Response:
        media = media_of(request)
        if media is None:
            return outcome(
                FhirError(
                    ApiErrorCode.NOT_ACCEPTABLE,
                    f"answers are {FHIR_JSON} or {JSON}; the Accept header allows neither",
                ),
                FHIR_JSON,
            )
        handler = handlers.get("GET" if request.method == "HEAD" else request.method)
        if not handlers:
            return outcome(
                FhirError(
                    ErrorCode.NOT_FOUND,
                    f"nothing is served at {request.url.path[:100]} (see {BASE_PATH}/metadata)",
                ),
                media,
            )
        if handler is None:
            allowed = ", ".join(handlers)
            return outcome(
                FhirError(
                    ApiErrorCode.METHOD_NOT_ALLOWED,
                    f"{request.url.path[:100]} takes {allowed}",
                    {"Allow": allowed},
                ),
                media,
            )
        try:
            return await handler(request, media)
        except FhirError as error:
            return outcome(error, media)
        except HttpRefusal as refusal:
            return outcome(FhirError(refusal.code, refusal.message, refusal.headers), media)
        except CONNECTION_FAULTS:
            return unavailable("the database connection was lost", media)
        except CareGraphError as error:
            if error.code is ErrorCode.SERVICE_UNAVAILABLE:
                return unavailable(error.message, media)
            return outcome(FhirError(error.code, error.message), media)
        except asyncpg.DataError:  # a value PostgreSQL cannot take (GraphQL: BAD_USER_INPUT)
            return outcome(
                FhirError(ErrorCode.INVALID_ARGUMENT, "a value given cannot be stored or compared"),
                media,
            )
        except asyncpg.QueryCanceledError:
            return outcome(
                FhirError(ApiErrorCode.QUERY_TIMEOUT, "the search took too long and was cancelled"),
                media,
            )
        except Exception:
            request_id = request_id_of(request.scope)
            logger.exception("FHIR request %s failed", request_id)
            return outcome(
                FhirError(ErrorCode.INTERNAL, f"internal error (request id {request_id})"), media
            )

    return endpoint


def media_of(request: Request) -> str | None:
    """The media type to answer in: ``_format`` if given, else what Accept allows (FHIR's own
    when it allows anything), None when neither of ours is acceptable."""
    asked = request.query_params.get("_format")
    if asked is not None:
        return FORMATS.get(asked)
    accept = request.headers.get("accept", "").strip()
    return negotiate(accept, ANSWERS) if accept else FHIR_JSON


def respond(
    body: bytes, media: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        body,
        status_code=status,
        media_type=f"{media}; charset=utf-8",
        headers={"Vary": "Accept", **(headers or {})},
    )


def outcome(error: FhirError, media: str) -> Response:
    return respond(outcome_body(error.code, error.message), media, error.status, error.headers)


def unavailable(message: str, media: str) -> Response:
    error = FhirError(ErrorCode.SERVICE_UNAVAILABLE, message, {"Retry-After": str(RETRY_AFTER_S)})
    return outcome(error, media)


def base_url(request: Request) -> str:
    """The FHIR base the client used, ending in a slash (fullUrl and links start with it)."""
    return f"{str(request.base_url).rstrip('/')}{BASE_PATH}/"


def resource_of(request: Request) -> Resource:
    name = request.path_params["type"]
    found = RESOURCES.get(name)
    if found is None:
        raise FhirError(
            ErrorCode.NOT_FOUND,
            f"{name[:64]!r} is not a resource type served here (see {BASE_PATH}/metadata)",
        )
    return found


async def viewer_of(request: Request) -> Viewer:
    """The caller, or 401 / 429 as the GraphQL API answers them."""
    viewer = authenticate(request)
    await check_rate(request, viewer)
    if viewer is None:
        raise FhirError(
            ApiErrorCode.UNAUTHENTICATED, "authentication required", {"WWW-Authenticate": "Bearer"}
        )
    return viewer


async def fetch_row(
    request: Request, statement: Statement, viewer: Viewer
) -> asyncpg.Record | None:
    """Run one compiled statement as the caller: only their rows, their reads audited."""
    pool: ConnectionSource = request.app.state.pool
    async with pool.acquire() as connection, connection.transaction():
        return await read_as(connection, statement, viewer)


async def read_as(
    connection: Connection, statement: Statement, viewer: Viewer
) -> asyncpg.Record | None:
    """Run one compiled statement as the caller, inside the transaction under way: from
    here on it sees only the caller's rows. A write reads its answer so, before it commits,
    on its own connection, so that a fault there leaves its outcome unknown, never untold."""
    await see_as_viewer(connection, viewer.role, viewer.subject, viewer.patient_id)
    row: asyncpg.Record | None = await connection.fetchrow(
        statement.sql, *statement.params.values(RequestValues({}, viewer))
    )
    return row


async def posted(request: Request) -> tuple[Viewer, Any]:
    """The caller and the JSON body of a write, every limit checked before it is read."""
    settings: Settings = request.app.state.settings
    check_body_headers(request, settings.limits, ANSWERS)
    viewer = await viewer_of(request)
    return viewer, await json_body(request, settings.limits)


@asynccontextmanager
async def writing(request: Request, what: str) -> AsyncIterator[Connection]:
    """A connection for one write, in one transaction; a connection lost on the way is
    OUTCOME_UNKNOWN (503), since the write may or may not have committed: ``what`` tells the
    client what to send again."""
    pool: ConnectionSource = request.app.state.pool
    try:
        async with pool.acquire() as connection, connection.transaction():
            yield connection
    except CONNECTION_FAULTS:
        raise FhirError(
            ErrorCode.OUTCOME_UNKNOWN,
            f"the connection was lost: {what} may or may not have been done; send it again"
            " as it was, which answers what was done and never does it twice",
            {"Retry-After": str(RETRY_AFTER_S)},
        ) from None
