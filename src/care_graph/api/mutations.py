"""GraphQL mutations: thin resolvers that decode IDs, call the domain's booking rules and
return typed payloads. Expected failures come back as errors with the domain's stable codes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date, time
from enum import Enum
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension

from care_graph.api.capacity import (
    CapacityRecommendation,
    ScenarioInput,
    SimulatedScenario,
    recommend_capacity,
    simulate_capacity,
)
from care_graph.api.enums import Priority, ReferrerKind
from care_graph.api.ids import key_of_type
from care_graph.api.matching import MatchingMode, MatchingPlan, MatchingScope, run_matching
from care_graph.api.types import Appointment, Patient, Referral, Slot
from care_graph.domain import booking, capacity, offers, patients, referrals, scheduling
from care_graph.errors import CareGraphError, ErrorCode


class Atomic(FieldExtension):
    """Each mutation is all or nothing: its writes share a savepoint in the request's
    transaction, rolled back when it fails, whatever step failed."""

    async def resolve_async(
        self,
        next_: Callable[..., Awaitable[Any]],
        source: Any,
        info: strawberry.Info,
        **kwargs: Any,
    ) -> Any:
        async with info.context.loaders.connection.transaction():
            return await next_(source, info, **kwargs)


def mutation(description: str) -> Any:
    """Declare a mutation field: atomic, with its description."""
    return strawberry.mutation(description=description, extensions=[Atomic()])


def _actor(info: strawberry.Info) -> booking.Actor:
    viewer = info.context.viewer
    return booking.Actor.of(viewer)


async def _offer(info: strawberry.Info, freed: booking.Freed | None) -> None:
    """Keep the waiting list moving: a slot a change set free goes on hold at once for the
    best waiting referral (never the one that gave it up)."""
    if freed is not None:
        await _offer_slots(info, [freed.slot_id], [freed.referral_id])


async def _offer_slots(
    info: strawberry.Info, slot_ids: Sequence[int], excluded_referrals: Sequence[int] = ()
) -> None:
    """Offer slots a change let go of to the waiting referrals that gain most."""
    if slot_ids:
        await offers.offer_slots(
            info.context.loaders.connection,
            list(slot_ids),
            _actor(info),
            excluded_referrals=excluded_referrals,
            model=info.context.cost_model,
        )


def _key(global_id: strawberry.ID, type_name: str) -> int:
    key = key_of_type(str(global_id), type_name)
    if key is None:
        raise CareGraphError(ErrorCode.NOT_FOUND, f"no such {type_name.lower()}")
    return key


@strawberry.input(description="An administrator's deliberate exception to the booking rules.")
class OverrideInput:
    reason: str = strawberry.field(description="Why; recorded in the audit event.")


@strawberry.input(description="Book a waiting referral into a slot.")
class BookAppointmentInput:
    referral_id: strawberry.ID
    slot_id: strawberry.ID
    idempotency_key: str | None = strawberry.field(
        default=None,
        description="Retries with the same key (8 to 200 characters, yours alone) return the"
        " first booking.",
    )
    override: OverrideInput | None = strawberry.field(
        default=None,
        description="Administrators only: book past the rules a clinic may set aside (double"
        " booking, skill, earliest date, travel), audited with the reason.",
    )


@strawberry.input(description="Book the slot offered to (or held for) a referral.")
class AcceptOfferInput:
    referral_id: strawberry.ID
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retries with the same key return the first booking."
    )


@strawberry.input(description="Turn down the slot offered to a referral; it goes to the next.")
class DeclineOfferInput:
    referral_id: strawberry.ID
    reason: str = strawberry.field(description="Why, in a few words (at most 200 characters).")


@strawberry.input(
    description="Hold a slot a waiting referral may book, for a few minutes; a referral holds"
    " one slot at a time."
)
class HoldSlotInput:
    referral_id: strawberry.ID
    slot_id: strawberry.ID
    minutes: int = 10


@strawberry.input(description="Cancel a booking; the slot becomes free again.")
class CancelAppointmentInput:
    appointment_id: strawberry.ID
    reason: str = strawberry.field(description="e-Referral Service cancellation reason code.")


@strawberry.input(description="Register a patient.")
class CreatePatientInput:
    nhs_number: str = strawberry.field(description="Ten digits; spaces are ignored.")
    given_name: str
    family_name: str
    date_of_birth: date
    postcode: str
    region: str
    latitude: float
    longitude: float
    phone: str | None = None
    email: str | None = None


@strawberry.input(
    description="Change a patient's contact details or address (optimistic concurrency)."
)
class UpdatePatientInput:
    patient_id: strawberry.ID
    version: int = strawberry.field(description="The version you read; a newer one wins.")
    phone: str | None = None
    email: str | None = None
    postcode: str | None = strawberry.field(
        default=None, description="A new address: give latitude and longitude with it."
    )
    latitude: float | None = strawberry.field(
        default=None, description="Of the new postcode; distances are measured from here."
    )
    longitude: float | None = strawberry.field(default=None, description="Of the new postcode.")


@strawberry.input(
    description="A patient named by NHS number and date of birth, both as recorded (a"
    " demographic match, as an NHS PDS trace makes)."
)
class PatientMatchInput:
    nhs_number: str = strawberry.field(description="Ten digits; spaces are ignored.")
    date_of_birth: date


@strawberry.input(
    description="Refer a patient to a service: name them by patientId or by patient, not both."
)
class CreateReferralInput:
    patient_id: strawberry.ID | None = strawberry.field(
        default=None,
        description="A patient you may read: for a referrer, one they registered or referred;"
        " otherwise NOT_FOUND, as for an id that names no one.",
    )
    patient: PatientMatchInput | None = strawberry.field(
        default=None,
        description="Any patient, by NHS number and date of birth; NOT_FOUND unless both match"
        " the record, as for a patient never registered.",
    )
    to_service: str = strawberry.field(description="Receiving service code.")
    priority: Priority
    referrer_name: str
    referrer_kind: ReferrerKind
    from_service: str | None = None
    earliest_date: date | None = None
    max_travel_km: float | None = None
    required_skill: str | None = None
    preferred_site_ids: list[strawberry.ID] = strawberry.field(default_factory=list)


def _patient_to_refer(input: CreateReferralInput) -> int | patients.Demographics:
    """The patient a referral names: an id, or a demographic match (referrals.may_refer)."""
    if input.patient is not None and input.patient_id is None:
        return patients.Demographics(input.patient.nhs_number, input.patient.date_of_birth)
    if input.patient_id is not None and input.patient is None:
        return _key(input.patient_id, "Patient")
    raise CareGraphError(
        ErrorCode.INVALID_ARGUMENT,
        "name the patient by patientId or by patient {nhsNumber, dateOfBirth}: one of the two",
    )


@strawberry.enum(description="What triage decides.")
class TriageDecision(Enum):
    ACCEPT = "ACCEPT"
    REJECT = "REJECT"
    REDIRECT = "REDIRECT"


@strawberry.input(description="Triage a referral: accept, reject with a reason, or redirect.")
class TriageReferralInput:
    referral_id: strawberry.ID
    decision: TriageDecision
    priority: Priority | None = strawberry.field(default=None, description="Re-prioritise.")
    reason: str | None = strawberry.field(default=None, description="Why it is rejected.")
    redirect_to: str | None = strawberry.field(default=None, description="Service code.")


@strawberry.input(description="Withdraw a referral (its booking, if any, is cancelled).")
class CancelReferralInput:
    referral_id: strawberry.ID
    reason: str


@strawberry.input(description="Move a booking to another slot, atomically.")
class RescheduleAppointmentInput:
    appointment_id: strawberry.ID
    slot_id: strawberry.ID


@strawberry.input(description="Record whether the patient attended.")
class RecordAttendanceInput:
    appointment_id: strawberry.ID
    attended: bool
    reason: str | None = strawberry.field(default=None, description="Why not, if not.")


@strawberry.input(description="Publish shifts from a weekly pattern; slots are cut from them.")
class PublishRosterInput:
    staff_id: strawberry.ID
    site_id: strawberry.ID
    service: str
    weekdays: list[int] = strawberry.field(description="ISO weekdays: 1 is Monday.")
    starts: time = strawberry.field(description="Local (Europe/London) start of each shift.")
    ends: time
    first_day: date
    last_day: date


@strawberry.input(description="A draft roster to publish whole (recommendCapacity's roster).")
class ApplyCapacityPlanInput:
    roster: list[PublishRosterInput]


@strawberry.input(description="Take slots out of use; bookings in them are cancelled.")
class BlockSlotsInput:
    slot_ids: list[strawberry.ID]
    reason: str = "CLINIC_CANCELLED"


@strawberry.type(description="The patient record.")
class PatientPayload:
    patient: Patient


@strawberry.type(description="The referral that now carries the patient's wait.")
class ReferralPayload:
    referral: Referral


@strawberry.type(description="The appointment.")
class AppointmentPayload:
    appointment: Appointment


@strawberry.type(description="The slots published.")
class PublishRosterPayload:
    slot_count: int


@strawberry.type(description="The bookings the block cancelled.")
class BlockSlotsPayload:
    cancelled_appointments: list[Appointment]


@strawberry.type(description="The booking made.")
class BookAppointmentPayload:
    appointment: Appointment


@strawberry.type(description="The slot now held.")
class HoldSlotPayload:
    slot: Slot


@strawberry.type(description="The appointment now cancelled.")
class CancelAppointmentPayload:
    appointment: Appointment


@strawberry.type(description="Everything care_graph lets a client change.")
class Mutation:
    @mutation("Book a slot; never double-books, safe to retry with a key.")
    async def book_appointment(
        self, info: strawberry.Info, input: BookAppointmentInput
    ) -> BookAppointmentPayload:
        booked = await scheduling.book(
            info.context.loaders.connection,
            referral_id=_key(input.referral_id, "Referral"),
            slot_id=_key(input.slot_id, "Slot"),
            actor=_actor(info),
            model=info.context.cost_model,
            idempotency_key=input.idempotency_key,
            override=None if input.override is None else input.override.reason,
        )
        appointment = await info.context.loaders.node("Appointment", booked.appointment_id)
        return BookAppointmentPayload(appointment=appointment)

    @mutation("Book the slot offered to a referral; safe to retry with a key.")
    async def accept_offer(
        self, info: strawberry.Info, input: AcceptOfferInput
    ) -> BookAppointmentPayload:
        booked = await booking.accept_offer(
            info.context.loaders.connection,
            referral_id=_key(input.referral_id, "Referral"),
            actor=_actor(info),
            idempotency_key=input.idempotency_key,
        )
        appointment = await info.context.loaders.node("Appointment", booked.appointment_id)
        return BookAppointmentPayload(appointment=appointment)

    @mutation("Decline the slot offered to a referral; it is offered to the next at once.")
    async def decline_offer(
        self, info: strawberry.Info, input: DeclineOfferInput
    ) -> ReferralPayload:
        referral_id = _key(input.referral_id, "Referral")
        freed = await booking.decline_offer(
            info.context.loaders.connection,
            referral_id=referral_id,
            reason=input.reason,
            actor=_actor(info),
        )
        await _offer(info, freed)
        return ReferralPayload(referral=await info.context.loaders.node("Referral", referral_id))

    @mutation("Hold a slot for a referral (BUSY_TENTATIVE); a new hold replaces its last.")
    async def hold_slot(self, info: strawberry.Info, input: HoldSlotInput) -> HoldSlotPayload:
        slot_id = _key(input.slot_id, "Slot")
        await scheduling.hold(
            info.context.loaders.connection,
            referral_id=_key(input.referral_id, "Referral"),
            slot_id=slot_id,
            actor=_actor(info),
            model=info.context.cost_model,
            minutes=input.minutes,
        )
        return HoldSlotPayload(slot=await info.context.loaders.node("Slot", slot_id))

    @mutation("Cancel a booking; the referral waits again.")
    async def cancel_appointment(
        self, info: strawberry.Info, input: CancelAppointmentInput
    ) -> CancelAppointmentPayload:
        appointment_id = _key(input.appointment_id, "Appointment")
        await scheduling.cancel(
            info.context.loaders.connection,
            appointment_id=appointment_id,
            reason=input.reason,
            actor=_actor(info),
            model=info.context.cost_model,
        )
        appointment = await info.context.loaders.node("Appointment", appointment_id)
        return CancelAppointmentPayload(appointment=appointment)

    @mutation(
        "Register a patient (NHS number checked). A number already registered is"
        " ALREADY_EXISTS to clinic staff and INVALID_ARGUMENT to a referrer, who refers such a"
        " patient by NHS number and date of birth."
    )
    async def create_patient(
        self, info: strawberry.Info, input: CreatePatientInput
    ) -> PatientPayload:
        patient_id = await patients.create_patient(
            info.context.loaders.connection,
            _actor(info),
            nhs_number=input.nhs_number,
            given_name=input.given_name,
            family_name=input.family_name,
            date_of_birth=input.date_of_birth,
            postcode=input.postcode,
            region=input.region,
            latitude=input.latitude,
            longitude=input.longitude,
            phone=input.phone,
            email=input.email,
        )
        return PatientPayload(patient=await info.context.loaders.node("Patient", patient_id))

    @mutation("Change contact details or the address; STALE_WRITE if out of date.")
    async def update_patient(
        self, info: strawberry.Info, input: UpdatePatientInput
    ) -> PatientPayload:
        patient_id = _key(input.patient_id, "Patient")
        await patients.update_patient(
            info.context.loaders.connection,
            _actor(info),
            patient_id=patient_id,
            version=input.version,
            phone=input.phone,
            email=input.email,
            postcode=input.postcode,
            latitude=input.latitude,
            longitude=input.longitude,
        )
        return PatientPayload(patient=await info.context.loaders.node("Patient", patient_id))

    @mutation("Refer a patient; the waiting-time clock starts now.")
    async def create_referral(
        self, info: strawberry.Info, input: CreateReferralInput
    ) -> ReferralPayload:
        referral_id = await referrals.create_referral(
            info.context.loaders.connection,
            _actor(info),
            patient=_patient_to_refer(input),
            to_service=input.to_service,
            priority=input.priority,
            referrer_name=input.referrer_name,
            referrer_kind=input.referrer_kind.value,
            from_service=input.from_service,
            constraints=referrals.Constraints(
                earliest_date=input.earliest_date,
                max_travel_km=input.max_travel_km,
                required_skill=input.required_skill,
                preferred_site_ids=tuple(_key(site, "Site") for site in input.preferred_site_ids),
            ),
        )
        return ReferralPayload(referral=await info.context.loaders.node("Referral", referral_id))

    @mutation("Accept, reject or redirect a referral.")
    async def triage_referral(
        self, info: strawberry.Info, input: TriageReferralInput
    ) -> ReferralPayload:
        referral_id = await referrals.triage_referral(
            info.context.loaders.connection,
            _actor(info),
            referral_id=_key(input.referral_id, "Referral"),
            decision=referrals.Decision(input.decision.value),
            priority=input.priority,
            reason=input.reason,
            redirect_to=input.redirect_to,
        )
        return ReferralPayload(referral=await info.context.loaders.node("Referral", referral_id))

    @mutation("Withdraw a referral.")
    async def cancel_referral(
        self, info: strawberry.Info, input: CancelReferralInput
    ) -> ReferralPayload:
        referral_id = _key(input.referral_id, "Referral")
        freed = await referrals.cancel_referral(
            info.context.loaders.connection,
            _actor(info),
            referral_id=referral_id,
            reason=input.reason,
        )
        await _offer(info, freed)
        return ReferralPayload(referral=await info.context.loaders.node("Referral", referral_id))

    @mutation("Move a booking to another slot (cancel + book, linked).")
    async def reschedule_appointment(
        self, info: strawberry.Info, input: RescheduleAppointmentInput
    ) -> AppointmentPayload:
        appointment_id, freed = await booking.reschedule_appointment(
            info.context.loaders.connection,
            appointment_id=_key(input.appointment_id, "Appointment"),
            slot_id=_key(input.slot_id, "Slot"),
            actor=_actor(info),
        )
        await _offer(info, freed)
        return AppointmentPayload(
            appointment=await info.context.loaders.node("Appointment", appointment_id)
        )

    @mutation("Attended, or did not attend (with the clock rules).")
    async def record_attendance(
        self, info: strawberry.Info, input: RecordAttendanceInput
    ) -> AppointmentPayload:
        appointment_id = _key(input.appointment_id, "Appointment")
        await booking.record_attendance(
            info.context.loaders.connection,
            appointment_id=appointment_id,
            attended=input.attended,
            actor=_actor(info),
            reason=input.reason,
        )
        return AppointmentPayload(
            appointment=await info.context.loaders.node("Appointment", appointment_id)
        )

    @mutation("Publish a roster and derive its slots.")
    async def publish_roster(
        self, info: strawberry.Info, input: PublishRosterInput
    ) -> PublishRosterPayload:
        slots = await capacity.publish_roster(
            info.context.loaders.connection,
            _actor(info),
            staff_id=_key(input.staff_id, "Staff"),
            site_id=_key(input.site_id, "Site"),
            service=input.service,
            weekdays=input.weekdays,
            starts=input.starts,
            ends=input.ends,
            first_day=input.first_day,
            last_day=input.last_day,
        )
        await offers.offer_slots(
            info.context.loaders.connection, slots, _actor(info), model=info.context.cost_model
        )
        return PublishRosterPayload(slot_count=len(slots))

    @mutation(
        "The extra weekly clinics, from staff who could run them within the rostering rules,"
        " that avoid the most breaches over the weeks (clinic staff only; budget 1 to 100,"
        " weeks 2 to 53). Writes nothing: its roster is applied by applyCapacityPlan."
    )
    async def recommend_capacity(
        self, info: strawberry.Info, region: str, budget: int = 20, weeks: int = 18
    ) -> CapacityRecommendation:
        return await recommend_capacity(info, region, budget, weeks)

    @mutation(
        "Simulate the region's waiting list over the weeks under care_graph's booking: the"
        " baseline and, when given, a what-if scenario, on the same seeds with 95% intervals"
        " (clinic staff only; weeks 1 to 53, replications 1 to 10). Writes nothing."
    )
    async def simulate_capacity(
        self,
        info: strawberry.Info,
        region: str,
        scenario: ScenarioInput | None = None,
        weeks: int = 18,
        replications: int = 1,
    ) -> list[SimulatedScenario]:
        return await simulate_capacity(info, region, scenario, weeks, replications)

    @mutation(
        "Publish a draft roster whole or not at all (a recommendation's, as it is): each"
        " entry within the rostering rules and the entries before it; its slots are offered"
        " to the waiting list at once."
    )
    async def apply_capacity_plan(
        self, info: strawberry.Info, input: ApplyCapacityPlanInput
    ) -> PublishRosterPayload:
        entries = [
            capacity.RosterEntry(
                staff_id=_key(entry.staff_id, "Staff"),
                site_id=_key(entry.site_id, "Site"),
                service=entry.service,
                weekdays=tuple(entry.weekdays),
                starts=entry.starts,
                ends=entry.ends,
                first_day=entry.first_day,
                last_day=entry.last_day,
            )
            for entry in input.roster
        ]
        connection = info.context.loaders.connection
        slots = await capacity.publish_rosters(connection, _actor(info), entries)
        await offers.offer_slots(connection, slots, _actor(info), model=info.context.cost_model)
        return PublishRosterPayload(slot_count=len(slots))

    @mutation("Block slots; their bookings are cancelled and notified.")
    async def block_slots(self, info: strawberry.Info, input: BlockSlotsInput) -> BlockSlotsPayload:
        cancelled = await capacity.block_slots(
            info.context.loaders.connection,
            _actor(info),
            slot_ids=[_key(slot, "Slot") for slot in input.slot_ids],
            reason=input.reason,
        )
        return BlockSlotsPayload(
            cancelled_appointments=await info.context.loaders.nodes("Appointment", cancelled)
        )

    @mutation(
        "Match a scope of the waiting list optimally: PROPOSE the plan, explained and kept"
        " under its planKey, or COMMIT it (a fresh plan, or the one kept under planKey;"
        " committing a kept plan again books nothing)."
    )
    async def run_matching(
        self,
        info: strawberry.Info,
        scope: MatchingScope,
        mode: MatchingMode = MatchingMode.PROPOSE,
        plan_key: str | None = None,
    ) -> MatchingPlan:
        return await run_matching(info, scope, mode, plan_key)
