"""Patient records: create with a checked NHS number; update contact details and the address
with optimistic concurrency (a stale version is refused, never silently overwritten)."""

from __future__ import annotations

from datetime import date

import asyncpg

from care_graph.auth import Role
from care_graph.db import booking_store, care_store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.nhs import is_valid_nhs_number, normalise_nhs_number

MAY_CREATE = frozenset({Role.REFERRER, Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN})


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
    """Register a patient; returns the new record's id."""
    if actor.role not in MAY_CREATE:
        raise CareGraphError(ErrorCode.FORBIDDEN, "patients cannot register other patients")
    number = normalise_nhs_number(nhs_number)
    if not is_valid_nhs_number(number):
        raise CareGraphError(
            ErrorCode.INVALID_NHS_NUMBER, f"{nhs_number!r} is not a valid NHS number"
        )
    if date_of_birth > date.today():
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "a date of birth cannot be in the future")
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
        raise CareGraphError(
            ErrorCode.ALREADY_EXISTS, "a patient with this NHS number is registered"
        ) from None
    except asyncpg.ForeignKeyViolationError:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown region {region!r}") from None
    except asyncpg.CheckViolationError:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "coordinates out of range") from None
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
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "coordinates out of range")
