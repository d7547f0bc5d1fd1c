"""Matching at work on the `region` demo scale: database -> candidates -> solve -> plan, by
phase (goal: 5 s in all), against the time the same run takes to read the data (its floor)."""

from __future__ import annotations

import asyncio
from datetime import date

from care_graph.db.pool import connect
from care_graph.matching.plan import Plan, Scope, propose
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory


async def _propose(url: str) -> Plan:
    connection = await connect(url)
    try:
        await propose(connection, Scope())  # warm the server's caches once
        return await propose(connection, Scope())
    finally:
        await connection.close()


def test_propose_on_region_scale(
    databases: DatabaseFactory, smoke: bool, report: list[str]
) -> None:
    scale_name = "tiny" if smoke else "region"
    url = databases.create(seeded=True, anchor=date.today(), scale=SCALES[scale_name])
    plan = asyncio.run(_propose(url))
    timings = plan.timings
    summary = plan.summary
    assert summary["matched"] + len(plan.unmatched) == summary["referrals"]
    phases = ", ".join(
        f"{phase} {seconds:.2f} s" for phase, seconds in timings.items() if phase != "total"
    )
    report.append(
        f"propose ({scale_name}: {summary['referrals']:,} waiting referrals,"
        f" {summary['matched']:,} matched): {timings['total']:.2f} s ({phases});"
        f" total / read = {timings['total'] / timings['read']:.1f}x"
    )
