"""Keeping the waiting list moving: slots that become free — a cancellation, a newly published
roster — are offered at once to the waiting referrals that gain most from them: each gets a
hold for a while and an event on the subscription, and nothing else is re-solved.

With every other booking fixed, matching just the new slots against the waiting referrals that
could take them is the exact repair, and the kernel solves that small instance (for a single
slot: the most urgent candidate, then the heaviest under the cost model).
"""

from __future__ import annotations

import numpy as np

from care_graph.db import booking_store, matching_store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor
from care_graph.domain.waiting_times import Priority
from care_graph.matcher import solve
from care_graph.matching.cost import TIERS, CostModel

OFFER_MINUTES = 30


async def offer_slots(
    connection: Connection,
    slot_ids: list[int],
    actor: Actor,
    *,
    excluded_referral: int | None = None,
    model: CostModel | None = None,
) -> dict[int, int]:
    """Hold free slots for the waiting referrals that gain most, optimally over all of them;
    returns slot -> referral for the offers made. ``excluded_referral``: one that just gave a
    slot up and should not be offered it back."""
    model = model or CostModel()
    async with connection.transaction():
        edges: list[tuple[int, int, int, int]] = []  # referral, slot index, tier, weight
        for index, slot_id in enumerate(sorted(slot_ids)):
            slot = await booking_store.lock_slot(connection, slot_id)
            if slot is None or slot["status"] != "free":
                continue
            rows = await matching_store.candidates_for_slot(
                connection, slot_id, slot["service_id"], excluded_referral
            )
            if not rows:
                continue
            parts = model.components(
                waited_days=np.array([row["waited_days"] for row in rows], dtype=np.int64),
                days_to_breach=np.array([row["days_to_breach"] for row in rows], dtype=np.int64),
                days_until=np.array([row["days_until"] for row in rows], dtype=np.int64),
                km=np.array([row["km"] for row in rows], dtype=np.float64),
                preferred=np.array([bool(row["preferred"]) for row in rows]),
            )
            weights = np.sum(list(parts.values()), axis=0)
            edges += [
                (int(row["id"]), index, TIERS[Priority(row["priority"])], int(weight))
                for row, weight in zip(rows, weights.tolist(), strict=True)
            ]
        if not edges:
            return {}
        ordered_slots = sorted(slot_ids)
        referrals = sorted({referral for referral, _, _, _ in edges})
        row_of = {referral: row for row, referral in enumerate(referrals)}
        edges.sort(key=lambda edge: row_of[edge[0]])
        indptr = np.zeros(len(referrals) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(np.bincount([row_of[e[0]] for e in edges], minlength=len(referrals)))
        tiers = np.zeros(len(referrals), dtype=np.int32)
        for referral, _, tier, _ in edges:
            tiers[row_of[referral]] = tier
        assignment, _ = solve(
            indptr,
            np.array([e[1] for e in edges], dtype=np.int32),
            np.array([e[3] for e in edges], dtype=np.int64),
            len(ordered_slots),
            tiers,
        )
        offered: dict[int, int] = {}
        for row, index in enumerate(assignment.tolist()):
            if index < 0:
                continue
            slot_id, referral_id = ordered_slots[index], referrals[row]
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
            offered[slot_id] = referral_id
    return offered
