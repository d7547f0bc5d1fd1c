"""Booking rules: hold a slot, book it, cancel a booking. Each runs in one transaction that
locks rows in a fixed order, retries serialization failures and deadlocks a bounded number of
times, and leaves nothing behind when it fails. The database's own constraints back every rule
(one active booking per slot, the slot's service matching the referral's), so a race the
checks here miss still cannot double-book."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import asyncpg

from care_graph.db import booking_store as store
from care_graph.db import care_store
from care_graph.db.pool import Connection
from care_graph.domain.lifecycle import ReferralStatus, check_transition
from care_graph.domain.waiting_times import Priority, WaitingStandards
from care_graph.errors import CareGraphError, ErrorCode

T = TypeVar("T")

MAX_ATTEMPTS = 3
MAX_HOLD_MINUTES = 60
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
    role: str
    patient_id: int | None = None  # set for patients: they act only on their own records
    site_ids: tuple[int, ...] | None = None  # set for clinic staff bound to some sites

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
    if actor.role == "referrer":
        raise CareGraphError(
            ErrorCode.FORBIDDEN, "referrers refer; booking is for patients and booking staff"
        )


async def _locked_referral_and_slot(
    connection: Connection, referral_id: int, slot_id: int, actor: Actor
) -> tuple[asyncpg.Record, asyncpg.Record]:
    referral = await store.lock_referral(connection, referral_id)
    if referral is None or not _may_act_for(actor, referral):
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such referral")
    slot = await store.lock_slot(connection, slot_id)
    if slot is None:
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such slot")
    actor.check_site(slot["site_id"])
    if slot["service_id"] != referral["to_service_id"]:
        raise CareGraphError(
            ErrorCode.SLOT_SERVICE_MISMATCH, "the slot is not for the referral's service"
        )
    if slot["in_the_past"]:
        raise CareGraphError(ErrorCode.SLOT_UNAVAILABLE, "the slot has already started")
    return referral, slot


def _check_bookable(slot: asyncpg.Record, referral_id: int, override: bool) -> None:
    """A slot is bookable when free, when held for this referral (and the hold is live), or
    when someone else's hold has lapsed; an administrator's override books it regardless."""
    if override:
        return
    status = slot["status"]
    if status == "busy-tentative":
        if slot["held_for_referral_id"] == referral_id:
            if slot["hold_expired"]:
                raise CareGraphError(ErrorCode.HOLD_EXPIRED, "the hold on this slot has expired")
            return
        if slot["hold_expired"]:
            return
    if status != "free" and status != "busy-tentative":
        raise CareGraphError(ErrorCode.SLOT_UNAVAILABLE, f"the slot is {status}")
    if status == "busy-tentative":
        raise CareGraphError(ErrorCode.SLOT_UNAVAILABLE, "the slot is held for someone else")


def _request_hash(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


async def book_appointment(
    connection: Connection,
    *,
    referral_id: int,
    slot_id: int,
    actor: Actor,
    idempotency_key: str | None = None,
    override: bool = False,
) -> int:
    """Book a waiting referral into a slot; returns the appointment's id.

    With an idempotency key, a retry with the same input returns the first booking and books
    nothing new; the same key with other input is refused (IDEMPOTENCY_KEY_REUSED).
    """
    _check_may_book(actor)
    if override and actor.role != "admin":
        raise CareGraphError(ErrorCode.FORBIDDEN, "only an administrator may override")
    request_hash = _request_hash("bookAppointment", referral_id, slot_id, override)

    async def book() -> int:
        if idempotency_key is not None and not await store.claim_idempotency_key(
            connection, idempotency_key, actor.subject, "bookAppointment", request_hash
        ):
            earlier = await store.stored_response(connection, idempotency_key)
            if earlier["request_hash"] != request_hash:
                raise CareGraphError(
                    ErrorCode.IDEMPOTENCY_KEY_REUSED,
                    "this idempotency key was used for another request",
                )
            appointment: int = earlier["response"]["appointment_id"]
            return appointment
        referral, slot = await _locked_referral_and_slot(connection, referral_id, slot_id, actor)
        check_transition(referral["status"], ReferralStatus.BOOKED)
        _check_bookable(slot, referral_id, override)
        appointment_id = await store.insert_appointment(
            connection, referral_id, slot_id, actor.subject, override
        )
        await store.set_slot_status(connection, slot_id, "busy")
        await store.set_referral_status(connection, referral_id, ReferralStatus.BOOKED)
        await store.announce_appointment(connection, appointment_id)
        await store.audit(
            connection,
            actor.subject,
            actor.role,
            "OVERRIDE_BOOK" if override else "BOOK",
            "appointment",
            appointment_id,
            {"referral": referral_id, "slot": slot_id},
        )
        if idempotency_key is not None:
            await store.store_response(
                connection, idempotency_key, {"appointment_id": appointment_id}
            )
        return appointment_id

    return await in_transaction(connection, book)


async def hold_slot(
    connection: Connection, *, referral_id: int, slot_id: int, actor: Actor, minutes: int = 10
) -> None:
    """Hold a free slot for a waiting referral for a few minutes (busy-tentative)."""
    _check_may_book(actor)
    if not 1 <= minutes <= MAX_HOLD_MINUTES:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT, f"a hold lasts from 1 to {MAX_HOLD_MINUTES} minutes"
        )

    async def hold() -> None:
        referral, slot = await _locked_referral_and_slot(connection, referral_id, slot_id, actor)
        check_transition(referral["status"], ReferralStatus.BOOKED)
        _check_bookable(slot, referral_id, override=False)
        await store.set_slot_status(connection, slot_id, "busy-tentative", minutes, referral_id)
        await store.audit(
            connection,
            actor.subject,
            actor.role,
            "HOLD",
            "slot",
            slot_id,
            {"referral": referral_id, "minutes": minutes},
        )

    await in_transaction(connection, hold)


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
    found = await store.lock_appointment(connection, appointment_id)
    if found is None:
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such appointment")
    referral = await store.lock_referral(connection, found["referral_id"])
    if referral is None or not _may_act_for(actor, referral):
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such appointment")
    slot = await store.lock_slot(connection, found["slot_id"])
    assert slot is not None  # a foreign key guarantees it
    actor.check_site(slot["site_id"])
    appointment = await store.relock_appointment(connection, appointment_id)
    if appointment["status"] not in ("booked", "pending"):
        raise CareGraphError(
            ErrorCode.INVALID_TRANSITION,
            f"an appointment that is {appointment['status']} cannot be cancelled",
        )
    await store.cancel_appointment_row(connection, appointment_id, reason)
    await store.announce_appointment(connection, appointment_id)
    if free_the_slot:
        await store.set_slot_status(connection, found["slot_id"], "free")
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
    """Move a booking to another slot in one transaction: the old one is cancelled (REBOOKED)
    and the new one links back to it. Returns the new appointment's id and the slot freed."""
    _check_may_book(actor)

    async def reschedule() -> tuple[int, Freed]:
        found = await store.lock_appointment(connection, appointment_id)
        if found is None:
            raise CareGraphError(ErrorCode.NOT_FOUND, "no such appointment")
        freed = await cancel_appointment_locked(connection, actor, appointment_id, "REBOOKED")
        referral, slot = await _locked_referral_and_slot(
            connection, found["referral_id"], slot_id, actor
        )
        check_transition(referral["status"], ReferralStatus.BOOKED)
        _check_bookable(slot, found["referral_id"], override=False)
        new_id = await store.insert_appointment(
            connection, found["referral_id"], slot_id, actor.subject, False
        )
        await care_store.set_rebooked_from(connection, new_id, appointment_id)
        await store.set_slot_status(connection, slot_id, "busy")
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
    if actor.role not in ("clinician", "scheduler", "admin"):
        raise CareGraphError(ErrorCode.FORBIDDEN, "attendance is recorded by clinic staff")
    if not attended and reason not in NON_ATTENDANCE_REASONS:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT,
            f"a non-attendance reason is one of {sorted(NON_ATTENDANCE_REASONS)}",
        )

    async def record() -> None:
        found = await store.lock_appointment(connection, appointment_id)
        if found is None:
            raise CareGraphError(ErrorCode.NOT_FOUND, "no such appointment")
        referral = await care_store.lock_referral_row(connection, found["referral_id"])
        assert referral is not None  # a foreign key guarantees it
        appointment = await store.relock_appointment(connection, appointment_id)
        if appointment["status"] not in ("booked", "arrived", "checked-in"):
            raise CareGraphError(
                ErrorCode.INVALID_TRANSITION,
                f"an appointment that is {appointment['status']} was not due",
            )
        if attended:
            check_transition(referral["status"], ReferralStatus.COMPLETED)
            await care_store.set_attendance(connection, appointment_id, "fulfilled", None)
            await store.set_referral_status(connection, referral["id"], ReferralStatus.COMPLETED)
            await care_store.clock_event(connection, referral["id"], "STOPPED", reason="attended")
        else:
            check_transition(referral["status"], ReferralStatus.ACCEPTED)
            await care_store.set_attendance(connection, appointment_id, "noshow", reason)
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
                        Priority(referral["priority"]), restart.date()
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
