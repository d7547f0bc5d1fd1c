"""Scheduling over FHIR, in the shape of the IHE ITI Scheduling profile: ``Appointment/$find``
proposes slots for a referral, ``$hold`` holds one, ``$book`` books it, and an update of an
Appointment to ``cancelled`` cancels it — each through the same rules, and the same offers of
what it frees, as GraphQL's mutations (domain/scheduling.py).

The operations take a ``Parameters`` resource. Where ITI finds by patient and service, a
referral here already names both, and its rules (service, skill, earliest date, travel) decide
which slots are candidates: ``$find`` takes the referral (``ServiceRequest/<id>``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response

from care_graph.api.args import Arg, Params
from care_graph.api.errors import ApiErrorCode
from care_graph.api.lists import CANDIDATE_SLOTS
from care_graph.api.policy import policy_for
from care_graph.auth import Viewer
from care_graph.domain import scheduling
from care_graph.domain.booking import Actor
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.fhir import codes
from care_graph.fhir.exchange import (
    base_url,
    fetch_row,
    posted,
    read_as,
    resource_of,
    respond,
    writing,
)
from care_graph.fhir.outcome import FhirError, invalid
from care_graph.fhir.resources import APPOINTMENT, proposed_appointment
from care_graph.fhir.search import Statement, compile_read
from care_graph.fhir.values import key_of, zoned
from care_graph.matching.cost import CostModel

DEFAULT_FIND = 10
MAX_FIND = 50
MAX_PARAMETERS = 10


@dataclass(frozen=True, slots=True)
class Chosen:
    """The slot and referral an Appointment names (its ``slot`` and ``basedOn``)."""

    slot_id: int
    referral_id: int


async def operation(request: Request, media: str) -> Response:
    """``POST Appointment/$find | $hold | $book``."""
    resource = resource_of(request)
    name = request.path_params["id"]
    found = OPERATIONS.get(name) if resource is APPOINTMENT else None
    if found is None:
        raise FhirError(
            ErrorCode.NOT_FOUND,
            f"{resource.name}/{name[:64]} is no operation here: Appointment/$find, $hold, $book",
        )
    viewer, body = await posted(request)
    return await found(request, media, viewer, _parameters(body))


def _parameters(body: Any) -> dict[str, Any]:
    """A Parameters resource's parameters by name (each given once)."""
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise invalid("an operation takes a Parameters resource")
    given = body.get("parameter") or []
    if not isinstance(given, list) or len(given) > MAX_PARAMETERS:
        raise invalid(f"Parameters.parameter: at most {MAX_PARAMETERS}")
    named: dict[str, Any] = {}
    for parameter in given:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        if not isinstance(name, str) or name in named:
            raise invalid("Parameters.parameter: each has a name, given once")
        named[name] = parameter
    return named


def _reference_key(parameter: Any, kind: str, path: str) -> int:
    reference = parameter.get("reference") if isinstance(parameter, dict) else None
    found_kind, _, text = reference.partition("/") if isinstance(reference, str) else ("", "", "")
    key = key_of(text)
    if found_kind != kind or key is None:
        raise invalid(f"{path}: a reference to {kind}/<id>")
    return key


def _instant(parameter: Any, path: str) -> datetime | None:
    if parameter is None:
        return None
    text = parameter.get("valueDateTime") if isinstance(parameter, dict) else None
    try:
        when = zoned(datetime.fromisoformat(text)) if isinstance(text, str) else None
    except ValueError:
        when = None
    if when is None:
        raise invalid(f"{path}: a date-time with its time zone")
    return when


def _chosen(parameters: dict[str, Any]) -> Chosen:
    """The slot and referral of the ``appointment`` parameter (an Appointment as $find
    proposed it)."""
    appointment = (parameters.get("appointment") or {}).get("resource")
    if not isinstance(appointment, dict) or appointment.get("resourceType") != "Appointment":
        raise invalid("the appointment parameter carries an Appointment (as $find proposed it)")
    slots, based_on = appointment.get("slot"), appointment.get("basedOn")
    if not isinstance(slots, list) or len(slots) != 1:
        raise invalid("Appointment.slot: the one slot to take")
    if not isinstance(based_on, list) or len(based_on) != 1:
        raise invalid("Appointment.basedOn: the one referral (ServiceRequest) booked")
    return Chosen(
        _reference_key(slots[0], "Slot", "Appointment.slot"),
        _reference_key(based_on[0], "ServiceRequest", "Appointment.basedOn"),
    )


