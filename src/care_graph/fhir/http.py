"""The HTTP face of the FHIR R4 API at ``/fhir/R4``: the CapabilityStatement, and read and search
of every resource declared in resources.py, on the GraphQL API's tokens, rate limits, row rules
and audit of patient reads.

Every answer is ``application/fhir+json`` (or ``application/json`` when only that is accepted);
every refusal an OperationOutcome carrying the GraphQL API's stable code (outcome.py), with
``Retry-After`` when the database is busy or lost. A search runs as one SQL statement
(search.py) in one transaction that sees only the caller's rows.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from urllib.parse import urlencode

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

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
from care_graph.api.policy import policy_for
from care_graph.api.request_ids import request_id_of
from care_graph.auth import Viewer
from care_graph.config import Settings
from care_graph.db.pool import CONNECTION_FAULTS, ConnectionSource
from care_graph.db.row_security import see_as_viewer
from care_graph.domain import intake
from care_graph.domain.booking import Actor
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.fhir import inbound
from care_graph.fhir.capability import capability_statement
from care_graph.fhir.declare import Resource
from care_graph.fhir.outcome import FhirError, outcome_body
from care_graph.fhir.params import Search, parse_search
from care_graph.fhir.resources import RESOURCES
from care_graph.fhir.search import Statement, compile_read, compile_search
from care_graph.observability import metrics

logger = logging.getLogger(__name__)
BASE_PATH = "/fhir/R4"
FHIR_JSON = "application/fhir+json"
JSON = "application/json"
ANSWERS = (FHIR_JSON, JSON)
FORMATS = {"json": FHIR_JSON, FHIR_JSON: FHIR_JSON, JSON: JSON}
RETRY_AFTER_S = 1
MAX_ID_CHARS = 64  # a FHIR id has at most 64 characters

Handler = Callable[[Request, str], Awaitable[Response]]


def fhir_routes() -> list[Route]:
    """The FHIR API's routes, to mount beside GraphQL's."""
    every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]  # refused here with an outcome
    return [
        Route(BASE_PATH, _answered({"POST": transaction}), methods=every),
        Route(f"{BASE_PATH}/metadata", _answered({"GET": metadata}), methods=every),
        Route(f"{BASE_PATH}/{{type}}", _answered({"GET": search, "POST": create}), methods=every),
        Route(f"{BASE_PATH}/{{type}}/{{id}}", _answered({"GET": read}), methods=every),
    ]


def _answered(handlers: dict[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
    """Wrap a handler so that whatever goes wrong is answered as an OperationOutcome: a
    refusal with its code, a busy or lost database with 503, anything else with 500 and the
    request id (logged here, never shown)."""

    async def endpoint(request: Request) -> Response:
        media = _media_of(request)
        if media is None:
            return _outcome(
                FhirError(
                    ApiErrorCode.NOT_ACCEPTABLE,
                    f"answers are {FHIR_JSON} or {JSON}; the Accept header allows neither",
                ),
                FHIR_JSON,
            )
        handler = handlers.get("GET" if request.method == "HEAD" else request.method)
        if handler is None:
            allowed = ", ".join(handlers)
            return _outcome(
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
            return _outcome(error, media)
        except HttpRefusal as refusal:
            return _outcome(FhirError(refusal.code, refusal.message, refusal.headers), media)
        except CONNECTION_FAULTS:
            return _unavailable("the database connection was lost", media)
        except CareGraphError as error:
            if error.code is ErrorCode.SERVICE_UNAVAILABLE:
                return _unavailable(error.message, media)
            return _outcome(FhirError(error.code, error.message), media)
        except asyncpg.QueryCanceledError:
            return _outcome(
                FhirError(ApiErrorCode.QUERY_TIMEOUT, "the search took too long and was cancelled"),
                media,
            )
        except Exception:
            request_id = request_id_of(request.scope)
            logger.exception("FHIR request %s failed", request_id)
            return _outcome(
                FhirError(ErrorCode.INTERNAL, f"internal error (request id {request_id})"), media
            )

    return endpoint


def _media_of(request: Request) -> str | None:
    """The media type to answer in: ``_format`` if given, else what Accept allows (FHIR's own
    when it allows anything), None when neither of ours is acceptable."""
    asked = request.query_params.get("_format")
    if asked is not None:
        return FORMATS.get(asked)
    accept = request.headers.get("accept", "").strip()
    return negotiate(accept, ANSWERS) if accept else FHIR_JSON


def _respond(
    body: bytes, media: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        body,
        status_code=status,
        media_type=f"{media}; charset=utf-8",
        headers={"Vary": "Accept", **(headers or {})},
    )


def _outcome(error: FhirError, media: str) -> Response:
    return _respond(outcome_body(error.code, error.message), media, error.status, error.headers)


def _unavailable(message: str, media: str) -> Response:
    error = FhirError(ErrorCode.SERVICE_UNAVAILABLE, message, {"Retry-After": str(RETRY_AFTER_S)})
    return _outcome(error, media)


def base_url(request: Request) -> str:
    """The FHIR base the client used, ending in a slash (fullUrl and links start with it)."""
    return f"{str(request.base_url).rstrip('/')}{BASE_PATH}/"


async def metadata(request: Request, media: str) -> Response:
    """The CapabilityStatement; public, as FHIR clients read it before they authenticate."""
    statement = capability_statement(base_url(request), version("care-graph"))
    return _respond(orjson.dumps(statement), media)


def _resource_of(request: Request) -> Resource:
    name = request.path_params["type"]
    found = RESOURCES.get(name)
    if found is None:
        raise FhirError(
            ErrorCode.NOT_FOUND,
            f"{name[:64]!r} is not a resource type served here (see {BASE_PATH}/metadata)",
        )
    return found


async def _viewer(request: Request) -> Viewer:
    """The caller, or 401 / 429 as the GraphQL API answers them."""
    viewer = authenticate(request)
    await check_rate(request, viewer)
    if viewer is None:
        raise FhirError(
            ApiErrorCode.UNAUTHENTICATED, "authentication required", {"WWW-Authenticate": "Bearer"}
        )
    return viewer


async def _fetch_row(
    request: Request, statement: Statement, viewer: Viewer
) -> asyncpg.Record | None:
    """Run one compiled statement as the caller: only their rows, their reads audited."""
    pool: ConnectionSource = request.app.state.pool
    values = statement.params.values(RequestValues({}, viewer))
    async with pool.acquire() as connection, connection.transaction():
        await see_as_viewer(connection, viewer.role, viewer.subject, viewer.patient_id)
        row: asyncpg.Record | None = await connection.fetchrow(statement.sql, *values)
        return row


async def read(request: Request, media: str) -> Response:
    """``GET [type]/[id]``: the resource, or 404 when there is none the caller may see."""
    started = metrics.now()
    resource = _resource_of(request)
    viewer = await _viewer(request)
    key = request.path_params["id"]
    if not key.isdigit() or len(key) > 18:  # our ids are bigints
        raise FhirError(
            ErrorCode.NOT_FOUND, f"no {resource.name} has the id {key[:MAX_ID_CHARS]!r}"
        )
    row = await _fetch_row(request, compile_read(resource, int(key), policy_for(viewer)), viewer)
    if row is None:
        metrics.observe_request("fhir", f"{resource.name} read", str(ErrorCode.NOT_FOUND), started)
        raise FhirError(ErrorCode.NOT_FOUND, f"no {resource.name} has the id {key!r}")
    metrics.observe_request("fhir", f"{resource.name} read", metrics.OK, started)
    return _respond(str(row[0]).encode(), media)


async def search(request: Request, media: str) -> Response:
    """``GET [type]?...``: a searchset Bundle, paged by id through its ``next`` and
    ``previous`` links."""
    started = metrics.now()
    resource = _resource_of(request)
    viewer = await _viewer(request)
    strict = "handling=strict" in request.headers.get("prefer", "").replace(" ", "")
    found = parse_search(resource, request.query_params.multi_items(), strict=strict)
    base = base_url(request)
    row = await _fetch_row(request, compile_search(found, policy_for(viewer), base), viewer)
    assert row is not None  # an aggregate always answers one row
    matches, first, last, more, total, included = row
    metrics.observe_request("fhir", f"{resource.name} search", metrics.OK, started)
    return _respond(_bundle(found, base, matches, first, last, more, total, included), media)


def _bundle(
    found: Search,
    base: str,
    matches: str | None,
    first: int | None,
    last: int | None,
    more: bool,
    total: int | None,
    included: str | None,
) -> bytes:
    """The searchset Bundle, its entries spliced in as PostgreSQL built them."""
    here = f"{base}{found.resource.name}"
    canonical = found.canonical()
    paging: list[tuple[str, str]] = []
    if found.after is not None:
        paging = [("_after", str(found.after))]
    elif found.before is not None:
        paging = [("_before", str(found.before))]
    links = [{"relation": "self", "url": f"{here}?{urlencode(canonical + paging)}"}]
    backward = found.before is not None
    has_next = last is not None and (backward or more)
    has_previous = first is not None and (more if backward else found.after is not None)
    if has_next:
        links.append(
            {"relation": "next", "url": f"{here}?{urlencode([*canonical, ('_after', str(last))])}"}
        )
    if has_previous:
        links.append(
            {
                "relation": "previous",
                "url": f"{here}?{urlencode([*canonical, ('_before', str(first))])}",
            }
        )
    head: dict[str, object] = {"resourceType": "Bundle", "type": "searchset"}
    if total is not None:
        head["total"] = total
    head["link"] = links
    entries = [part[1:-1] for part in (matches, included) if part and part != "[]"]
    if found.ignored:
        warning = {
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "warning",
                        "code": "not-supported",
                        "diagnostics": "ignored: " + ", ".join(name[:64] for name in found.ignored),
                    }
                ],
            },
            "search": {"mode": "outcome"},
        }
        entries.append(orjson.dumps(warning).decode())
    body = orjson.dumps(head)[:-1]
    if entries:
        body += b',"entry":[' + ",".join(entries).encode() + b"]"
    return body + b"}"


async def create(request: Request, media: str) -> Response:
    """``POST ServiceRequest``: an inbound referral of a patient we hold; 201 with the
    referral as read, or 200 with it when the same message was sent before."""
    resource = _resource_of(request)
    if resource.name != "ServiceRequest":
        raise FhirError(
            ApiErrorCode.METHOD_NOT_ALLOWED,
            f"{resource.name} is read here, not created",
            {"Allow": "GET"},
        )
    viewer, body = await _posted(request)
    referred = await _refer(request, viewer, inbound.service_request_message(body))
    location = f"{base_url(request)}ServiceRequest/{referred.referral_id}"
    row = await _fetch_row(
        request, compile_read(resource, referred.referral_id, policy_for(viewer)), viewer
    )
    assert row is not None  # the caller may read the referral they made
    status = 200 if referred.replayed else 201
    return _respond(str(row[0]).encode(), media, status, {"Location": location})


async def transaction(request: Request, media: str) -> Response:
    """A transaction Bundle of an inbound referral and its patient: both made (or the patient
    matched) at once; a transaction-response Bundle says what each entry became."""
    viewer, body = await _posted(request)
    message = inbound.transaction_message(body)
    referred = await _refer(request, viewer, message)
    done = "200 OK" if referred.replayed else "201 Created"
    entries = []
    if message.patient_in_bundle:
        registered = "201 Created" if referred.patient_registered else "200 OK"
        entries.append(
            {"response": {"status": registered, "location": f"Patient/{referred.patient_id}"}}
        )
    entries.append(
        {"response": {"status": done, "location": f"ServiceRequest/{referred.referral_id}"}}
    )
    bundle = {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}
    return _respond(orjson.dumps(bundle), media)


async def _posted(request: Request) -> tuple[Viewer, object]:
    """The caller and the JSON body of a write, every limit checked before it is read."""
    settings: Settings = request.app.state.settings
    check_body_headers(request, settings.limits, ANSWERS)
    viewer = await _viewer(request)
    return viewer, await json_body(request, settings.limits)


async def _refer(request: Request, viewer: Viewer, message: inbound.Message) -> intake.Referred:
    """Make the referral through the domain's rules; a connection lost on the way is
    OUTCOME_UNKNOWN (the same message sent again answers what was made, or makes it)."""
    started = metrics.now()
    pool: ConnectionSource = request.app.state.pool
    try:
        async with pool.acquire() as connection:
            referred = await intake.refer_once(
                connection, Actor.of(viewer), message.referral, message.identifier
            )
    except CONNECTION_FAULTS:
        raise FhirError(
            ErrorCode.OUTCOME_UNKNOWN,
            "the connection was lost: the referral may or may not have been made; send the"
            " same message again, which answers what was made and never makes it twice",
            {"Retry-After": str(RETRY_AFTER_S)},
        ) from None
    except CareGraphError as error:
        metrics.observe_request("fhir", "ServiceRequest create", str(error.code), started)
        raise
    metrics.observe_request("fhir", "ServiceRequest create", metrics.OK, started)
    return referred
