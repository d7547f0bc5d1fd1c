"""The waiting-list simulator on the `region` demo scale, North West, 18 weeks, one replication
per policy (goals: care_graph ≤ 15 s, first-come-first-served ≤ 5 s, each including its share
of the timeline), and what keeping the matcher warm saves each day against re-solving it cold
(the same timeline, the same days: a ratio within one run).

The care outcome over the same timelines (common random numbers) is reported too: breaches
under each policy, with 95% intervals over the replications."""

from __future__ import annotations

import asyncio
import time
from datetime import date

from care_graph.db.pool import connect
from care_graph.seed.scales import SCALES
from care_graph.simulation.engine import Outcome, run
from care_graph.simulation.snapshot import snapshot
from care_graph.simulation.study import interval
from care_graph.simulation.timeline import capacity, draw
from care_graph.simulation.world import Assumptions, Policy, World
from care_graph.testing import DatabaseFactory

REGION = "NORTH_WEST"
GOALS_S = {Policy.CARE_GRAPH: 15.0, Policy.FIRST_COME_FIRST_SERVED: 5.0}
COLD_DAYS = 21  # cold re-solves are timed on the first three weeks: each costs a full solve


async def region_world(url: str) -> World:
    """The North West's world, snapshot from the database at ``url``."""
    connection = await connect(url)
    try:
        return await snapshot(connection, REGION)
    finally:
        await connection.close()


def test_eighteen_weeks_of_the_north_west(
    databases: DatabaseFactory, smoke: bool, report: list[str]
) -> None:
    scale = "tiny" if smoke else "region"
    url = databases.create(seeded=True, anchor=date.today(), scale=SCALES[scale])
    assumptions = Assumptions(horizon_days=(2 if smoke else 18) * 7)
    replications = 1 if smoke else 5
    started = time.perf_counter()
    world = asyncio.run(region_world(url))
    read_s = time.perf_counter() - started
    slots = capacity(world, assumptions.horizon_days)

    outcomes: dict[Policy, list[Outcome]] = {policy: [] for policy in Policy}
    seconds: dict[Policy, list[float]] = {policy: [] for policy in Policy}
    for seed in range(1, replications + 1):
        mark = time.perf_counter()
        timeline = draw(world, assumptions, seed, slots=slots)
        draw_s = time.perf_counter() - mark
        for policy in Policy:
            mark = time.perf_counter()
            outcomes[policy].append(run(timeline, assumptions, policy))
            seconds[policy].append(read_s + draw_s + time.perf_counter() - mark)
    for policy in Policy:
        assert all(o.seen + o.waiting_at_end >= o.arrived for o in outcomes[policy])

    cold_assumptions = Assumptions(horizon_days=min(COLD_DAYS, assumptions.horizon_days))
    timeline = draw(world, cold_assumptions, 1, slots=slots)
    warm = run(timeline, cold_assumptions, Policy.CARE_GRAPH)
    cold = run(timeline, cold_assumptions, Policy.CARE_GRAPH, cold=True)
    ratio = cold.seconds_per_day / max(warm.seconds_per_day, 1e-9)

    report.append(
        f"simulation {REGION} ({scale}), {assumptions.horizon_days // 7} weeks:"
        f" {len(world.waiting['id']):,} waiting, {len(slots['days_until']):,} slots,"
        f" {sum(world.arrivals.values()):.0f} referrals a day; snapshot {read_s:.2f} s"
    )
    for policy in Policy:
        best = min(seconds[policy])
        goal = GOALS_S.get(policy)
        against = f" (goal <= {goal:.0f} s: {best / goal:.2f}x of it)" if goal else ""
        breaches = interval([o.total_breaches for o in outcomes[policy]])
        urgent = interval([o.breaches[0] + o.breaches[1] for o in outcomes[policy]])
        report.append(
            f"  {policy:<10} best of {replications} {best:6.2f} s{against};"
            f" breaches {breaches.mean:,.0f} [{breaches.low:,.0f}, {breaches.high:,.0f}],"
            f" urgent and 2WW {urgent.mean:,.0f} [{urgent.low:,.0f}, {urgent.high:,.0f}]"
        )
    report.append(
        f"  care_graph a day: warm {warm.seconds_per_day * 1000:.2f} ms,"
        f" cold re-solve {cold.seconds_per_day * 1000:.1f} ms ({ratio:.0f}x the warm cost,"
        f" over {cold_assumptions.horizon_days} days)"
    )
