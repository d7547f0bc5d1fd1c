"""Booking rules: hold a slot, book it, cancel a booking. Each runs in one transaction that
locks rows in a fixed order, retries serialization failures and deadlocks a bounded number of
times, and leaves nothing behind when it fails. The database's own constraints back every rule
(one active booking per slot, the slot's service matching the referral's), so a race the
checks here miss still cannot double-book."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import asyncpg

from care_graph.auth import Role, Viewer
from care_graph.clinic_time import clinic_date
from care_graph.db import booking_store as store
from care_graph.db import care_store
from care_graph.db.pool import Connection
from care_graph.domain.lifecycle import ReferralStatus, check_transition
from care_graph.domain.statuses import (
    CANCELLABLE_APPOINTMENT,
    DUE_APPOINTMENT,
    AppointmentStatus,
    SlotStatus,
)
from care_graph.domain.waiting_times import Priority, WaitingStandards
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.observability import metrics

T = TypeVar("T")

MAX_ATTEMPTS = 3
MAX_HOLD_MINUTES = 60
MIN_KEY_LENGTH, MAX_KEY_LENGTH = 8, 200
MAX_REASON_LENGTH = 200
MAY_RECORD_ATTENDANCE = frozenset({Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN})
NON_ATTENDANCE_REASONS = frozenset(
    {"CANCELLED_TOO_LATE", "ARRIVED_TOO_LATE", "PATIENT_FORGOT", "UNKNOWN"}
)
CANCELLATION_REASONS = frozenset(
    {
        "CLINIC_CANCELLED",
        "PATIENT_ILL",
        "PATIENT_REQUESTED",
        "SLOT_CANCELLED",
        "PRIORITY_CHANGE",
        "REDIRECTED_APPROPRIATE_SPECIALTY",
        "REBOOKED",
    }
)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting: a subject (from the token) and a role."""

    subject: str
    role: Role
    patient_id: int | None = None  # set for patients: they act only on their own records
    site_ids: tuple[int, ...] | None = None  # set for clinic staff bound to some sites

    @classmethod
    def of(cls, viewer: Viewer) -> Actor:
        """The actor a verified caller is, on every transport."""
        return cls(viewer.subject, viewer.role, viewer.patient_id, viewer.site_ids)

    def check_site(self, site_id: int) -> None:
        """Clinic staff bound to sites act only there."""
        if self.site_ids is not None and site_id not in self.site_ids:
            raise CareGraphError(ErrorCode.FORBIDDEN, "that is not one of your sites")


@dataclass(frozen=True, slots=True)
class Freed:
    """A slot a cancellation set free, and the referral that gave it up (never offered it
    back)."""

    slot_id: int
    referral_id: int


async def in_transaction(connection: Connection, work: Callable[[], Awaitable[T]]) -> T:
    """Run ``work`` in a transaction, again on a serialization failure or deadlock."""
    for _ in range(MAX_ATTEMPTS):
        try:
            async with connection.transaction():
                return await work()
        except (asyncpg.SerializationError, asyncpg.DeadlockDetectedError):
            continue
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "appointments_one_active_per_slot":
                raise CareGraphError(
                    ErrorCode.SLOT_UNAVAILABLE, "the slot was booked by someone else"
                ) from None
            if error.constraint_name == "appointments_one_open_per_referral":
                raise CareGraphError(
                    ErrorCode.INVALID_TRANSITION, "the referral already has an appointment"
                ) from None
            raise
    raise CareGraphError(
        ErrorCode.CONFLICT_RETRY_EXHAUSTED,
        f"gave up after {MAX_ATTEMPTS} conflicting attempts; try again",
    )


def _may_act_for(actor: Actor, referral: asyncpg.Record) -> bool:
    """Patients act only on their own referrals; another patient's reads as absent."""
    return actor.patient_id is None or referral["patient_id"] == actor.patient_id


def _check_may_book(actor: Actor) -> None:
    if actor.role == Role.REFERRER:
        raise CareGraphError(
            ErrorCode.FORBIDDEN, "referrers refer; booking is for patients and booking staff"
        )


