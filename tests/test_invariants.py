"""The database's own invariants: each violating row is rejected with the right SQLSTATE."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import pytest

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@dataclass
class World:
    """A minimal world: one site offering two services, one clinician, one patient."""

    connection: asyncpg.Connection[Any]
    cardiology: int
    dermatology: int
    site: int
    staff: int
    patient: int

    async def slot(
        self,
        start: datetime,
        minutes: int = 20,
        service: int | None = None,
        staff: int | None = None,
        status: str = "free",
    ) -> int:
        return int(
            await self.connection.fetchval(
                "INSERT INTO slots (service_id, site_id, staff_id, starts_at, ends_at, status)"
                " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                service or self.cardiology,
                self.site,
                staff or self.staff,
                start,
                start + timedelta(minutes=minutes),
                status,
            )
        )

    async def referral(self, service: int | None = None, priority: str = "ROUTINE") -> int:
        ubrn = await self.connection.fetchval(
            "SELECT lpad((100000000000 + count(*))::text, 12, '0') FROM referrals"
        )
        return int(
            await self.connection.fetchval(
                "INSERT INTO referrals (ubrn, patient_id, referrer_name, referrer_kind,"
                " to_service_id, priority, status, received_at, clock_start, breach_date)"
                " VALUES ($1, $2, 'Dr A Smith', 'GP', $3, $4, 'ACCEPTED', $5, $5, $6) RETURNING id",
                ubrn,
                self.patient,
                service or self.cardiology,
                priority,
                T0,
                date(2027, 4, 1),
            )
        )

    async def book(self, referral: int, slot: int, *, override: bool = False) -> int:
        return int(
            await self.connection.fetchval(
                "INSERT INTO appointments (referral_id, slot_id, booked_by, is_override)"
                " VALUES ($1, $2, 'test', $3) RETURNING id",
                referral,
                slot,
                override,
            )
        )


@pytest.fixture
async def world(connection: asyncpg.Connection[Any]) -> World:
    await connection.execute(
        "INSERT INTO regions VALUES ('LONDON', 'London');"
        "INSERT INTO skills VALUES ('CARDIOLOGY', 'Cardiology'), ('DERMATOLOGY', 'Dermatology')"
    )
    cardiology = await connection.fetchval(
        "INSERT INTO services (code, name, kind, slot_minutes)"
        " VALUES ('CARDIOLOGY', 'Cardiology', 'SPECIALTY', 20) RETURNING id"
    )
    dermatology = await connection.fetchval(
        "INSERT INTO services (code, name, kind, slot_minutes)"
        " VALUES ('DERMATOLOGY', 'Dermatology', 'SPECIALTY', 15) RETURNING id"
    )
    site = await connection.fetchval(
        "INSERT INTO sites (code, name, region_code, town, postcode, latitude, longitude)"
        " VALUES ('S1', 'Camden General', 'LONDON', 'Camden', 'NW1 1AA', 51.5, -0.14) RETURNING id"
    )
    await connection.execute("INSERT INTO site_services VALUES ($1, $2)", site, cardiology)
    staff = await connection.fetchval(
        "INSERT INTO staff (given_name, family_name, role, base_site_id)"
        " VALUES ('Ada', 'Jones', 'CONSULTANT', $1) RETURNING id",
        site,
    )
    patient = await connection.fetchval(
        "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth, postcode,"
        " region_code, latitude, longitude) VALUES ('9434765919', 'Sam', 'Khan', '1970-05-04',"
        " 'NW1 2BB', 'LONDON', 51.53, -0.15) RETURNING id"
    )
    return World(connection, cardiology, dermatology, site, staff, patient)


async def rejected(connection: asyncpg.Connection[Any], statement: Any) -> asyncpg.PostgresError:
    """Run an insert inside a savepoint and return the error PostgreSQL raised."""
    with pytest.raises(asyncpg.PostgresError) as caught:
        async with connection.transaction():
            await statement
    return caught.value


async def test_a_slot_takes_one_active_booking(world: World) -> None:
    slot = await world.slot(T0)
    await world.book(await world.referral(), slot)
    error = await rejected(world.connection, world.book(await world.referral(), slot))
    assert error.sqlstate == "23505"
    assert error.constraint_name == "appointments_one_active_per_slot"


async def test_a_cancelled_booking_frees_the_slot(world: World) -> None:
    slot = await world.slot(T0)
    first = await world.book(await world.referral(), slot)
    await world.connection.execute(
        "UPDATE appointments SET status = 'cancelled', cancellation_reason = 'PATIENT_ILL'"
        " WHERE id = $1",
        first,
    )
    assert await world.book(await world.referral(), slot) > first


async def test_an_administrator_override_may_double_book(world: World) -> None:
    slot = await world.slot(T0)
    await world.book(await world.referral(), slot)
    await world.book(await world.referral(), slot, override=True)
    count = await world.connection.fetchval(
        "SELECT count(*) FROM appointments WHERE slot_id = $1", slot
    )
    assert count == 2


async def test_a_referral_has_one_open_appointment(world: World) -> None:
    referral = await world.referral()
    await world.book(referral, await world.slot(T0))
    error = await rejected(
        world.connection, world.book(referral, await world.slot(T0 + timedelta(hours=1)))
    )
    assert error.sqlstate == "23505"
    assert error.constraint_name == "appointments_one_open_per_referral"


async def test_staff_cannot_be_in_overlapping_slots(world: World) -> None:
    await world.slot(T0, minutes=20)
    error = await rejected(world.connection, world.slot(T0 + timedelta(minutes=10)))
    assert error.sqlstate == "23P01"
    assert error.constraint_name == "slots_no_staff_overlap"


async def test_back_to_back_slots_do_not_overlap(world: World) -> None:
    await world.slot(T0, minutes=20)
    assert await world.slot(T0 + timedelta(minutes=20)) > 0


async def test_staff_cannot_work_overlapping_shifts(world: World) -> None:
    insert = (
        "INSERT INTO roster_shifts (staff_id, site_id, service_id, starts_at, ends_at)"
        " VALUES ($1, $2, $3, $4, $5)"
    )
    await world.connection.execute(
        insert, world.staff, world.site, world.cardiology, T0, T0 + timedelta(hours=4)
    )
    error = await rejected(
        world.connection,
        world.connection.execute(
            insert,
            world.staff,
            world.site,
            world.cardiology,
            T0 + timedelta(hours=3),
            T0 + timedelta(hours=6),
        ),
    )
    assert error.sqlstate == "23P01"
    assert error.constraint_name == "roster_shifts_no_staff_overlap"


async def test_invalid_nhs_number_is_rejected(world: World) -> None:
    error = await rejected(
        world.connection,
        world.connection.execute(
            "INSERT INTO patients (nhs_number, given_name, family_name, date_of_birth, postcode,"
            " region_code, latitude, longitude)"
            " VALUES ('9434765918', 'A', 'B', '1990-01-01', 'NW1', 'LONDON', 51, 0)"
        ),
    )
    assert error.sqlstate == "23514"
    assert error.constraint_name == "patients_nhs_number_valid"


@pytest.mark.parametrize(
    ("table", "assignment", "value", "constraint"),
    [
        ("slots", "status = $1", "open", "slots_status_check"),
        ("referrals", "priority = $1", "SOON", "referrals_priority_check"),
        ("referrals", "status = $1", "WAITING", "referrals_status_check"),
        ("appointments", "status = $1", "done", "appointments_status_check"),
        (
            "appointments",
            "status = 'cancelled', cancellation_reason = $1",
            "BORED",
            "appointments_cancellation_reason_check",
        ),
    ],
)
async def test_unknown_codes_are_rejected(
    world: World, table: str, assignment: str, value: str, constraint: str
) -> None:
    slot = await world.slot(T0)
    referral = await world.referral()
    appointment = await world.book(referral, slot)
    row_id = {"slots": slot, "referrals": referral, "appointments": appointment}[table]
    error = await rejected(
        world.connection,
        world.connection.execute(f"UPDATE {table} SET {assignment} WHERE id = $2", value, row_id),
    )
    assert error.sqlstate == "23514"
    assert error.constraint_name == constraint


async def test_a_booking_must_match_the_referral_service(world: World) -> None:
    await world.connection.execute(
        "INSERT INTO site_services VALUES ($1, $2)", world.site, world.dermatology
    )
    slot = await world.slot(T0, service=world.dermatology)
    error = await rejected(world.connection, world.book(await world.referral(), slot))
    assert error.sqlstate == "23514"
    assert error.constraint_name == "appointments_service_matches"
    # moving a booking into that slot is refused the same way
    cardiology_slot = await world.slot(T0 + timedelta(hours=1))
    appointment = await world.book(await world.referral(), cardiology_slot)
    error = await rejected(
        world.connection,
        world.connection.execute(
            "UPDATE appointments SET slot_id = $1 WHERE id = $2", slot, appointment
        ),
    )
    assert error.sqlstate == "23514"
    assert error.constraint_name == "appointments_service_matches"


async def test_a_slot_must_be_for_a_service_its_site_offers(world: World) -> None:
    error = await rejected(world.connection, world.slot(T0, service=world.dermatology))
    assert error.sqlstate == "23503"


async def test_a_hold_needs_an_expiry(world: World) -> None:
    error = await rejected(world.connection, world.slot(T0, status="busy-tentative"))
    assert error.sqlstate == "23514"
    assert error.constraint_name == "slots_hold_has_expiry"


async def test_unknown_patient_is_a_foreign_key_violation(world: World) -> None:
    error = await rejected(
        world.connection,
        world.connection.execute(
            "UPDATE referrals SET patient_id = -1 WHERE id = $1", await world.referral()
        ),
    )
    assert error.sqlstate == "23503"
