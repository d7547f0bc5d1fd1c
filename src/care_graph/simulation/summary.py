"""A study on one screen: each scenario and policy's breaches, waits, use of capacity and
travel over the replications, then what each scenario and care_graph's policy change; and a
capacity recommendation's sessions in the order chosen."""

from __future__ import annotations

from datetime import timedelta

from care_graph.simulation.recommend import Recommendation
from care_graph.simulation.study import Interval, Study
from care_graph.simulation.world import Assumptions, Policy, World


def _shown(value: Interval, digits: int = 0) -> str:
    if value.low == value.high:
        return f"{value.mean:,.{digits}f}"
    return f"{value.mean:,.{digits}f} ±{(value.high - value.low) / 2:,.{digits}f}"


def render(world: World, assumptions: Assumptions, result: Study) -> str:
    """The study as a few Markdown tables (±: the 95% confidence interval's half-width)."""
    seeds = result.seeds
    lines = [
        f"{world.region}: {assumptions.horizon_days // 7} weeks from {world.today},"
        f" {len(seeds)} replication(s) (seeds {seeds[0]}-{seeds[-1]});"
        f" {len(world.waiting['id']):,} waiting,"
        f" {sum(world.arrivals.values()):,.1f} referrals a day expected",
        "",
        "| scenario | policy | breaches urgent / 2WW / routine | breaches | seen"
        " | p92 weeks waiting | utilisation | mean km | ms a day |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for (scenario, policy), runs in result.outcomes.items():
        figures = result.summary(scenario, policy)
        by_priority = " / ".join(
            f"{sum(run.breaches[tier] for run in runs) / len(runs):,.0f}" for tier in range(3)
        )
        per_day = 1000 * sum(run.seconds_per_day for run in runs) / len(runs)
        lines.append(
            f"| {scenario} | {policy} | {by_priority} | {_shown(figures['breaches'])}"
            f" | {_shown(figures['seen'])} | {_shown(figures['p92_weeks_waiting'], 1)}"
            f" | {_shown(figures['utilisation'], 3)} | {_shown(figures['mean_travel_km'], 1)}"
            f" | {per_day:.2f} |"
        )
    scenarios = list(dict.fromkeys(name for name, _ in result.outcomes))
    policies = list(dict.fromkeys(policy for _, policy in result.outcomes))
    comparisons = [
        (f"{name} - {scenarios[0]}", name, policy, scenarios[0], policy)
        for name in scenarios[1:]
        for policy in policies
    ]
    if Policy.CARE_GRAPH in policies and Policy.FIRST_COME_FIRST_SERVED in policies:
        comparisons += [
            (f"care_graph - fcfs ({name})", name, Policy.CARE_GRAPH, name,
             Policy.FIRST_COME_FIRST_SERVED)
            for name in scenarios
        ]  # fmt: skip
    if comparisons:
        lines += [
            "",
            "| difference | policy | breaches | urgent breaches | seen | p92 weeks waiting"
            " | mean km |",
            "|---|---|---|---|---|---|---|",
        ]
        for label, name, policy, baseline, baseline_policy in comparisons:
            change = result.difference(name, policy, baseline, baseline_policy)
            lines.append(
                f"| {label} | {policy} | {_shown(change['breaches'])}"
                f" | {_shown(change['urgent_breaches'])} | {_shown(change['seen'])}"
                f" | {_shown(change['p92_weeks_waiting'], 1)}"
                f" | {_shown(change['mean_travel_km'], 1)} |"
            )
    return "\n".join(lines)


WEEKDAY_NAMES = ("", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def render_recommendation(recommendation: Recommendation) -> str:
    """The chosen sessions as a Markdown table, in the order chosen, with the breaches the
    matching model avoids by each (on top of those before it) and in all."""
    r = recommendation
    lines = [
        f"{r.region}: {len(r.picks)} of up to {r.budget} weekly sessions chosen from"
        f" {r.considered:,} valued of {r.feasible:,} the rostering rules allow;"
        f" the model sees {r.baseline_breaches:,} breaches on today's capacity",
        "",
        "| # | staff | site | service | clinic | weeks | first - last | slots"
        " | breaches avoided | in all |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    total = 0
    for number, pick in enumerate(r.picks, 1):
        c = pick.candidate
        total += pick.avoided
        first = r.today + timedelta(days=c.days[0])
        last = r.today + timedelta(days=c.days[-1])
        lines.append(
            f"| {number} | {c.staff} | {c.site} | {c.service}"
            f" | {WEEKDAY_NAMES[c.weekday]} {c.starts:%H:%M}-{c.ends:%H:%M} | {len(c.days)}"
            f" | {first:%d %b} - {last:%d %b} | {pick.slots} | {pick.avoided:,} | {total:,} |"
        )
    return "\n".join(lines)