def check_idempotency_key(key: str | None) -> None:
    """A key is 8 to 200 characters (as the database's CHECK says), refused before any work."""
    if key is not None and not MIN_KEY_LENGTH <= len(key) <= MAX_KEY_LENGTH:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT,
            f"an idempotency key has {MIN_KEY_LENGTH} to {MAX_KEY_LENGTH} characters",
        )


async def _locked_referral_and_slot(
    connection: Connection, referral_id: int, slot_id: int, actor: Actor
) -> tuple[asyncpg.Record, asyncpg.Record]:
    referral = await _locked_referral(connection, referral_id, actor)
    slot = await store.lock_slot(connection, slot_id)
    if slot is None:
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such slot")
    actor.check_site(slot["site_id"])
    return referral, slot


async def _relocked(connection: Connection, referral: asyncpg.Record) -> asyncpg.Record:
    """A referral already locked in this transaction, read again after a change to it."""
    again = await store.lock_referral(connection, referral["id"])
    assert again is not None
    return again


async def _check_bookable(
    connection: Connection, referral: asyncpg.Record, slot_id: int, override: str | None
) -> None:
    """Refuse with the first booking rule (db/bookable.py) the pair breaks; an
    administrator's override books past the overridable ones (double booking, skill,
    earliest date, travel), never past the service or the referral's state."""
    check_transition(referral["status"], ReferralStatus.BOOKED)
    for rule in await store.broken_rules(connection, referral["id"], slot_id):
        if override is None or not rule.overridable:
            raise CareGraphError(rule.code, rule.message)


def _request_hash(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Booked:
    """A booking made, and the slots its referral held until then (now free, to be offered
    to the waiting list)."""

    appointment_id: int
    released: tuple[int, ...] = ()


async def book_appointment(
    connection: Connection,
    *,
    referral_id: int,
    slot_id: int,
    actor: Actor,
    idempotency_key: str | None = None,
    override: str | None = None,
) -> Booked:
    """Book a waiting referral into a slot, under every booking rule; an administrator may
    book past the overridable ones by giving a reason (``override``), which is audited.

    With an idempotency key, a retry with the same input by the same actor returns the first
    booking and books nothing new; the same key with other input is refused
    (IDEMPOTENCY_KEY_REUSED). Keys belong to their actor: another's is no clash.
    """
    _check_may_book(actor)
    check_idempotency_key(idempotency_key)
    if override is not None and actor.role != Role.ADMIN:
        raise CareGraphError(ErrorCode.FORBIDDEN, "only an administrator may override")
    if override is not None and not override.strip():
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "an override needs a reason")
    request_hash = _request_hash("bookAppointment", referral_id, slot_id, override)

    async def book() -> Booked:
        if idempotency_key is not None and not await store.claim_idempotency_key(
            connection, idempotency_key, actor.subject, "bookAppointment", request_hash
        ):
            return await _replayed(connection, actor, idempotency_key, request_hash)
        referral, _ = await _locked_referral_and_slot(connection, referral_id, slot_id, actor)
        return await _book_locked(connection, actor, referral, slot_id, override, idempotency_key)

    return await metrics.booking(in_transaction(connection, book))  # care_graph_bookings


async def _book_locked(
    connection: Connection,
    actor: Actor,
    referral: asyncpg.Record,
    slot_id: int,
    override: str | None,
    idempotency_key: str | None,
) -> Booked:
    """Book a locked referral into a locked slot under every rule, in the caller's
    transaction; the referral's other holds are let go."""
    await _check_bookable(connection, referral, slot_id, override)
    referral_id = referral["id"]
    released = await store.release_holds(connection, referral_ids=[referral_id], keep_slot=slot_id)
    appointment_id = await store.insert_appointment(
        connection, referral_id, slot_id, actor.subject, override is not None
    )
    await store.set_slot_status(connection, slot_id, SlotStatus.BUSY)
    await store.set_referral_status(connection, referral_id, ReferralStatus.BOOKED)
    await store.announce_appointment(connection, appointment_id)
    detail: dict[str, object] = {"referral": referral_id, "slot": slot_id}
    if override is not None:
        detail["reason"] = override
    await store.audit(
        connection,
        actor.subject,
        actor.role,
        "OVERRIDE_BOOK" if override is not None else "BOOK",
        "appointment",
        appointment_id,
        detail,
    )
    if idempotency_key is not None:
        await store.store_response(
            connection, actor.subject, idempotency_key, {"appointment_id": appointment_id}
        )
    return Booked(appointment_id, tuple(slot for slot, _ in released))


