"""Referrals: made by a referrer, triaged by the receiving service (accepted, possibly with a new
priority; rejected with a reason; redirected to another service as a new, linked referral), or
cancelled. Transitions go through the one lifecycle in lifecycle.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from care_graph.auth import Role
from care_graph.clinic_time import clinic_date
from care_graph.db import booking_store, care_store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor, Freed, cancel_appointment_locked
from care_graph.domain.lifecycle import ReferralStatus, check_transition
from care_graph.domain.patients import Demographics, checked_nhs_number, referrer_reach
from care_graph.domain.waiting_times import Priority, WaitingStandards
from care_graph.errors import CareGraphError, ErrorCode

MAY_REFER = frozenset({Role.REFERRER, Role.CLINICIAN, Role.ADMIN})
MAY_TRIAGE = frozenset({Role.CLINICIAN, Role.ADMIN})
REFERRER_KINDS = frozenset({"GP", "OPTOMETRIST", "DENTIST", "PHARMACIST", "CONSULTANT"})
# UBRNs drawn for one referral before giving up: a draw is taken with a chance of (referrals
# held) in 9 x 10^11, one in 900,000 with a million held, so a fifth draw is never needed
UBRN_DRAWS = 5


class Decision(StrEnum):
    """What triage decides."""

    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    REDIRECT = "REDIRECT"


@dataclass(frozen=True, slots=True)
class Constraints:
    """A referral's hard constraints on where and when it may be booked."""

    earliest_date: date | None = None
    max_travel_km: float | None = None
    required_skill: str | None = None
    preferred_site_ids: tuple[int, ...] = ()


async def create_referral(
    connection: Connection,
    actor: Actor,
    *,
    patient: int | Demographics,
    to_service: str,
    priority: Priority,
    referrer_name: str,
    referrer_kind: str,
    constraints: Constraints,
    from_service: str | None = None,
    standards: WaitingStandards | None = None,
) -> int:
    """Refer a patient (by id, or by NHS number and date of birth: ``may_refer``) to a service;
    the clock starts now and the breach date follows from the priority's standard. Returns the
    referral's id."""
    async with connection.transaction():
        # every check of the input first: no refusal may depend on whether the patient named
        # is found, or a wrong date of birth would answer differently from a right one
        services = await check_referral(
            connection,
            actor,
            to_service=to_service,
            referrer_kind=referrer_kind,
            constraints=constraints,
            from_service=from_service,
        )
        return await refer_checked(
            connection,
            actor,
            services,
            patient=patient,
            priority=priority,
            referrer_name=referrer_name,
            referrer_kind=referrer_kind,
            constraints=constraints,
            standards=standards,
        )


async def refer_checked(
    connection: Connection,
    actor: Actor,
    services: tuple[int, int | None],
    *,
    patient: int | Demographics,
    priority: Priority,
    referrer_name: str,
    referrer_kind: str,
    constraints: Constraints,
    standards: WaitingStandards | None = None,
) -> int:
    """The rest of create_referral, once ``check_referral`` has passed and given ``services``
    (receiving, referring): whom it names (``may_refer``), the clock started now, the breach
    date, the audit event. Runs inside the caller's transaction."""
    to_id, from_id = services
    now = datetime.now().astimezone()
    patient_id = await may_refer(connection, actor, patient)
    referral_id = await _insert_referral(
        connection,
        {
            "patient_id": patient_id,
            "referrer_name": referrer_name,
            "referrer_kind": referrer_kind,
            "referrer_subject": actor.subject,
            "from_service_id": from_id,
            "to_service_id": to_id,
            "priority": str(priority),
            "clock_start": now,
            "breach_date": (standards or WaitingStandards.from_environment()).breach_date(
                priority, clinic_date(now)
            ),
            "earliest_date": constraints.earliest_date,
            "max_travel_km": constraints.max_travel_km,
            "required_skill": constraints.required_skill,
            "preferred_site_ids": list(constraints.preferred_site_ids),
        },
    )
    await booking_store.audit(
        connection, actor.subject, actor.role, "CREATE", "referral", referral_id
    )
    return referral_id