def _proposal(chosen: Chosen, viewer: Viewer, status: str) -> Statement:
    """The Appointment ``chosen`` would be, read as the caller (nothing when they may not see
    the referral)."""
    params = Params()
    policy = policy_for(viewer)
    where = [
        f"r.id = {params.add(Arg.constant(chosen.referral_id))}::bigint",
        f"s.id = {params.add(Arg.constant(chosen.slot_id))}::bigint",
    ]
    visible = policy.condition("Referral", "r", params)
    where += [visible] if visible is not None else []
    return Statement(
        f"SELECT ({proposed_appointment('s', 'r', status)})::text FROM referrals r, slots s"
        f" WHERE {' AND '.join(where)}",
        params,
    )


async def find(
    request: Request, media: str, viewer: Viewer, parameters: dict[str, Any]
) -> Response:
    """``$find``: the slots the referral may book, soonest first (GraphQL's candidateSlots),
    as proposed Appointments in a searchset Bundle; ``start`` and ``end`` bound when they
    start, ``_count`` how many (10, at most 50). 404 for a referral the caller may not see."""
    referral = _reference_key(
        (parameters.get("referral") or {}).get("valueReference"),
        "ServiceRequest",
        "Parameters.referral",
    )
    count_parameter = parameters.get("_count")
    count = DEFAULT_FIND if count_parameter is None else count_parameter.get("valueInteger")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_FIND:
        raise invalid(f"Parameters._count: a valueInteger from 1 to {MAX_FIND}")
    start = _instant(parameters.get("start"), "Parameters.start")
    end = _instant(parameters.get("end"), "Parameters.end")
    params = Params()
    policy = policy_for(viewer)
    # the very condition of GraphQL's Referral.candidateSlots: one rule, one place
    candidates = CANDIDATE_SLOTS.condition("s", "r")
    assert candidates is not None
    where = [candidates]
    if start is not None:
        where.append(f"s.starts_at >= {params.add(Arg.constant(start))}::timestamptz")
    if end is not None:
        where.append(f"s.starts_at < {params.add(Arg.constant(end))}::timestamptz")
    visible = [f"r.id = {params.add(Arg.constant(referral))}::bigint"]
    condition = policy.condition("Referral", "r", params)
    visible += [condition] if condition is not None else []
    limit = params.add(Arg.constant(count))
    entry = (
        f"json_build_object('resource', {proposed_appointment('s', 'r', 'proposed')},"
        " 'search', json_build_object('mode', 'match'))"
    )
    sql = (
        f"SELECT (SELECT coalesce(json_agg(c.entry ORDER BY c.starts_at, c.id), '[]')"
        f" FROM (SELECT s.id, s.starts_at, {entry} AS entry FROM slots s"
        f" WHERE {' AND '.join(where)} ORDER BY s.starts_at, s.id LIMIT {limit}::int) c)::text"
        f" FROM referrals r WHERE {' AND '.join(visible)}"
    )
    row = await fetch_row(request, Statement(sql, params), viewer)
    if row is None:
        raise FhirError(ErrorCode.NOT_FOUND, f"no ServiceRequest has the id {referral}")
    bundle = b'{"resourceType":"Bundle","type":"searchset","entry":' + str(row[0]).encode() + b"}"
    return respond(bundle, media)


async def hold(
    request: Request, media: str, viewer: Viewer, parameters: dict[str, Any]
) -> Response:
    """``$hold``: hold the proposed slot for the referral for ``minutes`` (10); the
    Appointment as it now stands (``pending``)."""
    chosen = _chosen(parameters)
    minutes_parameter = parameters.get("minutes")
    minutes = 10 if minutes_parameter is None else minutes_parameter.get("valueInteger")
    if not isinstance(minutes, int) or isinstance(minutes, bool):
        raise invalid("Parameters.minutes: a valueInteger")
    async with writing(request, "the hold") as connection:
        await scheduling.hold(
            connection,
            referral_id=chosen.referral_id,
            slot_id=chosen.slot_id,
            actor=Actor.of(viewer),
            model=_model(request),
            minutes=minutes,
        )
        row = await read_as(connection, _proposal(chosen, viewer, "pending"), viewer)
    return _answer(row, media)


