"""The HTTP face of the FHIR R4 API at ``/fhir/R4``: the CapabilityStatement, and read and search
of every resource declared in resources.py, on the GraphQL API's tokens, rate limits, row rules
and audit of patient reads.

Every answer is ``application/fhir+json`` (or ``application/json`` when only that is accepted);
every refusal an OperationOutcome carrying the GraphQL API's stable code (outcome.py), with
``Retry-After`` when the database is busy or lost. A search runs as one SQL statement
(search.py) in one transaction that sees only the caller's rows.
"""

from __future__ import annotations

from importlib.metadata import version
from urllib.parse import urlencode

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from care_graph.api.errors import ApiErrorCode
from care_graph.api.http import check_rate
from care_graph.api.policy import policy_for
from care_graph.auth import Viewer
from care_graph.domain import intake
from care_graph.domain.booking import Actor
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.fhir import inbound, operations
from care_graph.fhir.capability import capability_statement
from care_graph.fhir.exchange import (
    BASE_PATH,
    answered,
    base_url,
    fetch_row,
    posted,
    read_as,
    resource_of,
    respond,
    viewer_of,
    writing,
)
from care_graph.fhir.outcome import FhirError
from care_graph.fhir.params import Search, parse_search
from care_graph.fhir.resources import SERVICE_REQUEST
from care_graph.fhir.search import compile_read, compile_search
from care_graph.fhir.values import key_of
from care_graph.observability import metrics

MAX_ID_CHARS = 64  # a FHIR id has at most 64 characters


def fhir_routes() -> list[Route]:
    """The FHIR API's routes, to mount beside GraphQL's."""
    every = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]  # refused here with an outcome
    return [
        Route(BASE_PATH, answered({"POST": transaction}), methods=every),
        Route(f"{BASE_PATH}/metadata", answered({"GET": metadata}), methods=every),
        Route(f"{BASE_PATH}/{{type}}", answered({"GET": search, "POST": create}), methods=every),
        Route(
            f"{BASE_PATH}/{{type}}/{{id}}",
            answered({"GET": read, "POST": operations.operation, "PUT": operations.update}),
            methods=every,
        ),
        # anything else under the base (history, compartments): an outcome, not a bare 404
        Route(f"{BASE_PATH}/{{rest:path}}", answered({}), methods=every),
    ]


async def metadata(request: Request, media: str) -> Response:
    """The CapabilityStatement; public, as FHIR clients read it before they authenticate
    (counted against the caller's address like any request without a good token)."""
    await check_rate(request, None)
    statement = capability_statement(base_url(request), version("care-graph"))
    return respond(orjson.dumps(statement), media)


async def read(request: Request, media: str) -> Response:
    """``GET [type]/[id]``: the resource, or 404 when there is none the caller may see."""
    started = metrics.now()
    resource = resource_of(request)
    viewer = await viewer_of(request)
    key = request.path_params["id"]
    found = key_of(key)
    if found is None:  # our ids are bigints
        raise FhirError(
            ErrorCode.NOT_FOUND, f"no {resource.name} has the id {key[:MAX_ID_CHARS]!r}"
        )
    row = await fetch_row(request, compile_read(resource, found, policy_for(viewer)), viewer)
    if row is None:
        metrics.observe_request("fhir", f"{resource.name} read", str(ErrorCode.NOT_FOUND), started)
        raise FhirError(
            ErrorCode.NOT_FOUND, f"no {resource.name} has the id {key[:MAX_ID_CHARS]!r}"
        )
    metrics.observe_request("fhir", f"{resource.name} read", metrics.OK, started)
    return respond(str(row[0]).encode(), media)


async def search(request: Request, media: str) -> Response:
    """``GET [type]?...``: a searchset Bundle, paged by id through its ``next`` and
    ``previous`` links."""
    started = metrics.now()
    resource = resource_of(request)
    viewer = await viewer_of(request)
    strict = "handling=strict" in request.headers.get("prefer", "").replace(" ", "")
    found = parse_search(resource, request.query_params.multi_items(), strict=strict)
    base = base_url(request)
    row = await fetch_row(request, compile_search(found, policy_for(viewer), base), viewer)
    assert row is not None  # an aggregate always answers one row
    matches, first, last, more, total, included = row
    metrics.observe_request("fhir", f"{resource.name} search", metrics.OK, started)
    return respond(_bundle(found, base, matches, first, last, more, total, included), media)


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
    resource = resource_of(request)
    if resource.name != "ServiceRequest":
        raise FhirError(
            ApiErrorCode.METHOD_NOT_ALLOWED,
            f"{resource.name} is read here, not created",
            {"Allow": "GET"},
        )
    viewer, body = await posted(request)
    referred, row = await _refer(
        request, viewer, inbound.service_request_message(body), read_back=True
    )
    if row is None:  # the rules let them refer; the row rules would hide it: a defect
        raise FhirError(ErrorCode.INTERNAL, "the referral was made but cannot be shown")
    location = f"{base_url(request)}ServiceRequest/{referred.referral_id}"
    status = 200 if referred.replayed else 201
    return respond(str(row[0]).encode(), media, status, {"Location": location})


async def transaction(request: Request, media: str) -> Response:
    """A transaction Bundle of an inbound referral and its patient: both made (or the patient
    matched) at once; a transaction-response Bundle says what each entry became."""
    viewer, body = await posted(request)
    message = inbound.transaction_message(body)
    referred, _ = await _refer(request, viewer, message, read_back=False)
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
    return respond(orjson.dumps(bundle), media)


async def _refer(
    request: Request, viewer: Viewer, message: inbound.Message, *, read_back: bool
) -> tuple[intake.Referred, asyncpg.Record | None]:
    """Make the referral through the domain's rules, and read it back as the caller when
    asked, all in one transaction."""
    started = metrics.now()
    row = None
    try:
        async with writing(request, "the referral") as connection:
            referred = await intake.refer_once(
                connection, Actor.of(viewer), message.referral, message.identifier
            )
            if read_back:
                read = compile_read(SERVICE_REQUEST, referred.referral_id, policy_for(viewer))
                row = await read_as(connection, read, viewer)
    except CareGraphError as error:
        metrics.observe_request("fhir", "ServiceRequest create", str(error.code), started)
        raise
    metrics.observe_request("fhir", "ServiceRequest create", metrics.OK, started)
    return referred, row
