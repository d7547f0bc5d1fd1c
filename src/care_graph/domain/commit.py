"""Committing a matching plan: its pairs are booked in batches by the set-based form of the
booking rules (db/booking_store.book_pairs), each batch one transaction. Pairs that no longer
hold (booked or cancelled meanwhile) are skipped and reported. Committing is idempotent per
plan: each batch's outcome is recorded under the plan's key, so a retry — after a crash
half-way, say — books only what was not booked and returns the same answer."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from care_graph.db import booking_store as store
from care_graph.db.pool import Connection
from care_graph.domain.booking import Actor
from care_graph.errors import CareGraphError, ErrorCode

BATCH = 5000
MAY_COMMIT = frozenset({"clinician", "scheduler", "admin"})


@dataclass(frozen=True, slots=True)
class Committed:
    """What committing a plan did."""

    plan_key: str
    booked: list[tuple[int, int, int]]  # (appointment, referral, slot)
    skipped: list[tuple[int, int]]  # (referral, slot) that no longer held


def plan_key(pairs: list[tuple[int, int]]) -> str:
    """The plan's identity: its pairs, whatever their order."""
    digest = hashlib.sha256(repr(sorted(pairs)).encode()).hexdigest()
    return f"plan:{digest[:40]}"


async def commit_plan(
    connection: Connection, actor: Actor, pairs: list[tuple[int, int]]
) -> Committed:
    """Book a plan's (referral, slot) pairs in batches; safe to run again."""
    if actor.role not in MAY_COMMIT:
        raise CareGraphError(ErrorCode.FORBIDDEN, "plans are committed by clinic staff")
    key = plan_key(pairs)
    ordered = sorted(pairs)
    booked: list[tuple[int, int, int]] = []
    for index in range(0, len(ordered), BATCH):
        batch = ordered[index : index + BATCH]
        batch_key = f"{key}:{index // BATCH}"
        async with connection.transaction():
            if not await store.claim_idempotency_key(
                connection, batch_key, actor.subject, "commitPlan", key
            ):
                done = await store.stored_response(connection, batch_key)
                booked += [(int(a), int(r), int(s)) for a, r, s in done["response"]]
                continue
            made = await store.book_pairs(
                connection,
                [r for r, _ in batch],
                [s for _, s in batch],
                actor.subject,
                actor.role,
                list(actor.site_ids) if actor.site_ids is not None else None,
            )
            await store.store_response(connection, batch_key, [list(item) for item in made])
            booked += made
    done_pairs = {(referral, slot) for _, referral, slot in booked}
    skipped = [pair for pair in ordered if pair not in done_pairs]
    return Committed(key, booked, skipped)
