"""The SQL of patients, referrals, attendance and capacity (booking's is in booking_store)."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

import asyncpg

from care_graph.db import bookable
from care_graph.db.pool import Connection
from care_graph.domain.lifecycle import ReferralStatus
from care_graph.domain.statuses import (
    ATTENDANCE_RECORDED,
    CANCELLABLE_APPOINTMENT,
    OPEN_APPOINTMENT,
    AppointmentStatus,
    sql_list,
)


async def insert_patient(connection: Connection, values: dict[str, Any]) -> int:
    """A new patient row; returns its id."""
    patient_id: int = await connection.fetchval(
        "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth, postcode,"
        " region_code, latitude, longitude, phone, email, registered_by)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
        values["nhs_number"],
        values["given_name"],
        values["family_name"],
        values["date_of_birth"],
        values["postcode"],
        values["region"],
        values["latitude"],
        values["longitude"],
        values.get("phone"),
        values.get("email"),
        values["registered_by"],
    )
    return patient_id


async def update_patient_contact(
    connection: Connection, patient_id: int, version: int, changes: dict[str, Any]
) -> bool:
    """Apply contact and address changes (None leaves a column as it is) if the row is still
    at ``version``; False when it is not. New coordinates move the patient's referrals' reach
    boxes (the patients_reach trigger)."""
    updated = await connection.fetchval(
        "UPDATE patients SET phone = coalesce($3, phone), email = coalesce($4, email),"
        " postcode = coalesce($5, postcode), latitude = coalesce($6, latitude),"
        " longitude = coalesce($7, longitude), version = version + 1, updated_at = now()"
        " WHERE id = $1 AND version = $2 RETURNING true",
        patient_id,
        version,
        changes.get("phone"),
        changes.get("email"),
        changes.get("postcode"),
        changes.get("latitude"),
        changes.get("longitude"),
    )
    return bool(updated)


async def patient_exists(connection: Connection, patient_id: int) -> bool:
    """True when the patient row exists."""
    return bool(
        await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM patients WHERE id = $1)", patient_id
        )
    )


def referrer_reaches_patient(patient: str, subject: str) -> str:
    """SQL true when the referrer ``subject`` (an SQL expression) reaches the patient row
    aliased ``patient``: they registered the record or referred the patient. The one statement
    of a referrer's reach over patients in our SQL: what they read (api/policy.py) and whom
    they may refer by id (``patient_reached``) are both this; row-level security (migration
    0015) mirrors it."""
    return (
        f"({patient}.registered_by = {subject} OR EXISTS (SELECT 1 FROM referrals own"
        f" WHERE own.patient_id = {patient}.id AND own.referrer_subject = {subject}))"
    )


async def patient_reached(connection: Connection, patient_id: int, referrer: str | None) -> bool:
    """True when the patient row exists and, for a ``referrer`` (their subject), is within
    their reach; None reaches every patient."""
    return bool(
        await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM patients p WHERE p.id = $1"
            f" AND ($2::text IS NULL OR {referrer_reaches_patient('p', '$2::text')}))",
            patient_id,
            referrer,
        )
    )


async def patient_matching(connection: Connection, nhs_number: str, born: date) -> int | None:
    """The patient with this NHS number and this date of birth (a demographic match), if any:
    a wrong date of birth finds nothing, as an unknown number does."""
    found: int | None = await connection.fetchval(
        "SELECT id FROM patients WHERE nhs_number = $1 AND date_of_birth = $2",
        nhs_number,
        born,
    )
    return found


async def region_exists(connection: Connection, code: str) -> bool:
    """True when a region with this code exists."""
    return bool(
        await connection.fetchval("SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1)", code)
    )


async def service_id(connection: Connection, code: str) -> int | None:
    """The id of the service with this code."""
    found: int | None = await connection.fetchval("SELECT id FROM services WHERE code = $1", code)
    return found


async def service_offered_at(
    connection: Connection, service_id: int, site_ids: tuple[int, ...]
) -> bool:
    """True when one of these sites offers the service."""
    return bool(
        await connection.fetchval(
            "SELECT EXISTS (SELECT 1 FROM site_services"
            " WHERE service_id = $1 AND site_id = ANY($2::int[]))",
            service_id,
            list(site_ids),
        )
    )


async def skill_exists(connection: Connection, code: str) -> bool:
    """True when a skill with this code exists."""
    return bool(
        await connection.fetchval("SELECT EXISTS (SELECT 1 FROM skills WHERE code = $1)", code)
    )


async def insert_referral(connection: Connection, values: dict[str, Any]) -> int | None:
    """A new referral under a randomly drawn UBRN, and its clock's STARTED event; returns its
    id, or None when the UBRN drawn is already taken (nothing is written: draw again)."""
    referral_id: int | None = await connection.fetchval(
        f"INSERT INTO referrals (ubrn, patient_id, referrer_name, referrer_kind,"
        " referrer_subject, from_service_id, to_service_id, priority, status, received_at,"
        " clock_start, breach_date, earliest_date, max_travel_km, required_skill,"
        " preferred_site_ids, redirected_from_id)"
        " SELECT lpad((floor(random() * 9e11) + 1e11)::bigint::text, 12, '0'),"
        f" $1, $2, $3, $4, $5, $6, $7, '{ReferralStatus.SUBMITTED}', now(),"
        " $8, $9, $10, $11, $12, $13, $14"
        " ON CONFLICT (ubrn) DO NOTHING RETURNING id",
        values["patient_id"],
        values["referrer_name"],
        values["referrer_kind"],
        values["referrer_subject"],
        values.get("from_service_id"),
        values["to_service_id"],
        values["priority"],
        values["clock_start"],
        values["breach_date"],
        values.get("earliest_date"),
        values.get("max_travel_km"),
        values.get("required_skill"),
        values.get("preferred_site_ids", []),
        values.get("redirected_from_id"),
    )
    if referral_id is not None:
        await clock_event(connection, referral_id, "STARTED", values["clock_start"])
    return referral_id


async def patient_of_referral(connection: Connection, referral_id: int) -> int:
    """The patient a referral is for (the referral exists)."""
    patient: int = await connection.fetchval(
        "SELECT patient_id FROM referrals WHERE id = $1", referral_id
    )
    return patient


async def lock_referral_row(connection: Connection, referral_id: int) -> asyncpg.Record | None:
    """The whole referral row, locked for update."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT * FROM referrals WHERE id = $1 FOR UPDATE", referral_id
    )
    return row


