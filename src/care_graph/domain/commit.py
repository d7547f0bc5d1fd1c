"""Committing a matching plan: its pairs are booked in batches by the set-based form of the
booking rules (db/booking_store.book_pairs), each batch one transaction. Pairs that no longer
hold (booked or cancelled meanwhile) are skipped and reported. Committing is idempotent per
plan: each batch's outcome is recorded under the plan's key, so a retry — after a crash
half-way, say — books only what was not booked and returns the same answer.

Batches may run on several connections at once: a plan books each referral and each slot at
most once, so batches touch disjoint rows, and each locks its rows in id order."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from care_graph.auth import Role
from care_graph.db import booking_store as store
from care_graph.db.pool import Connection, ConnectionSource
from care_graph.domain.booking import Actor, in_transaction
from care_graph.errors import CareGraphError, ErrorCode

BATCH = 2500  # small enough to share a plan evenly between workers
MAY_MATCH = frozenset(
    {Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN}
)  # who proposes and commits plans

Booked = tuple[int, int, int]  # (appointment, referral, slot)


@dataclass(frozen=True, slots=True)
class Committed:
    """What committing a plan did."""

    plan_key: str
    booked: list[Booked]
    skipped: list[tuple[int, int]]  # (referral, slot) that no longer held


def check_may_match(actor: Actor) -> None:
    """Refuse anyone but clinic staff: they propose and commit plans."""
    if actor.role not in MAY_MATCH:
        raise CareGraphError(ErrorCode.FORBIDDEN, "matching is run by clinic staff")


def plan_key(pairs: list[tuple[int, int]]) -> str:
    """The identity of a plan committed without being kept: its pairs, whatever their
    order."""
    digest = hashlib.sha256(repr(sorted(pairs)).encode()).hexdigest()
    return f"plan:{digest[:40]}"


def _scope_of(actor: Actor) -> str:
    """Which sites a committer may book at, as part of a batch's key: a clerk bound to some
    sites books a shared plan's pairs there, and leaves the rest for someone who may."""
    if actor.site_ids is None:
        return "all"
    return hashlib.sha256(repr(sorted(actor.site_ids)).encode()).hexdigest()[:12]


async def commit_plan(
    database: ConnectionSource,
    actor: Actor,
    pairs: list[tuple[int, int]],
    *,
    key: str | None = None,
    workers: int = 1,
    batch_size: int = BATCH,
) -> Committed:
    """Book a plan's (referral, slot) pairs in batches, on up to ``workers`` connections
    borrowed from ``database`` at once (a OneConnection serves one worker); safe to run
    again with the same plan (``key``: a kept plan's; else its pairs say which) and batch
    size."""
    check_may_match(actor)
    key = key or plan_key(pairs)
    scope = _scope_of(actor)
    ordered = sorted(pairs)
    batches = [ordered[index : index + batch_size] for index in range(0, len(ordered), batch_size)]
    outcomes: list[list[Booked]] = [[] for _ in batches]
    queue = iter(range(len(batches)))

    async def work() -> None:
        async with database.acquire() as connection:
            for number in queue:
                outcomes[number] = await _commit_batch(
                    connection,
                    actor,
                    f"{key}:{scope}:{batch_size}:{number}",
                    key,
                    batches[number],
                )

    tasks = [asyncio.create_task(work()) for _ in range(max(1, min(workers, len(batches))))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # stop the other workers (their open batch rolls back) before reporting the failure
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    booked = [item for outcome in outcomes for item in outcome]
    done_pairs = {(referral, slot) for _, referral, slot in booked}
    skipped = [pair for pair in ordered if pair not in done_pairs]
    return Committed(key, booked, skipped)


async def _commit_batch(
    connection: Connection,
    actor: Actor,
    batch_key: str,
    key: str,
    batch: list[tuple[int, int]],
) -> list[Booked]:
    """Book one batch in one transaction (again after a deadlock with a single booking), or
    return what an earlier run booked of it."""

    async def book() -> list[Booked]:
        if not await store.claim_idempotency_key(
            connection, batch_key, actor.subject, "commitPlan", key
        ):
            done = await store.stored_response(connection, actor.subject, batch_key)
            return [(int(a), int(r), int(s)) for a, r, s in done["response"]]
        made = await store.book_pairs(
            connection,
            [referral for referral, _ in batch],
            [slot for _, slot in batch],
            actor.subject,
            actor.role,
            list(actor.site_ids) if actor.site_ids is not None else None,
        )
        await store.store_response(
            connection, actor.subject, batch_key, [list(item) for item in made]
        )
        return made

    return await in_transaction(connection, book)