async def check_referral(
    connection: Connection,
    actor: Actor,
    *,
    to_service: str,
    referrer_kind: str,
    constraints: Constraints,
    from_service: str | None = None,
) -> tuple[int, int | None]:
    """Every check of a referral that does not depend on its patient: who may refer, the
    referrer's kind, the services (returned as ids: receiving, referring) and the constraints.
    Made before anything about the patient is looked at or written, so that no answer tells
    whether a patient is held."""
    if actor.role not in MAY_REFER:
        raise CareGraphError(ErrorCode.FORBIDDEN, "only referrers and clinicians refer")
    if referrer_kind not in REFERRER_KINDS:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown referrer kind {referrer_kind!r}")
    if constraints.max_travel_km is not None and constraints.max_travel_km <= 0:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "maximum travel must be positive")
    to_id = await _service(connection, to_service)
    from_id = await _service(connection, from_service) if from_service else None
    if constraints.required_skill is not None:
        await _check_skill(connection, constraints.required_skill)
    return to_id, from_id


async def may_refer(connection: Connection, actor: Actor, patient: int | Demographics) -> int:
    """The patient ``actor`` may refer, or NOT_FOUND: the one rule of whom a referral may name.

    By id, a patient the actor reaches: a referrer, one they registered or referred before
    (care_store.referrer_reaches_patient, the same rule that decides what they read);
    clinicians and administrators, anyone. By NHS number and date of birth (a demographic
    match, as an NHS PDS trace makes), the patient recorded with both, whoever registered them:
    how a referrer refers a patient someone else registered, and the referral made then puts
    the patient within their reach. An unknown id, a patient out of reach, an unknown number
    and a date of birth that is not the one recorded are all the same NOT_FOUND, so that
    referring tells nothing of who else is registered."""
    if isinstance(patient, Demographics):
        found = await care_store.patient_matching(
            connection, checked_nhs_number(patient.nhs_number), patient.date_of_birth
        )
    elif await care_store.patient_reached(connection, patient, referrer_reach(actor)):
        found = patient
    else:
        found = None
    if found is None:
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such patient")
    return found


async def _insert_referral(connection: Connection, values: dict[str, object]) -> int:
    """Insert a referral under a fresh UBRN, drawn again (up to UBRN_DRAWS times) when the one
    drawn is taken. Random rather than from a sequence, so that a patient's booking number
    tells nothing about anyone else's."""
    for _ in range(UBRN_DRAWS):
        referral_id = await care_store.insert_referral(connection, values)
        if referral_id is not None:
            return referral_id
    raise CareGraphError(
        ErrorCode.CONFLICT_RETRY_EXHAUSTED,
        f"every one of {UBRN_DRAWS} booking numbers drawn was taken; try again",
    )


async def _service(connection: Connection, code: str) -> int:
    found = await care_store.service_id(connection, code)
    if found is None:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown service {code!r}")
    return found


async def _check_skill(connection: Connection, code: str) -> None:
    """A required skill must be one staff can have, or no slot could ever meet it."""
    if not await care_store.skill_exists(connection, code):
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown skill {code!r}")


