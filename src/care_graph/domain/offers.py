"""Keeping the waiting list moving: a slot freed by a cancellation is offered at once to the
waiting referral that gains most from it — a hold for a while, and an event on the
subscription — without re-solving anything else.

With every other booking fixed, giving one free slot to the best candidate (most urgent tier
first, then the greatest weight under the cost model) is exactly the optimal repair, so no
solver run is needed for a single slot.
"""

from __future__ import annotations

import numpy as np

from care_graph.db import booking_store, matching_store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor
from care_graph.domain.waiting_times import Priority
from care_graph.matching.cost import TIERS, CostModel

OFFER_MINUTES = 30


async def offer_slot(
    connection: Connection,
    slot_id: int,
    actor: Actor,
    *,
    excluded_referral: int | None = None,
    model: CostModel | None = None,
) -> int | None:
    """Hold a free slot for the best waiting referral and announce it; returns that referral
    (None when nobody can take it). ``excluded_referral``: the one that just gave it up."""
    model = model or CostModel()
    async with connection.transaction():
        slot = await booking_store.lock_slot(connection, slot_id)
        if slot is None or slot["status"] != "free":
            return None
        rows = await matching_store.candidates_for_slot(
            connection, slot_id, slot["service_id"], excluded_referral
        )
        if not rows:
            return None
        parts = model.components(
            waited_days=np.array([row["waited_days"] for row in rows], dtype=np.int64),
            days_to_breach=np.array([row["days_to_breach"] for row in rows], dtype=np.int64),
            days_until=np.array([row["days_until"] for row in rows], dtype=np.int64),
            km=np.array([row["km"] for row in rows], dtype=np.float64),
            preferred=np.array([bool(row["preferred"]) for row in rows]),
        )
        weights = np.sum(list(parts.values()), axis=0)
        tiers = np.array([TIERS[Priority(row["priority"])] for row in rows])
        best = int(np.lexsort((-weights, tiers))[0])  # most urgent, then heaviest
        referral_id = int(rows[best]["id"])
        await booking_store.set_slot_status(
            connection, slot_id, "busy-tentative", OFFER_MINUTES, referral_id
        )
        await matching_store.announce_offer(connection, slot_id, referral_id)
        await booking_store.audit(
            connection,
            actor.subject,
            actor.role,
            "OFFER",
            "slot",
            slot_id,
            {"referral": referral_id},
        )
    return referral_id