async def accept_offer(
    connection: Connection, *, referral_id: int, actor: Actor, idempotency_key: str | None = None
) -> Booked:
    """Book the slot held for a referral (an offer made to it, or its own hold) while the hold
    is live; HOLD_EXPIRED once it has lapsed, NOT_FOUND when it holds none. Idempotent with a
    key, like bookAppointment."""
    _check_may_book(actor)
    check_idempotency_key(idempotency_key)
    request_hash = _request_hash("acceptOffer", referral_id)

    async def accept() -> Booked:
        if idempotency_key is not None and not await store.claim_idempotency_key(
            connection, idempotency_key, actor.subject, "acceptOffer", request_hash
        ):
            return await _replayed(connection, actor, idempotency_key, request_hash)
        referral = await _locked_referral(connection, referral_id, actor)
        held = await store.held_slot(connection, referral_id)
        if held is None:
            raise CareGraphError(ErrorCode.NOT_FOUND, "no slot is held for this referral")
        slot_id, live = held
        if not live:
            raise CareGraphError(ErrorCode.HOLD_EXPIRED, "the offer has lapsed")
        slot = await store.lock_slot(connection, slot_id)
        assert slot is not None  # read from it just now; slots are never deleted
        actor.check_site(slot["site_id"])
        return await _book_locked(connection, actor, referral, slot_id, None, idempotency_key)

    return await metrics.booking(in_transaction(connection, accept))


async def decline_offer(
    connection: Connection, *, referral_id: int, reason: str, actor: Actor
) -> Freed:
    """Turn down the live offer (or hold) of a slot: the slot is let go, audited with the
    reason, and returned to be offered to the next referral (never back to this one)."""
    _check_may_book(actor)
    if not reason.strip() or len(reason) > MAX_REASON_LENGTH:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT,
            f"a reason has 1 to {MAX_REASON_LENGTH} characters",
        )

    async def decline() -> Freed:
        await _locked_referral(connection, referral_id, actor)
        held = await store.held_slot(connection, referral_id)
        if held is None or not held[1]:
            raise CareGraphError(ErrorCode.NOT_FOUND, "no live offer for this referral")
        slot = await store.lock_slot(connection, held[0])
        assert slot is not None
        actor.check_site(slot["site_id"])
        await store.release_holds(connection, referral_ids=[referral_id])
        await store.audit(
            connection,
            actor.subject,
            actor.role,
            "DECLINE_OFFER",
            "slot",
            held[0],
            {"referral": referral_id, "reason": reason},
        )
        return Freed(held[0], referral_id)

    return await in_transaction(connection, decline)


async def _locked_referral(
    connection: Connection, referral_id: int, actor: Actor
) -> asyncpg.Record:
    referral = await store.lock_referral(connection, referral_id)
    if referral is None or not _may_act_for(actor, referral):
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such referral")
    return referral


async def _replayed(connection: Connection, actor: Actor, key: str, request_hash: str) -> Booked:
    """The booking first made under this actor's key, if the request is the same and the
    actor may still see it (a patient's own referral, a site-bound clerk's own site)."""
    earlier = await store.stored_response(connection, actor.subject, key)
    if earlier["request_hash"] != request_hash:
        raise CareGraphError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED, "this idempotency key was used for another request"
        )
    appointment_id: int = earlier["response"]["appointment_id"]
    found = await store.read_appointment(connection, appointment_id)
    assert found is not None  # appointments are never deleted
    referral = await store.lock_referral(connection, found["referral_id"])
    slot = await store.lock_slot(connection, found["slot_id"])
    assert referral is not None  # foreign keys guarantee both
    assert slot is not None
    if not _may_act_for(actor, referral):
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such referral")
    actor.check_site(slot["site_id"])
    return Booked(appointment_id)


