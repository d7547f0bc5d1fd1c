"""Capacity: publish a roster (weekly pattern over a date range → shifts → slots) and block
slots (a clinic closes): affected bookings are cancelled and their referrals wait again, and
both changes are announced to subscribers."""

from __future__ import annotations

from datetime import date, time, timedelta

import asyncpg

from care_graph.auth import Role
from care_graph.clinic_time import CLINIC_ZONE
from care_graph.db import booking_store, care_store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor, cancel_appointment_locked
from care_graph.domain.statuses import SlotStatus
from care_graph.errors import CareGraphError, ErrorCode

MAY_ROSTER = frozenset({Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN})
MAX_ROSTER_DAYS = 366


async def publish_roster(
    connection: Connection,
    actor: Actor,
    *,
    staff_id: int,
    site_id: int,
    service: str,
    weekdays: list[int],
    starts: time,
    ends: time,
    first_day: date,
    last_day: date,
) -> list[int]:
    """Shifts for ``staff_id`` at ``site_id`` on the given ISO weekdays (1 = Monday) between
    the two dates, each cut into slots of the service's length. Returns the new slots' ids."""
    if actor.role not in MAY_ROSTER:
        raise CareGraphError(ErrorCode.FORBIDDEN, "rosters are published by clinic staff")
    actor.check_site(site_id)
    if not ends > starts:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "a shift ends after it starts")
    if not 0 <= (last_day - first_day).days <= MAX_ROSTER_DAYS:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT, f"a roster spans 1 to {MAX_ROSTER_DAYS + 1} days"
        )
    if not weekdays or any(day not in range(1, 8) for day in weekdays):
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "weekdays are 1 (Monday) to 7")
    days = [
        first_day + timedelta(days=offset)
        for offset in range((last_day - first_day).days + 1)
        if (first_day + timedelta(days=offset)).isoweekday() in weekdays
    ]
    try:
        async with connection.transaction():
            service_id = await care_store.service_id(connection, service)
            if service_id is None:
                raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown service {service!r}")
            slot_ids = await care_store.insert_shifts_and_slots(
                connection,
                staff_id,
                site_id,
                service_id,
                days,
                starts,
                ends,
                CLINIC_ZONE,
            )
            for slot_id in slot_ids:
                await booking_store.set_slot_status(
                    connection, slot_id, SlotStatus.FREE
                )  # announces
            await booking_store.audit(
                connection,
                actor.subject,
                actor.role,
                "PUBLISH_ROSTER",
                "staff",
                staff_id,
                {"slots": len(slot_ids)},
            )
    except asyncpg.ExclusionViolationError:
        raise CareGraphError(
            ErrorCode.ROSTER_OVERLAP, "the roster overlaps shifts this person already works"
        ) from None
    except asyncpg.ForeignKeyViolationError:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT,
            "no such staff member, or the site does not offer the service",
        ) from None
    return slot_ids


async def block_slots(
    connection: Connection, actor: Actor, *, slot_ids: list[int], reason: str
) -> list[int]:
    """Take slots out of use (busy-unavailable). Bookings in them are cancelled with the
    clinic's reason and their referrals wait again. Returns the cancelled appointments."""
    if actor.role not in MAY_ROSTER:
        raise CareGraphError(ErrorCode.FORBIDDEN, "slots are blocked by clinic staff")
    async with connection.transaction():
        cancelled = await care_store.booked_appointments_in(connection, sorted(slot_ids))
        for appointment_id in cancelled:
            await cancel_appointment_locked(
                connection, actor, appointment_id, reason, free_the_slot=False
            )
        for slot_id in sorted(slot_ids):
            slot = await booking_store.lock_slot(connection, slot_id)
            if slot is None:
                raise CareGraphError(ErrorCode.NOT_FOUND, "no such slot")
            actor.check_site(slot["site_id"])
            await booking_store.set_slot_status(connection, slot_id, SlotStatus.BUSY_UNAVAILABLE)
        await booking_store.audit(
            connection,
            actor.subject,
            actor.role,
            "BLOCK_SLOTS",
            "slot",
            None,
            {"slots": sorted(slot_ids), "reason": reason, "cancelled": cancelled},
        )
    return cancelled
