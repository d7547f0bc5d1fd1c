"""Capacity: publish a roster (weekly pattern over a date range → shifts → slots) and block
slots (a clinic closes): affected bookings are cancelled and their referrals wait again, and
both changes are announced to subscribers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time, timedelta
from typing import Any

import asyncpg

from care_graph.auth import Role
from care_graph.clinic_time import CLINIC_ZONE
from care_graph.db import booking_store, care_store, roster_store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor, cancel_appointment_locked
from care_graph.domain.rostering import EXPLANATIONS, RuleBroken, Shift, StaffRoster
from care_graph.domain.statuses import SlotStatus
from care_graph.errors import CareGraphError, ErrorCode

MAY_ROSTER = frozenset({Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN})
MAX_ROSTER_DAYS = 366
MAX_ROSTER_ENTRIES = 500


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
    the two dates, each cut into slots of the service's length; every shift keeps the
    rostering rules (care_graph.domain.rostering: ROSTER_OVERLAP or ROSTER_RULE otherwise,
    and nothing is published). Returns the new slots' ids."""
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
            await _check_rules(
                connection, staff_id, site_id, service, service_id, days, starts, ends
            )
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


@dataclass(frozen=True, slots=True)
class RosterEntry:
    """One weekly pattern of a roster, as ``publishRoster`` takes it."""

    staff_id: int
    site_id: int
    service: str
    weekdays: tuple[int, ...]
    starts: time
    ends: time
    first_day: date
    last_day: date

    @classmethod
    def from_json(cls, data: Any) -> RosterEntry:
        """The entry a JSON object gives under publishRoster's field names (staff and site
        as numbers, under ``staff`` and ``site``); ValueError naming what is wrong."""
        known = {"staff", "site", "service", "weekdays", "starts", "ends", "firstDay", "lastDay"}
        if not isinstance(data, dict) or set(data) != known:
            raise ValueError(f"a roster entry is an object with exactly {sorted(known)}")
        staff, site, weekdays = data["staff"], data["site"], data["weekdays"]
        if any(isinstance(v, bool) or not isinstance(v, int) for v in (staff, site)):
            raise ValueError("staff and site are numbers")
        if not isinstance(weekdays, list) or not all(
            isinstance(day, int) and not isinstance(day, bool) for day in weekdays
        ):
            raise ValueError("weekdays are numbers, 1 (Monday) to 7")
        if not isinstance(data["service"], str):
            raise ValueError("service is a service code")
        try:
            return cls(
                staff,
                site,
                data["service"],
                tuple(weekdays),
                time.fromisoformat(data["starts"]),
                time.fromisoformat(data["ends"]),
                date.fromisoformat(data["firstDay"]),
                date.fromisoformat(data["lastDay"]),
            )
        except (TypeError, ValueError) as error:
            raise ValueError("starts and ends are times, firstDay and lastDay dates") from error


async def publish_rosters(
    connection: Connection, actor: Actor, entries: Sequence[RosterEntry]
) -> list[int]:
    """Publish every entry, or none of them (a draft roster applied as it is): each is
    checked as ``publish_roster`` checks one, against the entries before it too. Returns the
    new slots' ids."""
    if not 1 <= len(entries) <= MAX_ROSTER_ENTRIES:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT, f"a roster has 1 to {MAX_ROSTER_ENTRIES} entries"
        )
    slot_ids: list[int] = []
    async with connection.transaction():
        for number, entry in enumerate(entries, 1):
            try:
                slot_ids += await publish_roster(
                    connection,
                    actor,
                    staff_id=entry.staff_id,
                    site_id=entry.site_id,
                    service=entry.service,
                    weekdays=list(entry.weekdays),
                    starts=entry.starts,
                    ends=entry.ends,
                    first_day=entry.first_day,
                    last_day=entry.last_day,
                )
            except CareGraphError as error:
                raise CareGraphError(error.code, f"entry {number}: {error.message}") from None
    return slot_ids


async def _check_rules(
    connection: Connection,
    staff_id: int,
    site_id: int,
    service: str,
    service_id: int,
    days: list[date],
    starts: time,
    ends: time,
) -> None:
    """Refuse the shifts unless each keeps the rostering rules, against the staff member's
    shifts in the weeks they fall in (the staff row stays locked until the roster is in)."""
    if not days:
        return
    terms = await roster_store.lock_staff_terms(connection, staff_id, days[0])
    if terms is None:
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such staff member")
    offers = await care_store.service_offered_at(connection, service_id, (site_id,))
    first = days[0] - timedelta(days=days[0].weekday() + 1)  # the Sunday before, for rest
    last = days[-1] + timedelta(days=7 - days[-1].weekday())  # the Monday after
    worked = await roster_store.shifts_between(connection, [staff_id], first, last)
    roster = StaffRoster.of(terms, worked.get(staff_id, []))
    for day in days:
        shift = Shift.on(day, starts, ends)
        broken = roster.breaks(shift, site=site_id, service=service, site_offers=offers)
        if broken is RuleBroken.OVERLAP:
            raise CareGraphError(
                ErrorCode.ROSTER_OVERLAP, "the roster overlaps shifts this person already works"
            )
        if broken is not None:
            raise CareGraphError(
                ErrorCode.ROSTER_RULE, f"{day.isoformat()}: {EXPLANATIONS[broken]}"
            )
        roster.add(shift)


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