async def triage_referral(
    connection: Connection,
    actor: Actor,
    *,
    referral_id: int,
    decision: Decision,
    priority: Priority | None = None,
    reason: str | None = None,
    redirect_to: str | None = None,
    standards: WaitingStandards | None = None,
) -> int:
    """Accept (optionally re-prioritised: the breach date follows), reject with a reason, or
    redirect to another service. Returns the referral that now carries the patient's wait:
    the same one, or for a redirect the new linked referral (whose clock continues).

    Clinicians bound to sites triage only referrals to a service one of their sites offers: a
    referral names no site (it waits for any site of its service), so its service is what ties
    it to a clinic. A redirect may send it to a service their sites do not offer."""
    if actor.role not in MAY_TRIAGE:
        raise CareGraphError(ErrorCode.FORBIDDEN, "only clinicians triage referrals")
    async with connection.transaction():
        referral = await care_store.lock_referral_row(connection, referral_id)
        if referral is None:
            raise CareGraphError(ErrorCode.NOT_FOUND, "no such referral")
        await _check_triage_sites(connection, actor, referral["to_service_id"])
        if decision is Decision.ACCEPT:
            check_transition(referral["status"], ReferralStatus.ACCEPTED)
            changes: dict[str, object] = {"status": str(ReferralStatus.ACCEPTED)}
            if priority is not None and str(priority) != referral["priority"]:
                changes["priority"] = str(priority)
                changes["breach_date"] = (
                    standards or WaitingStandards.from_environment()
                ).breach_date(priority, clinic_date(referral["clock_start"]))
            await care_store.update_referral(connection, referral_id, **changes)
            result = referral_id
        elif decision is Decision.REJECT:
            if not reason:
                raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "a rejection needs a reason")
            check_transition(referral["status"], ReferralStatus.REJECTED)
            await care_store.update_referral(
                connection,
                referral_id,
                status=str(ReferralStatus.REJECTED),
                rejection_reason=reason,
            )
            await care_store.clock_event(connection, referral_id, "STOPPED", reason="rejected")
            result = referral_id
        else:
            if not redirect_to:
                raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "a redirect names the service")
            check_transition(referral["status"], ReferralStatus.REDIRECTED)
            await care_store.update_referral(
                connection, referral_id, status=str(ReferralStatus.REDIRECTED)
            )
            result = await _insert_referral(
                connection,
                {
                    "patient_id": referral["patient_id"],
                    "referrer_name": referral["referrer_name"],
                    "referrer_kind": referral["referrer_kind"],
                    "referrer_subject": referral["referrer_subject"],
                    "from_service_id": referral["from_service_id"],
                    "to_service_id": await _service(connection, redirect_to),
                    "priority": referral["priority"],
                    "clock_start": referral["clock_start"],
                    "breach_date": referral["breach_date"],
                    "earliest_date": referral["earliest_date"],
                    "max_travel_km": referral["max_travel_km"],
                    "required_skill": referral["required_skill"],
                    "preferred_site_ids": referral["preferred_site_ids"],
                    "redirected_from_id": referral_id,
                },
            )
        await booking_store.audit(
            connection,
            actor.subject,
            actor.role,
            f"TRIAGE_{decision}",
            "referral",
            referral_id,
            {"result": result},
        )
    return result


async def _check_triage_sites(connection: Connection, actor: Actor, service_id: int) -> None:
    """A clinician bound to sites triages for the services offered there only."""
    if actor.site_ids is not None and not await care_store.service_offered_at(
        connection, service_id, actor.site_ids
    ):
        raise CareGraphError(
            ErrorCode.FORBIDDEN, "the referral's service is not offered at your sites"
        )


async def cancel_referral(
    connection: Connection, actor: Actor, *, referral_id: int, reason: str
) -> Freed | None:
    """Withdraw a referral (and cancel its booking, if it has one: its slot is returned, to be
    offered to the waiting list); the clock stops."""
    async with connection.transaction():
        referral = await care_store.lock_referral_row(connection, referral_id)
        visible = referral is not None and (
            (actor.patient_id is None or referral["patient_id"] == actor.patient_id)
            and (actor.role != Role.REFERRER or referral["referrer_subject"] == actor.subject)
        )
        if referral is None or not visible:
            raise CareGraphError(ErrorCode.NOT_FOUND, "no such referral")
        check_transition(referral["status"], ReferralStatus.CANCELLED)
        appointment = await care_store.open_appointment_of(connection, referral_id)
        freed = None
        if appointment is not None:
            freed = await cancel_appointment_locked(
                connection, actor, appointment, "PATIENT_REQUESTED", referral_waits=False
            )
        await care_store.update_referral(
            connection, referral_id, status=str(ReferralStatus.CANCELLED)
        )
        await care_store.clock_event(connection, referral_id, "STOPPED", reason=reason)
        await booking_store.audit(
            connection,
            actor.subject,
            actor.role,
            "CANCEL",
            "referral",
            referral_id,
            {"reason": reason},
        )
    return freed