async def hold_slot(
    connection: Connection, *, referral_id: int, slot_id: int, actor: Actor, minutes: int = 10
) -> tuple[int, ...]:
    """Hold a slot the referral may book, for a few minutes (busy-tentative). A referral
    holds one slot at a time: a new hold lets go of the old, and those slots are returned
    (free now, to be offered to the waiting list)."""
    _check_may_book(actor)
    if not 1 <= minutes <= MAX_HOLD_MINUTES:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT, f"a hold lasts from 1 to {MAX_HOLD_MINUTES} minutes"
        )

    async def hold() -> tuple[int, ...]:
        referral, _ = await _locked_referral_and_slot(connection, referral_id, slot_id, actor)
        await _check_bookable(connection, referral, slot_id, override=None)
        released = await store.release_holds(
            connection, referral_ids=[referral_id], keep_slot=slot_id
        )
        await store.set_slot_status(
            connection, slot_id, SlotStatus.BUSY_TENTATIVE, minutes, referral_id
        )
        await store.audit(
            connection,
            actor.subject,
            actor.role,
            "HOLD",
            "slot",
            slot_id,
            {"referral": referral_id, "minutes": minutes},
        )
        return tuple(slot for slot, _ in released)

    return await in_transaction(connection, hold)


async def cancel_appointment(
    connection: Connection, *, appointment_id: int, reason: str, actor: Actor
) -> Freed:
    """Cancel a booking: the slot is free again (returned, to be offered to the waiting list)
    and the referral waits again."""
    _check_may_book(actor)

    async def cancel() -> Freed:
        return await cancel_appointment_locked(connection, actor, appointment_id, reason)

    return await in_transaction(connection, cancel)


async def cancel_appointment_locked(
    connection: Connection,
    actor: Actor,
    appointment_id: int,
    reason: str,
    *,
    referral_waits: bool = True,
    free_the_slot: bool = True,
) -> Freed:
    """Cancel a booking inside the caller's transaction, locking referral, slot, appointment in
    the usual order; the referral waits again unless the caller settles it otherwise. Returns
    the slot it held and the referral that gave it up."""
    if reason not in CANCELLATION_REASONS:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown cancellation reason {reason!r}")
    found = await store.read_appointment(connection, appointment_id)
    if found is None:
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such appointment")
    referral = await store.lock_referral(connection, found["referral_id"])
    if referral is None or not _may_act_for(actor, referral):
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such appointment")
    slot = await store.lock_slot(connection, found["slot_id"])
    assert slot is not None  # a foreign key guarantees it
    actor.check_site(slot["site_id"])
    appointment = await store.lock_appointment(connection, appointment_id)
    if appointment["status"] not in CANCELLABLE_APPOINTMENT:
        raise CareGraphError(
            ErrorCode.INVALID_TRANSITION,
            f"an appointment that is {appointment['status']} cannot be cancelled",
        )
    await store.cancel_appointment_row(connection, appointment_id, reason)
    await store.announce_appointment(connection, appointment_id)
    if free_the_slot:
        await store.set_slot_status(connection, found["slot_id"], SlotStatus.FREE)
    if referral_waits:
        check_transition(referral["status"], ReferralStatus.ACCEPTED)
        await store.set_referral_status(connection, found["referral_id"], ReferralStatus.ACCEPTED)
    await store.audit(
        connection,
        actor.subject,
        actor.role,
        "CANCEL",
        "appointment",
        appointment_id,
        {"reason": reason},
    )
    return Freed(found["slot_id"], found["referral_id"])


