"""What booking, holding and cancelling do on every transport (GraphQL, FHIR): the booking rule
(booking.py), then the offers its change makes possible (offers.py) — a slot a cancellation
frees goes on hold for the next waiting referral (never the one that gave it up), as do holds
a booking or a new hold let go of. The caller runs each in one transaction."""

from __future__ import annotations

from care_graph.db.pool import Connection
from care_graph.domain import booking, offers
from care_graph.domain.booking import Actor, Booked
from care_graph.matching.cost import CostModel


async def book(
    connection: Connection,
    *,
    referral_id: int,
    slot_id: int,
    actor: Actor,
    model: CostModel,
    idempotency_key: str | None = None,
    override: str | None = None,
) -> Booked:
    """Book under every rule (booking.book_appointment), then offer what it let go of."""
    booked = await booking.book_appointment(
        connection,
        referral_id=referral_id,
        slot_id=slot_id,
        actor=actor,
        idempotency_key=idempotency_key,
        override=override,
    )
    if booked.released:
        await offers.offer_slots(connection, list(booked.released), actor, model=model)
    return booked


async def hold(
    connection: Connection,
    *,
    referral_id: int,
    slot_id: int,
    actor: Actor,
    model: CostModel,
    minutes: int = 10,
) -> None:
    """Hold a slot for a referral (booking.hold_slot), then offer the holds it let go of."""
    released = await booking.hold_slot(
        connection, referral_id=referral_id, slot_id=slot_id, actor=actor, minutes=minutes
    )
    if released:
        await offers.offer_slots(connection, list(released), actor, model=model)


async def cancel(
    connection: Connection, *, appointment_id: int, reason: str, actor: Actor, model: CostModel
) -> None:
    """Cancel a booking (booking.cancel_appointment), then offer the slot it freed."""
    freed = await booking.cancel_appointment(
        connection, appointment_id=appointment_id, reason=reason, actor=actor
    )
    await offers.offer_slots(
        connection, [freed.slot_id], actor, excluded_referrals=[freed.referral_id], model=model
    )
