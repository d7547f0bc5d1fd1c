"""GraphQL mutations: thin resolvers that decode IDs, call the domain's booking rules and
return typed payloads. Expected failures come back as errors with the domain's stable codes."""

from __future__ import annotations

import strawberry

from care_graph.api.ids import decode_global_id
from care_graph.api.types import Appointment, Slot
from care_graph.domain import booking
from care_graph.errors import CareGraphError, ErrorCode


def _actor(info: strawberry.Info) -> booking.Actor:
    viewer = info.context.viewer
    return booking.Actor(viewer.subject, str(viewer.role), viewer.patient_id)


def _key(global_id: strawberry.ID, type_name: str) -> int:
    decoded = decode_global_id(str(global_id))
    if decoded is None or decoded[0] != type_name:
        raise CareGraphError(ErrorCode.NOT_FOUND, f"no such {type_name.lower()}")
    return decoded[1]


@strawberry.input(description="Book a waiting referral into a slot.")
class BookAppointmentInput:
    referral_id: strawberry.ID
    slot_id: strawberry.ID
    idempotency_key: str | None = strawberry.field(
        default=None, description="Retries with the same key return the first booking."
    )


@strawberry.input(description="Hold a free slot for a waiting referral for a few minutes.")
class HoldSlotInput:
    referral_id: strawberry.ID
    slot_id: strawberry.ID
    minutes: int = 10


@strawberry.input(description="Cancel a booking; the slot becomes free again.")
class CancelAppointmentInput:
    appointment_id: strawberry.ID
    reason: str = strawberry.field(description="e-Referral Service cancellation reason code.")


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
    @strawberry.mutation(description="Book a slot; never double-books, safe to retry with a key.")
    async def book_appointment(
        self, info: strawberry.Info, input: BookAppointmentInput
    ) -> BookAppointmentPayload:
        appointment_id = await booking.book_appointment(
            info.context.loaders.connection,
            referral_id=_key(input.referral_id, "Referral"),
            slot_id=_key(input.slot_id, "Slot"),
            actor=_actor(info),
            idempotency_key=input.idempotency_key,
        )
        appointment = await info.context.loaders.node("Appointment", appointment_id)
        return BookAppointmentPayload(appointment=appointment)

    @strawberry.mutation(description="Hold a free slot for a referral (busy-tentative).")
    async def hold_slot(self, info: strawberry.Info, input: HoldSlotInput) -> HoldSlotPayload:
        slot_id = _key(input.slot_id, "Slot")
        await booking.hold_slot(
            info.context.loaders.connection,
            referral_id=_key(input.referral_id, "Referral"),
            slot_id=slot_id,
            actor=_actor(info),
            minutes=input.minutes,
        )
        return HoldSlotPayload(slot=await info.context.loaders.node("Slot", slot_id))

    @strawberry.mutation(description="Cancel a booking; the referral waits again.")
    async def cancel_appointment(
        self, info: strawberry.Info, input: CancelAppointmentInput
    ) -> CancelAppointmentPayload:
        appointment_id = _key(input.appointment_id, "Appointment")
        await booking.cancel_appointment(
            info.context.loaders.connection,
            appointment_id=appointment_id,
            reason=input.reason,
            actor=_actor(info),
        )
        appointment = await info.context.loaders.node("Appointment", appointment_id)
        return CancelAppointmentPayload(appointment=appointment)