async def update_referral(connection: Connection, referral_id: int, **changes: Any) -> None:
    """Set the given referral columns (names are ours, never the caller's)."""
    columns = ", ".join(f"{name} = ${index + 2}" for index, name in enumerate(changes))
    await connection.execute(
        f"UPDATE referrals SET {columns}, version = version + 1, updated_at = now() WHERE id = $1",
        referral_id,
        *changes.values(),
    )


async def clock_event(
    connection: Connection,
    referral_id: int,
    kind: str,
    at: datetime | None = None,
    reason: str | None = None,
) -> None:
    """Record a waiting-time clock event (now, unless ``at`` is given)."""
    await connection.execute(
        "INSERT INTO referral_clock_events (referral_id, kind, occurred_at, reason)"
        " VALUES ($1, $2, coalesce($3, now()), $4)",
        referral_id,
        kind,
        at,
        reason,
    )


async def open_appointment_of(connection: Connection, referral_id: int) -> int | None:
    """The referral's appointment in play, if any."""
    found: int | None = await connection.fetchval(
        "SELECT id FROM appointments WHERE referral_id = $1"
        f" AND status IN {sql_list(OPEN_APPOINTMENT)}",
        referral_id,
    )
    return found


async def earlier_attendances(connection: Connection, referral_id: int, appointment_id: int) -> int:
    """How many of the referral's other appointments were attended or missed."""
    count: int = await connection.fetchval(
        "SELECT count(*) FROM appointments WHERE referral_id = $1 AND id <> $2"
        f" AND status IN {sql_list(ATTENDANCE_RECORDED)}",
        referral_id,
        appointment_id,
    )
    return count


async def set_attendance(
    connection: Connection, appointment_id: int, status: AppointmentStatus, reason: str | None
) -> None:
    """Record that an appointment was attended (fulfilled) or missed (noshow)."""
    await connection.execute(
        "UPDATE appointments SET status = $2, non_attendance_reason = $3, version = version + 1"
        " WHERE id = $1",
        appointment_id,
        status.value,
        reason,
    )


async def set_rebooked_from(connection: Connection, appointment_id: int, previous: int) -> None:
    """Link a booking to the one it replaced."""
    await connection.execute(
        "UPDATE appointments SET rebooked_from_id = $2 WHERE id = $1", appointment_id, previous
    )


async def insert_shifts_and_slots(
    connection: Connection,
    staff_id: int,
    site_id: int,
    service: int,
    days: list[date],
    starts: time,
    ends: time,
    zone: str,
) -> list[int]:
    """Shifts on ``days`` from ``starts`` to ``ends`` local time, cut into the service's
    slots; returns the new slots' ids."""
    rows = await connection.fetch(
        "WITH shifts AS (INSERT INTO roster_shifts (staff_id, site_id, service_id, starts_at,"
        " ends_at) SELECT $1, $2, $3, (d + $5::time) AT TIME ZONE $7,"
        " (d + $6::time) AT TIME ZONE $7"
        " FROM unnest($4::date[]) d RETURNING id, starts_at, ends_at),"
        " minutes AS (SELECT slot_minutes FROM services WHERE id = $3)"
        " INSERT INTO slots (service_id, site_id, staff_id, shift_id, starts_at, ends_at)"
        " SELECT $3, $2, $1, h.id, t, t + make_interval(mins => m.slot_minutes)"
        " FROM shifts h, minutes m,"
        " generate_series(h.starts_at, h.ends_at - make_interval(mins => m.slot_minutes),"
        " make_interval(mins => m.slot_minutes)) t RETURNING id",
        staff_id,
        site_id,
        service,
        days,
        starts,
        ends,
        zone,
    )
    return [row["id"] for row in rows]


async def booked_appointments_in(connection: Connection, slot_ids: list[int]) -> list[int]:
    """Appointments in play in these slots."""
    rows = await connection.fetch(
        "SELECT id FROM appointments WHERE slot_id = ANY($1::bigint[])"
        f" AND status IN {sql_list(CANCELLABLE_APPOINTMENT)} ORDER BY id",
        slot_ids,
    )
    return [row["id"] for row in rows]


async def first_waiting_patient(connection: Connection) -> int | None:
    """The patient of the oldest referral waiting to be booked (a development sign-in)."""
    patient: int | None = await connection.fetchval(
        f"SELECT patient_id FROM referrals r WHERE {bookable.referral_waits('r')}"
        " ORDER BY id LIMIT 1"
    )
    return patient