async def book(
    request: Request, media: str, viewer: Viewer, parameters: dict[str, Any]
) -> Response:
    """``$book``: book the proposed slot for the referral; 201 with the Appointment made.
    ``request-id`` (a valueString of 8 to 200 characters) makes a retry answer the first
    booking and book nothing more, as GraphQL's idempotency key does."""
    chosen = _chosen(parameters)
    key_parameter = parameters.get("request-id")
    key = None if key_parameter is None else key_parameter.get("valueString")
    if key_parameter is not None and not isinstance(key, str):
        raise invalid("Parameters.request-id: a valueString")
    async with writing(request, "the booking") as connection:
        booked = await scheduling.book(
            connection,
            referral_id=chosen.referral_id,
            slot_id=chosen.slot_id,
            actor=Actor.of(viewer),
            model=_model(request),
            idempotency_key=key,
        )
        read = compile_read(APPOINTMENT, booked.appointment_id, policy_for(viewer))
        row = await read_as(connection, read, viewer)
    location = f"{base_url(request)}Appointment/{booked.appointment_id}"
    return _answer(row, media, 201, {"Location": location})


async def update(request: Request, media: str) -> Response:
    """``PUT Appointment/<id>`` with ``status`` ``cancelled`` and a ``cancelationReason``
    coding: cancel the booking (the slot is offered on at once); any other change is refused,
    as appointments change here only by the scheduling operations."""
    resource = resource_of(request)
    if resource is not APPOINTMENT:
        raise FhirError(
            ApiErrorCode.METHOD_NOT_ALLOWED, f"{resource.name} is read here", {"Allow": "GET"}
        )
    viewer, body = await posted(request)
    key = request.path_params["id"]
    found = key_of(key)
    if found is None:
        raise FhirError(ErrorCode.NOT_FOUND, f"no Appointment has the id {key[:64]!r}")
    appointment_id = found
    if not isinstance(body, dict) or body.get("resourceType") != "Appointment":
        raise invalid("the body must be an Appointment")
    if body.get("id") != key:
        raise invalid("Appointment.id must be the id in the URL")
    if body.get("status") != "cancelled":
        raise invalid("an Appointment is changed here only by cancelling it (status cancelled)")
    concept = body.get("cancelationReason")
    reasons = concept.get("coding") if isinstance(concept, dict) else None
    reason = next(
        (
            coding.get("code")
            for coding in (reasons if isinstance(reasons, list) else [])
            if isinstance(coding, dict) and coding.get("system") == codes.CANCELLATION_REASON
        ),
        None,
    )
    if not isinstance(reason, str):
        raise invalid(f"Appointment.cancelationReason: a coding in {codes.CANCELLATION_REASON}")
    read = compile_read(APPOINTMENT, appointment_id, policy_for(viewer))
    try:
        async with writing(request, "the cancellation") as connection:
            await scheduling.cancel(
                connection,
                appointment_id=appointment_id,
                reason=reason,
                actor=Actor.of(viewer),
                model=_model(request),
            )
            row = await read_as(connection, read, viewer)
    except CareGraphError as error:
        if error.code is not ErrorCode.INVALID_TRANSITION:
            raise
        # cancelled already (this very update sent again, say): the state asked for stands
        row = await fetch_row(request, read, viewer)
        if row is None or orjson.loads(row[0]).get("status") != "cancelled":
            raise
    return _answer(row, media)


def _answer(
    row: asyncpg.Record | None, media: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A resource the caller just changed, as they may now read it."""
    if row is None:  # the rules let them change it; the row rules would hide it: a defect
        raise FhirError(ErrorCode.INTERNAL, "the change was made but cannot be shown")
    return respond(str(row[0]).encode(), media, status, headers)


def _model(request: Request) -> CostModel:
    model: CostModel = request.app.state.settings.cost_model
    return model


OPERATIONS = {"$find": find, "$hold": hold, "$book": book}
