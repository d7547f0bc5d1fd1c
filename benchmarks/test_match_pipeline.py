"""Matching at work on the `region` demo scale: database -> candidates -> solve -> plan, by
phase (goal: 5 s in all), against the time the same run takes to read the data (its floor)."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import date

from care_graph.auth import Role
from care_graph.db.pool import Connection, connect, create_pool
from care_graph.domain.booking import Actor, cancel_appointment
from care_graph.domain.commit import commit_plan
from care_graph.domain.offers import offer_slots
from care_graph.matching.plan import Plan, Scope, pairs_of, propose
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory

COMMIT_WORKERS = 2  # one per core of the reference machine, as `care-graph match --commit`
CANCELLATIONS = 25


Timed = list[float]


async def _propose_and_commit(url: str) -> tuple[Plan, float, int, Timed, Timed]:
    """Re-offers with the whole waiting list unbooked, then the plan proposed (after one
    warming run) and committed, then re-offers again with the plan booked."""
    connection = await connect(url)
    clerk = Actor("bench", Role.SCHEDULER)
    try:
        seeded = await connection.fetch(
            "SELECT a.id, a.slot_id FROM appointments a JOIN slots s ON s.id = a.slot_id"
            " WHERE a.status = 'booked' AND s.starts_at > now() + interval '1 day'"
            " ORDER BY a.id"
        )
        unbooked = await _reoffer(connection, clerk, [(row[0], row[1]) for row in seeded])
        await propose(connection, Scope())  # warm the server's caches once
        plan = await propose(connection, Scope())
        pool = await create_pool(
            url, min_size=COMMIT_WORKERS, max_size=COMMIT_WORKERS, statement_timeout_ms=0
        )
        try:
            started = time.perf_counter()
            committed = await commit_plan(pool, clerk, pairs_of(plan), workers=COMMIT_WORKERS)
            commit_seconds = time.perf_counter() - started
        finally:
            await pool.close()
        booked = await _reoffer(
            connection, clerk, [(appointment, slot) for appointment, _, slot in committed.booked]
        )
        return plan, commit_seconds, len(committed.booked), unbooked, booked
    finally:
        await connection.close()


async def _reoffer(connection: Connection, clerk: Actor, bookings: list[tuple[int, int]]) -> Timed:
    """Cancellations one at a time, each end to end: cancel, then offer the freed slot to the
    best waiting referral (the first pays for planning the statements); seconds each."""
    seconds: Timed = []
    step = max(1, len(bookings) // CANCELLATIONS)
    for appointment, slot in bookings[::step][:CANCELLATIONS]:
        started = time.perf_counter()
        await cancel_appointment(
            connection, appointment_id=appointment, reason="PATIENT_ILL", actor=clerk
        )
        await offer_slots(connection, [slot], clerk)
        seconds.append(time.perf_counter() - started)
    return seconds


def test_propose_on_region_scale(
    databases: DatabaseFactory, smoke: bool, report: list[str]
) -> None:
    scale_name = "tiny" if smoke else "region"
    url = databases.create(seeded=True, anchor=date.today(), scale=SCALES[scale_name])
    plan, commit_seconds, booked, unbooked, offer_seconds = asyncio.run(_propose_and_commit(url))
    assert booked == plan.summary.matched
    timings = plan.timings
    summary = plan.summary
    assert summary.matched + len(plan.unmatched) == summary.referrals
    phases = ", ".join(
        f"{phase} {seconds:.2f} s" for phase, seconds in timings.items() if phase != "total"
    )
    report.append(
        f"propose ({scale_name}: {summary.referrals:,} waiting referrals,"
        f" {summary.matched:,} matched): {timings['total']:.2f} s ({phases});"
        f" total / read = {timings['total'] / timings['read']:.1f}x; commit {booked:,} bookings"
        f" in {commit_seconds:.2f} s = {booked / max(commit_seconds, 1e-9):,.0f} bookings/s"
        + _offers_line("with the plan booked", offer_seconds)
        + _offers_line("before, the whole waiting list unbooked", unbooked)
    )


def _offers_line(when: str, offer_seconds: Timed) -> str:
    if not offer_seconds:
        return f"; {when}: no bookings to cancel"
    first, rest = 1000 * offer_seconds[0], sorted(1000 * s for s in offer_seconds[1:]) or [0.0]
    return (
        f"; {when}, {len(offer_seconds)} cancellations each re-offered end to end:"
        f" first {first:.1f} ms,"
        f" then median {statistics.median(rest):.1f} ms,"
        f" p95 {rest[min(len(rest) - 1, round(0.95 * len(rest)))]:.1f} ms"
    )