async def reschedule_appointment(
    connection: Connection, *, appointment_id: int, slot_id: int, actor: Actor
) -> tuple[int, Freed]:
    """Move a booking to another slot in one transaction, under every booking rule: the old
    one is cancelled (REBOOKED) and the new one links back to it. Returns the new
    appointment's id and the slot freed."""
    _check_may_book(actor)

    async def reschedule() -> tuple[int, Freed]:
        found = await store.read_appointment(connection, appointment_id)
        if found is None:
            raise CareGraphError(ErrorCode.NOT_FOUND, "no such appointment")
        freed = await cancel_appointment_locked(connection, actor, appointment_id, "REBOOKED")
        referral, _ = await _locked_referral_and_slot(
            connection, found["referral_id"], slot_id, actor
        )
        # the referral waits again, in this transaction: the rules read it as it is now
        await _check_bookable(connection, await _relocked(connection, referral), slot_id, None)
        new_id = await store.insert_appointment(
            connection, found["referral_id"], slot_id, actor.subject, False
        )
        await care_store.set_rebooked_from(connection, new_id, appointment_id)
        await store.set_slot_status(connection, slot_id, SlotStatus.BUSY)
        await store.set_referral_status(connection, found["referral_id"], ReferralStatus.BOOKED)
        await store.announce_appointment(connection, new_id)
        await store.audit(
            connection,
            actor.subject,
            actor.role,
            "RESCHEDULE",
            "appointment",
            new_id,
            {"from": appointment_id},
        )
        return new_id, freed

    return await in_transaction(connection, reschedule)


async def record_attendance(
    connection: Connection,
    *,
    appointment_id: int,
    attended: bool,
    actor: Actor,
    reason: str | None = None,
) -> None:
    """Attended: the appointment is fulfilled, the referral completed and its clock stopped.
    Did not attend: the appointment is a no-show and the referral waits again; when it was the
    referral's first appointment the clock is nullified and restarts now (DNA rule)."""
    if actor.role not in MAY_RECORD_ATTENDANCE:
        raise CareGraphError(ErrorCode.FORBIDDEN, "attendance is recorded by clinic staff")
    if not attended and reason not in NON_ATTENDANCE_REASONS:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT,
            f"a non-attendance reason is one of {sorted(NON_ATTENDANCE_REASONS)}",
        )

    async def record() -> None:
        found = await store.read_appointment(connection, appointment_id)
        if found is None:
            raise CareGraphError(ErrorCode.NOT_FOUND, "no such appointment")
        referral = await care_store.lock_referral_row(connection, found["referral_id"])
        slot = await store.lock_slot(connection, found["slot_id"])
        assert referral is not None  # foreign keys guarantee both
        assert slot is not None
        actor.check_site(slot["site_id"])
        appointment = await store.lock_appointment(connection, appointment_id)
        if appointment["status"] not in DUE_APPOINTMENT:
            raise CareGraphError(
                ErrorCode.INVALID_TRANSITION,
                f"an appointment that is {appointment['status']} was not due",
            )
        if slot["starts_at"] > datetime.now(UTC):
            raise CareGraphError(
                ErrorCode.INVALID_TRANSITION,
                "attendance is recorded once the appointment has started",
            )
        if attended:
            check_transition(referral["status"], ReferralStatus.COMPLETED)
            await care_store.set_attendance(
                connection, appointment_id, AppointmentStatus.FULFILLED, None
            )
            await store.set_referral_status(connection, referral["id"], ReferralStatus.COMPLETED)
            await care_store.clock_event(connection, referral["id"], "STOPPED", reason="attended")
        else:
            check_transition(referral["status"], ReferralStatus.ACCEPTED)
            await care_store.set_attendance(
                connection, appointment_id, AppointmentStatus.NOSHOW, reason
            )
            await store.set_referral_status(connection, referral["id"], ReferralStatus.ACCEPTED)
            if (
                await care_store.earlier_attendances(connection, referral["id"], appointment_id)
                == 0
            ):
                await care_store.clock_event(
                    connection, referral["id"], "NULLIFIED", reason="first appointment not attended"
                )
                await care_store.clock_event(connection, referral["id"], "STARTED")
                standards = WaitingStandards.from_environment()
                restart = datetime.now().astimezone()
                await care_store.update_referral(
                    connection,
                    referral["id"],
                    clock_start=restart,
                    breach_date=standards.breach_date(
                        Priority(referral["priority"]), clinic_date(restart)
                    ),
                )
        await store.announce_appointment(connection, appointment_id)
        await store.audit(
            connection,
            actor.subject,
            actor.role,
            "ATTENDED" if attended else "DID_NOT_ATTEND",
            "appointment",
            appointment_id,
            {"reason": reason} if reason else None,
        )

    await in_transaction(connection, record)
