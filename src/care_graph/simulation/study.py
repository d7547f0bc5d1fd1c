"""Replications and comparisons: each scenario and policy run on the same seeds (common random
numbers), and each difference against the baseline given with a 95% confidence interval over
the replications' paired differences (Student's t)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from care_graph.matching.cost import CostModel
from care_graph.simulation.engine import Outcome, Report, run
from care_graph.simulation.scenarios import Scenario
from care_graph.simulation.timeline import capacity, draw
from care_graph.simulation.world import MAX_REPLICATIONS, Assumptions, Policy, World

# Student's t, two-sided 95%, by degrees of freedom; 1.96 beyond
T_975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def _p92(outcome: Outcome) -> float:
    return math.nan if outcome.waits_at_end.p92 is None else outcome.waits_at_end.p92


MEASURES: dict[str, Callable[[Outcome], float]] = {
    "breaches": lambda outcome: outcome.total_breaches,
    "urgent_breaches": lambda outcome: outcome.breaches[0] + outcome.breaches[1],
    "seen": lambda outcome: outcome.seen,
    "p92_weeks_waiting": _p92,
    "utilisation": lambda outcome: outcome.utilisation,
    "mean_travel_km": lambda outcome: (
        math.nan if outcome.mean_travel_km is None else outcome.mean_travel_km
    ),
}


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean over replications with its 95% confidence interval (equal to the mean with
    one replication)."""

    mean: float
    low: float
    high: float


def interval(values: Sequence[float]) -> Interval:
    """The mean of ``values`` and its 95% confidence interval."""
    array = np.asarray(values, dtype=np.float64)
    mean = float(array.mean())
    if len(array) < 2:
        return Interval(mean, mean, mean)
    t = T_975[len(array) - 2] if len(array) - 1 <= len(T_975) else 1.96
    half = t * float(array.std(ddof=1)) / math.sqrt(len(array))
    return Interval(round(mean, 4), round(mean - half, 4), round(mean + half, 4))


@dataclass(frozen=True, slots=True)
class Study:
    """Every scenario under every policy, over the same seeds."""

    seeds: tuple[int, ...]
    outcomes: dict[tuple[str, Policy], list[Outcome]]

    def to_json(self) -> dict[str, Any]:
        """Every outcome as JSON values, by scenario and policy."""
        return {
            "seeds": list(self.seeds),
            "runs": [
                {"scenario": scenario, "policy": str(policy), "outcomes": [asdict(o) for o in runs]}
                for (scenario, policy), runs in self.outcomes.items()
            ],
        }

    def summary(self, scenario: str, policy: Policy) -> dict[str, Interval]:
        """Each measure of one scenario and policy, over the replications."""
        return {
            name: interval([measure(o) for o in self.outcomes[(scenario, policy)]])
            for name, measure in MEASURES.items()
        }

    def difference(
        self, scenario: str, policy: Policy, baseline: str, baseline_policy: Policy | None = None
    ) -> dict[str, Interval]:
        """Each measure of ``scenario`` less the same of ``baseline`` (under
        ``baseline_policy``, by default the same policy), paired by seed."""
        mine = self.outcomes[(scenario, policy)]
        theirs = self.outcomes[(baseline, baseline_policy or policy)]
        return {
            name: interval([measure(a) - measure(b) for a, b in zip(mine, theirs, strict=True)])
            for name, measure in MEASURES.items()
        }


def study(
    world: World,
    assumptions: Assumptions,
    *,
    policies: Sequence[Policy] = tuple(Policy),
    scenarios: Sequence[Scenario] = (Scenario(),),
    replications: int = 3,
    seed: int = 1,
    model: CostModel | None = None,
    report: Callable[[str], Report] | None = None,
) -> Study:
    """Run every scenario under every policy, ``replications`` times with seeds ``seed``,
    ``seed + 1``, ...; ``report(label)`` gives a progress callback for each run."""
    if not 1 <= replications <= MAX_REPLICATIONS:
        raise ValueError(f"1 to {MAX_REPLICATIONS} replications")
    names = [scenario.name for scenario in scenarios]
    if len(set(names)) != len(names):
        raise ValueError("scenarios need distinct names")
    seeds = tuple(range(seed, seed + replications))
    baseline_capacity = capacity(world, assumptions.horizon_days)
    outcomes: dict[tuple[str, Policy], list[Outcome]] = {}
    for scenario in scenarios:
        changed = scenario.world(world)
        slots = scenario.capacity(world, baseline_capacity)
        for replication in seeds:
            timeline = draw(changed, assumptions, replication, model, slots)
            for policy in policies:
                label = f"{scenario.name} {policy} #{replication}"
                outcome = run(
                    timeline, assumptions, policy, report=report(label) if report else None
                )
                outcomes.setdefault((scenario.name, policy), []).append(outcome)
    return Study(seeds, outcomes)
