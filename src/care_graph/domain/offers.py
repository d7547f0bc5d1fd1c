"""Keeping the waiting list moving: slots that become free — a cancellation, a newly published
roster — are offered at once to the waiting referrals that gain most from them: each gets a
hold for a while and an event on the subscription, and nothing else is re-solved.

With every other booking fixed, matching just the new slots against the waiting referrals that
could take them is the exact repair, and the kernel solves that small instance (for a single
slot: the most urgent candidate, then the heaviest under the cost model).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from care_graph.auth import Role
from care_graph.db import booking_store, matching_store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor
from care_graph.domain.statuses import SlotStatus
from care_graph.domain.waiting_times import Priority
from care_graph.matcher import solve
from care_graph.matching.cost import TIERS, CostModel
from care_graph.observability import metrics

OFFER_MINUTES = 30
CANDIDATE_COLUMNS = (
    "slot_id",
    "id",
    "priority",
    "waited_days",
    "days_to_breach",
    "days_until",
    "km",
    "preferred",
)


async def offer_slots(
    connection: Connection,
    slot_ids: list[int],
    actor: Actor,
    *,
    excluded_referrals: Sequence[int] = (),
    model: CostModel | None = None,
) -> dict[int, int]:
    """Hold open slots for the waiting referrals that gain most, optimally over all of them;
    returns slot -> referral for the offers made. ``excluded_referrals``: those that just gave
    a slot up, or let its offer lapse, and should not be offered these back."""
    model = model or CostModel()
    ordered_slots = sorted(set(slot_ids))
    async with connection.transaction():
        await booking_store.lock_slots(connection, ordered_slots)
        await matching_store.serialize_offers(connection, ordered_slots)
        rows = await matching_store.candidates_for_slots(
            connection, ordered_slots, list(excluded_referrals)
        )
        if not rows:
            return {}
        column = {name: np.array([row[name] for row in rows]) for name in CANDIDATE_COLUMNS}
        parts = model.components(
            waited_days=column["waited_days"].astype(np.int64),
            days_to_breach=column["days_to_breach"].astype(np.int64),
            days_until=column["days_until"].astype(np.int64),
            km=column["km"].astype(np.float64),
            preferred=column["preferred"].astype(np.bool_),
        )
        # rows come by referral: CSR with one row per referral, columns the slots
        referrals, first_edge, edges_per_referral = np.unique(
            column["id"], return_index=True, return_counts=True
        )
        indptr = np.zeros(len(referrals) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(edges_per_referral)
        tiers = np.array(
            [TIERS[Priority(priority)] for priority in column["priority"][first_edge].tolist()],
            dtype=np.int32,
        )
        with metrics.solving():
            assignment, _ = solve(
                indptr,
                np.searchsorted(ordered_slots, column["slot_id"]).astype(np.int32),
                np.sum(list(parts.values()), axis=0).astype(np.int64),
                len(ordered_slots),
                tiers,
            )
        offered: dict[int, int] = {}
        for row, index in enumerate(assignment.tolist()):
            if index < 0:
                continue
            slot_id, referral_id = ordered_slots[index], int(referrals[row])
            await booking_store.set_slot_status(
                connection, slot_id, SlotStatus.BUSY_TENTATIVE, OFFER_MINUTES, referral_id
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
    metrics.OFFERS.inc(len(offered))
    return offered


SWEEPER = Actor("care-graph sweeper", Role.SCHEDULER)
SWEEP_BATCH = 500


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep did: holds found lapsed (now free) and the offers made of them."""

    lapsed: dict[int, int]  # slot -> the referral whose hold lapsed
    offered: dict[int, int]  # slot -> the referral it is offered to now


async def sweep_lapsed_holds(
    connection: Connection, *, model: CostModel | None = None, batch: int = SWEEP_BATCH
) -> Swept:
    """Tidy holds and offers whose time has passed and offer those slots on, each to the
    next best waiting referral (never back to the one whose hold lapsed). A lapsed hold is
    free to every reader already (db/bookable.py); this announces it and keeps the waiting
    list moving. Several workers may sweep at once: each takes rows the others do not."""
    async with connection.transaction():
        lapsed = dict(await booking_store.release_holds(connection, limit=batch))
        if not lapsed:
            return Swept({}, {})
        for slot_id, referral_id in lapsed.items():
            await booking_store.audit(
                connection,
                SWEEPER.subject,
                SWEEPER.role,
                "HOLD_LAPSED",
                "slot",
                slot_id,
                {"referral": referral_id},
            )
        offered = await offer_slots(
            connection,
            list(lapsed),
            SWEEPER,
            excluded_referrals=sorted(set(lapsed.values())),
            model=model,
        )
    metrics.LAPSED.inc(len(lapsed))
    return Swept(lapsed, offered)
