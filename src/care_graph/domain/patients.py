"""Patient records: create with a checked NHS number; update contact details and the address
with optimistic concurrency (a stale version is refused, never silently overwritten); and who
reaches which patient, so that registering and referring never tell anyone of a record they may
not read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import asyncpg

from care_graph.auth import Role
from care_graph.db import booking_store, care_store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.nhs import is_valid_nhs_number, normalise_nhs_number

MAY_CREATE = frozenset({Role.REFERRER, Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN})
# What a referrer is told of every NHS number already held, whatever the rest of the input:
# it names no record and confirms no date of birth
NOT_REGISTRABLE = (
    "this NHS number cannot be registered: refer the patient by NHS number and date of birth"
)


@dataclass(frozen=True, slots=True)
class Demographics:
    """A patient named by NHS number and date of birth, both as recorded (a demographic match,
    as an NHS PDS trace makes): how a referrer names a patient they do not yet reach."""

    nhs_number: str
    date_of_birth: date


def checked_nhs_number(text: str) -> str:
    """The stored ten digits of an NHS number as typed; INVALID_NHS_NUMBER when it is none."""
    number = normalise_nhs_number(text)
    if not is_valid_nhs_number(number):
        raise CareGraphError(ErrorCode.INVALID_NHS_NUMBER, f"{text!r} is not a valid NHS number")
    return number


def referrer_reach(actor: Actor) -> str | None:
    """Whose registrations and referrals bound the patients ``actor`` reaches: a
    referrer's own subject (care_store.referrer_reaches_patient); None for clinic staff and
    administrators, who read every patient. Patients register and refer no one, so callers
    have refused them first."""
    return actor.subject if actor.role is Role.REFERRER else None


async def create_patient(
    connection: Connection,
    actor: Actor,
    *,
    nhs_number: str,
    given_name: str,
    family_name: str,
    date_of_birth: date,
    postcode: str,
    region: str,
    latitude: float,
    longitude: float,
    phone: str | None = None,
    email: str | None = None,
) -> int:
    """Register a patient; returns the record's id.

    An NHS number already held is answered according to what the caller may read. Clinic staff
    and administrators read every patient, and are told ALREADY_EXISTS. A referrer is told
    INVALID_ARGUMENT (``NOT_REGISTRABLE``), the same words for every number held, whoever
    registered it and whatever date of birth they typed: registering neither reads a record
    nor confirms a date of birth. A referrer whose patient is already held refers them by NHS
    number and date of birth (referrals.may_refer), a demographic match that answers a wrong
    date of birth as it answers a number never registered.

    Every other check of the input comes first, so that no other refusal depends on whether
    the number is taken. What no answer can hide is that it is, since a free number is
    registered: finding that out without the date of birth costs, for every free number tried,
    a patient record in the prober's name, audited."""
    if actor.role not in MAY_CREATE:
        raise CareGraphError(ErrorCode.FORBIDDEN, "patients cannot register other patients")
    number = checked_nhs_number(nhs_number)
    # every check of the input comes before the number's uniqueness is tried (PostgreSQL checks
    # a foreign key after the unique index), so that no refusal depends on whether it is taken
    if date_of_birth > date.today():
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "a date of birth cannot be in the future")
    _check_coordinates(latitude, longitude)
    if not await care_store.region_exists(connection, region):
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown region {region!r}")
    try:
        async with connection.transaction():
            patient_id = await care_store.insert_patient(
                connection,
                {
                    "nhs_number": number,
                    "given_name": given_name,
                    "family_name": family_name,
                    "date_of_birth": date_of_birth,
                    "postcode": postcode,
                    "region": region,
                    "latitude": latitude,
                    "longitude": longitude,
                    "phone": phone,
                    "email": email,
                    "registered_by": actor.subject,
                },
            )
            await booking_store.audit(
                connection, actor.subject, actor.role, "CREATE", "patient", patient_id
            )
    except asyncpg.UniqueViolationError as error:
        if error.constraint_name != "patients_nhs_number_key":
            raise
        if referrer_reach(actor) is not None:
            raise CareGraphError(ErrorCode.INVALID_ARGUMENT, NOT_REGISTRABLE) from None
        raise CareGraphError(
            ErrorCode.ALREADY_EXISTS, "a patient with this NHS number is registered"
        ) from None
    return patient_id


async def update_patient(
    connection: Connection,
    actor: Actor,
    *,
    patient_id: int,
    version: int,
    phone: str | None = None,
    email: str | None = None,
    postcode: str | None = None,
    latitude: float | None = None,
    longitude: float | None = None,
) -> None:
    """Change contact details or the address of the record at ``version``; STALE_WRITE when it
    has moved on. A patient may change only their own record.

    An address is a postcode with its coordinates, changed together: distances to sites and
    referrals' reach boxes are measured from the coordinates (a trigger moves the boxes), and
    care_graph holds no postcode directory to find them from, so a new postcode alone would
    leave the patient where they were."""
    if actor.patient_id is not None and actor.patient_id != patient_id:
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such patient")
    if actor.role == Role.REFERRER:
        raise CareGraphError(ErrorCode.FORBIDDEN, "referrers cannot change patient records")
    _check_address(postcode, latitude, longitude)
    async with connection.transaction():
        changes = {
            "phone": phone,
            "email": email,
            "postcode": postcode,
            "latitude": latitude,
            "longitude": longitude,
        }
        if not await care_store.update_patient_contact(connection, patient_id, version, changes):
            if await care_store.patient_exists(connection, patient_id):
                raise CareGraphError(
                    ErrorCode.STALE_WRITE, "the record changed since you read it; read it again"
                )
            raise CareGraphError(ErrorCode.NOT_FOUND, "no such patient")
        await booking_store.audit(
            connection,
            actor.subject,
            actor.role,
            "UPDATE",
            "patient",
            patient_id,
            {name: value for name, value in changes.items() if value is not None},
        )


def _check_address(postcode: str | None, latitude: float | None, longitude: float | None) -> None:
    """A new address comes whole (postcode and coordinates) and on the globe, or not at all."""
    if postcode is None and latitude is None and longitude is None:
        return
    if postcode is None or latitude is None or longitude is None:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT,
            "a new address needs its postcode, latitude and longitude together",
        )
    _check_coordinates(latitude, longitude)


def _check_coordinates(latitude: float, longitude: float) -> None:
    """A home is on the globe (the table's CHECK says the same)."""
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "coordinates out of range")
