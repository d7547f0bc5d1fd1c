"""A referral arriving from another system (FHIR's inbound ServiceRequest): its patient matched
by NHS number and date of birth, or registered when new, and the referral made — all at once,
and at most once per sender's key. The rules are referrals.py's and patients.py's; this only
puts them in one transaction."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import date

import orjson

from care_graph.db import booking_store, care_store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor
from care_graph.domain.patients import Demographics, checked_nhs_number, create_patient
from care_graph.domain.referrals import Constraints, check_referral, refer_checked
from care_graph.domain.waiting_times import Priority
from care_graph.errors import CareGraphError, ErrorCode

OPERATION = "inboundReferral"


@dataclass(frozen=True, slots=True)
class Registration:
    """What registering a new patient takes beyond their NHS number and date of birth."""

    given_name: str
    family_name: str
    postcode: str
    region: str
    latitude: float
    longitude: float
    phone: str | None = None
    email: str | None = None


@dataclass(frozen=True, slots=True)
class NewPatient:
    """A patient named by NHS number and date of birth; registered from ``registration``
    when no patient has both (None: they must be registered already)."""

    nhs_number: str
    date_of_birth: date
    registration: Registration | None


@dataclass(frozen=True, slots=True)
class InboundReferral:
    """A referral as another system sends it, already read from its message."""

    patient: int | NewPatient
    to_service: str
    priority: Priority
    referrer_name: str
    referrer_kind: str
    constraints: Constraints


@dataclass(frozen=True, slots=True)
class Referred:
    """What an inbound referral made (or made the first time it was sent)."""

    referral_id: int
    patient_id: int
    patient_registered: bool
    replayed: bool


def key_of(sender_identifier: str) -> str:
    """Our idempotency key for a sender's identifier of their message (any length)."""
    return "fhir:" + hashlib.sha256(sender_identifier.encode()).hexdigest()


def _request_hash(inbound: InboundReferral) -> str:
    return hashlib.sha256(orjson.dumps(asdict(inbound), default=str)).hexdigest()


async def refer_once(
    connection: Connection, actor: Actor, inbound: InboundReferral, sender_identifier: str
) -> Referred:
    """Make the referral (registering its patient if new), or, when this actor sent the same
    message under the same identifier before, answer what it made then; the same identifier
    with another message is IDEMPOTENCY_KEY_REUSED. One transaction: nothing is kept of a
    message refused."""
    if not sender_identifier.strip():
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "the message needs an identifier")
    key, request_hash = key_of(sender_identifier), _request_hash(inbound)
    async with connection.transaction():
        # the referral's own checks before anything of the patient, who must not be probed
        # by a message refused on purpose after its patient was matched or registered
        services = await check_referral(
            connection,
            actor,
            to_service=inbound.to_service,
            referrer_kind=inbound.referrer_kind,
            constraints=inbound.constraints,
        )
        if not await booking_store.claim_idempotency_key(
            connection, key, actor.subject, OPERATION, request_hash
        ):
            earlier = await booking_store.stored_response(connection, actor.subject, key)
            if earlier["request_hash"] != request_hash:
                raise CareGraphError(
                    ErrorCode.IDEMPOTENCY_KEY_REUSED,
                    "this identifier was sent before with another referral",
                )
            made = earlier["response"]
            return Referred(made["referral_id"], made["patient_id"], False, replayed=True)
        patient, registered = await _patient(connection, actor, inbound.patient)
        referral_id = await refer_checked(
            connection,
            actor,
            services,
            patient=patient,
            priority=inbound.priority,
            referrer_name=inbound.referrer_name,
            referrer_kind=inbound.referrer_kind,
            constraints=inbound.constraints,
        )
        patient_id = await care_store.patient_of_referral(connection, referral_id)
        await booking_store.store_response(
            connection,
            actor.subject,
            key,
            {"referral_id": referral_id, "patient_id": patient_id},
        )
    return Referred(referral_id, patient_id, registered, replayed=False)


async def _patient(
    connection: Connection, actor: Actor, named: int | NewPatient
) -> tuple[int | Demographics, bool]:
    """Whom the referral names, for create_referral (which decides whether the actor may
    refer them), and whether they were registered here."""
    if isinstance(named, int):
        return named, False
    number = checked_nhs_number(named.nhs_number)
    known = Demographics(number, named.date_of_birth)
    if named.registration is None or await care_store.patient_matching(
        connection, number, named.date_of_birth
    ):
        return known, False
    details = named.registration
    await create_patient(
        connection,
        actor,
        nhs_number=number,
        date_of_birth=named.date_of_birth,
        given_name=details.given_name,
        family_name=details.family_name,
        postcode=details.postcode,
        region=details.region,
        latitude=details.latitude,
        longitude=details.longitude,
        phone=details.phone,
        email=details.email,
    )
    return known, True
