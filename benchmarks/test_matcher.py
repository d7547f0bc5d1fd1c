"""The matcher against the solvers a user could pick instead, on identical seeded instances, with
every exact solver's optimum checked equal to ours.

Peers (optional `bench` extra): OR-Tools SimpleMinCostFlow and SciPy's
min_weight_full_bipartite_matching, each on the whole problem and, in a second row, per service
(the decomposition advantage our solver takes by itself). All solve the same integers: cost =
-(weight + the referral's tier bonus); "unmatched" is an explicit zero-cost option for them.
lap.lapmod is not among them: it refuses costs of 1,000,000 or more, and the tier bonuses that
make the objective lexicographic are larger than that at these sizes.

    scripts/dev bench benchmarks/test_matcher.py              # loose and scarce, 20k and 100k
    CARE_GRAPH_BENCH_SLOW_PEERS=1 ...                         # also the slow whole-problem peers
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from care_graph._matcher import connected_components
from care_graph.matcher import Matcher, _bonuses, _row_extremes
from care_graph.matching.instances import Instance, generate_instance

SIZES = {
    "loose-20k": (20_000, 100_000),
    "loose-100k": (100_000, 500_000),
    "scarce-20k": (20_000, 14_000),
    "scarce-100k": (100_000, 70_000),
}
SMOKE_SIZES = {"loose-smoke": (1_000, 5_000), "scarce-smoke": (1_000, 700)}
SLOW_PEERS = os.environ.get("CARE_GRAPH_BENCH_SLOW_PEERS") == "1"


def costs_of(instance: Instance) -> npt.NDArray[np.int64]:
    """The integers every solver minimises (weights plus tier bonuses, negated)."""
    component = connected_components(
        instance.indptr, instance.slots, instance.n_referrals, instance.n_slots
    )
    bonus = _bonuses(_row_extremes(instance.indptr, instance.weights), instance.tiers, component)
    return -(instance.weights + np.repeat(bonus, np.diff(instance.indptr)))


def lexicographic(instance: Instance, assignment: npt.NDArray[np.int32]) -> tuple[int, ...]:
    """(matched per tier, total weight): what 'the same optimum' means."""
    n_tiers = int(instance.tiers.max()) + 1
    matched = assignment >= 0
    counts = np.bincount(instance.tiers[matched], minlength=n_tiers)
    # the weight of each matched referral's edge to its slot (the best, if duplicated)
    rows = np.repeat(np.arange(instance.n_referrals), np.diff(instance.indptr))
    on_edge = instance.slots == assignment[rows]
    best = np.full(instance.n_referrals, np.iinfo(np.int64).min)
    np.maximum.at(best, rows[on_edge], instance.weights[on_edge])
    return (*counts.tolist(), int(best[matched].sum()))


class CostRangeError(Exception):
    """A peer cannot take the objective's integers at this size."""


def ortools_flow(
    instance: Instance,
    costs: npt.NDArray[np.int64],
    rows: npt.NDArray[np.int64],
) -> npt.NDArray[np.int32]:
    """Min-cost flow: source -> referral -> slot -> sink, plus referral -> sink at cost 0."""
    from ortools.graph.python import min_cost_flow

    n_rows, n_slots = instance.n_referrals, instance.n_slots
    source, sink = n_rows + n_slots, n_rows + n_slots + 1
    flow = min_cost_flow.SimpleMinCostFlow()
    tails = np.concatenate(
        [np.full(n_rows, source), rows, np.arange(n_rows), n_rows + np.arange(n_slots)]
    )
    heads = np.concatenate(
        [np.arange(n_rows), n_rows + instance.slots, np.full(n_rows, sink), np.full(n_slots, sink)]
    )
    unit = np.ones(len(tails), dtype=np.int64)
    arc_costs = np.concatenate(
        [np.zeros(n_rows, dtype=np.int64), costs, np.zeros(n_rows + n_slots, dtype=np.int64)]
    )
    flow.add_arcs_with_capacity_and_unit_cost(tails, heads, unit, arc_costs)
    supplies = np.zeros(n_rows + n_slots + 2, dtype=np.int64)
    supplies[source], supplies[sink] = n_rows, -n_rows
    flow.set_nodes_supplies(np.arange(len(supplies)), supplies)
    status = flow.solve()
    if status == flow.BAD_COST_RANGE:
        raise CostRangeError("OR-Tools cannot represent costs this large at this size")
    assert status == flow.OPTIMAL
    first_edge = n_rows
    used = flow.flows(np.arange(first_edge, first_edge + len(costs))) > 0
    assignment = np.full(n_rows, -1, dtype=np.int32)
    assignment[rows[used]] = instance.slots[used]
    return assignment


def scipy_full(
    instance: Instance, costs: npt.NDArray[np.int64], rows: npt.NDArray[np.int64]
) -> npt.NDArray[np.int32]:
    """SciPy's full bipartite matching (every referral matched) with a dummy column per
    referral; costs are shifted positive, which does not change a full matching's optimum."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    n_rows, n_slots = instance.n_referrals, instance.n_slots
    # a sparse matrix sums duplicate entries: keep only the cheapest edge per (referral, slot)
    order = np.lexsort((costs, instance.slots, rows))
    keep = np.ones(len(order), dtype=bool)
    keep[1:] = (rows[order][1:] != rows[order][:-1]) | (
        instance.slots[order][1:] != instance.slots[order][:-1]
    )
    edge_rows, edge_slots, edge_costs = (
        rows[order][keep],
        instance.slots[order][keep],
        costs[order][keep],
    )
    shift = -int(edge_costs.min()) + 1 if len(edge_costs) else 1
    data = np.concatenate([edge_costs + shift, np.full(n_rows, shift)]).astype(np.float64)
    matrix = csr_matrix(
        (
            data,
            (
                np.concatenate([edge_rows, np.arange(n_rows)]),
                np.concatenate([edge_slots, n_slots + np.arange(n_rows)]),
            ),
        ),
        shape=(n_rows, n_slots + n_rows),
    )
    _, chosen = min_weight_full_bipartite_matching(matrix)
    return np.where(chosen < n_slots, chosen, -1).astype(np.int32)


Peer = Callable[[Instance, npt.NDArray[np.int64], npt.NDArray[np.int64]], npt.NDArray[np.int32]]


@dataclass(frozen=True, slots=True)
class ServicePart:
    """One service's referrals as a peer's instance, with what maps its answer back."""

    members: npt.NDArray[np.int64]
    used_slots: npt.NDArray[np.int32]
    instance: Instance
    costs: npt.NDArray[np.int64]
    rows: npt.NDArray[np.int64]


def by_service(instance: Instance, costs: npt.NDArray[np.int64]) -> list[ServicePart]:
    """The instance cut per service (the decomposition our solver finds by itself), done once
    and outside every timing: a peer per service is timed on its solves alone."""
    parts = []
    edge_rows = np.repeat(np.arange(instance.n_referrals), np.diff(instance.indptr))
    order = np.argsort(instance.service[edge_rows], kind="stable")
    edge_service = instance.service[edge_rows][order]
    services = np.unique(instance.service)
    starts = np.searchsorted(edge_service, services, side="left")
    stops = np.searchsorted(edge_service, services, side="right")
    for service, start, stop in zip(services.tolist(), starts, stops, strict=True):
        members = np.flatnonzero(instance.service == service)
        edges = np.sort(order[start:stop])
        used_slots, local_slots = np.unique(instance.slots[edges], return_inverse=True)
        if len(used_slots) == 0:
            continue  # no candidate anywhere: everyone in this service stays unmatched
        local_row = np.searchsorted(members, edge_rows[edges])
        indptr = np.zeros(len(members) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(np.bincount(local_row, minlength=len(members)))
        sub = Instance(
            indptr,
            local_slots.astype(np.int32),
            instance.weights[edges],
            instance.tiers[members],
            len(used_slots),
            instance.service[members],
        )
        parts.append(ServicePart(members, used_slots, sub, costs[edges], local_row))
    return parts


def per_service(solver: Peer, n_referrals: int, parts: list[ServicePart]) -> npt.NDArray[np.int32]:
    """Run a peer once per service on the parts cut beforehand."""
    assignment = np.full(n_referrals, -1, dtype=np.int32)
    for part in parts:
        local = solver(part.instance, part.costs, part.rows)
        assignment[part.members] = np.where(local >= 0, part.used_slots[np.maximum(local, 0)], -1)
    return assignment


def peak_memory_mib(n_referrals: int, n_slots: int) -> float:
    """Peak extra resident memory of one cold solve, in a fresh process whose high-water mark
    is reset after the instance is built (Linux: writing 5 to /proc/self/clear_refs)."""
    script = (
        "from care_graph.matching.instances import generate_instance\n"
        "from care_graph.matcher import solve\n"
        f"i = generate_instance({n_referrals}, {n_slots}, seed=1)\n"
        "def status(key):\n"
        "    return int([line for line in open('/proc/self/status')"
        " if line.startswith(key)][0].split()[1])\n"
        "import gc; gc.collect()\n"
        "open('/proc/self/clear_refs', 'w').write('5')\n"
        "before = status('VmRSS')\n"
        "solve(i.indptr, i.slots, i.weights, i.n_slots, i.tiers)\n"
        "print((status('VmHWM') - before) / 1024)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return float(output.strip())


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """One run's wall time and result."""
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def median_of(repeats: int, work: Callable[[], Any]) -> tuple[float, Any]:
    """The median wall time of ``repeats`` runs and the last result: the one statistic every
    solver here is given, ours and the peers alike."""
    runs = [timed(work) for _ in range(repeats)]
    return float(np.median([seconds for seconds, _ in runs])), runs[-1][1]


def against_goal(seconds: float, goal: float) -> str:
    """A figure beside its goal (lower is better), with the ratio and the verdict."""
    verdict = "met" if seconds <= goal else "missed"
    return f"goal <= {goal:g} s: {seconds / goal:.2f} of it, {verdict}"


# the goals of issue 16 (cold solves; a 1% repair at loose 100k) and how often each is run
GOALS = {"loose-100k": 0.5, "scarce-100k": 1.5}
REPAIR_GOAL = 0.050
REPEATS = 3
REPAIR_SAMPLES = 5


@pytest.mark.parametrize("name", list(SIZES))
def test_matcher_against_peers(name: str, smoke: bool, report: list[str]) -> None:
    shape = name.split("-")[0]
    n_referrals, n_slots = SMOKE_SIZES[f"{shape}-smoke"] if smoke else SIZES[name]
    if smoke and name.endswith("100k"):
        pytest.skip("the smoke run covers each shape once")
    report.append(compare(name, shape, n_referrals, n_slots, smoke))


def compare(name: str, shape: str, n_referrals: int, n_slots: int, smoke: bool) -> str:
    """Time care_graph and every peer on one instance; check they agree; one summary line."""
    instance = generate_instance(n_referrals, n_slots, seed=1)
    costs = costs_of(instance)
    rows = np.repeat(np.arange(instance.n_referrals), np.diff(instance.indptr))

    def ours() -> Any:
        return Matcher(
            instance.indptr, instance.slots, instance.weights, instance.n_slots, instance.tiers
        ).result()

    repeats = 1 if smoke else REPEATS
    ours_time, matching = median_of(repeats, ours)
    optimum = lexicographic(instance, matching.assignment)
    line = [
        f"{name} ({n_referrals:,} x {n_slots:,}, {len(instance.slots):,} edges):"
        f" care_graph {ours_time:.3f} s (median of {repeats})"
    ]
    if not smoke and name in GOALS:
        line.append(against_goal(ours_time, GOALS[name]))
    large = n_referrals >= 100_000
    parts = by_service(instance, costs)
    peers: list[tuple[str, Callable[[], npt.NDArray[np.int32]]]] = []
    n = instance.n_referrals
    if find("ortools") and (not large or shape == "loose" or SLOW_PEERS):
        peers.append(("OR-Tools flow", lambda: ortools_flow(instance, costs, rows)))
        peers.append(("OR-Tools flow/service", lambda: per_service(ortools_flow, n, parts)))
    if not large or SLOW_PEERS:
        peers.append(("scipy", lambda: scipy_full(instance, costs, rows)))
        peers.append(("scipy/service", lambda: per_service(scipy_full, n, parts)))
    for peer, run in peers:
        try:
            peer_time, assignment = median_of(repeats, run)
        except CostRangeError as error:
            line.append(f"{peer}: not run ({error})")
            continue
        assert lexicographic(instance, assignment) == optimum, f"{peer} disagrees"
        line.append(f"{peer} {peer_time:.2f} s ({peer_time / ours_time:.1f}x)")
    if not smoke and large and shape == "loose":
        line.append(f"peak extra memory {peak_memory_mib(n_referrals, n_slots):.0f} MiB")
    return "; ".join(line) + "; equal optima"


def find(module: str) -> bool:
    """Whether an optional peer is installed (the `bench` extra)."""
    try:
        __import__(module)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("name", ["loose-100k", "scarce-100k"])
def test_incremental_repair(name: str, smoke: bool, report: list[str]) -> None:
    """Re-matching after 1% of slots and referrals change (half leave, half arrive), and after
    one cancellation, against a cold solve of the changed instance; each a median over
    samples that change different referrals and slots, every sample checked equal to its
    cold solve."""
    shape = name.split("-")[0]
    if smoke and name == "scarce-100k":
        pytest.skip("the smoke run covers one shape")
    n_referrals, n_slots = SMOKE_SIZES[f"{shape}-smoke"] if smoke else SIZES[name]
    instance = generate_instance(n_referrals, n_slots, seed=2)
    samples = [repair_sample(instance, seed) for seed in range(1 if smoke else REPAIR_SAMPLES)]
    repair, cold, cancellation, index = (
        float(np.median([sample[k] for sample in samples])) for k in range(4)
    )
    line = (
        f"incremental {name} ({n_referrals:,} x {n_slots:,}): 1% of slots and referrals changed"
        f" -> repair {1000 * repair:.1f} ms vs cold solve {1000 * cold:.0f} ms"
        f" ({cold / repair:.0f}x); one cancellation re-offered in {1000 * cancellation:.2f} ms;"
        f" medians of {len(samples)} samples, equal optima (one-time slot index {index:.2f} s)"
    )
    if not smoke and shape == "loose":
        line += f"; {against_goal(repair, REPAIR_GOAL)}"
    report.append(line)


def repair_sample(instance: Instance, seed: int) -> tuple[float, float, float, float]:
    """(repair, cold solve, one cancellation, slot index) seconds for one seeded change."""
    n_referrals, n_slots = instance.n_referrals, instance.n_slots
    rng = np.random.default_rng(5 + seed)
    changed_slots = rng.choice(n_slots, size=max(n_slots // 100, 2), replace=False)
    changed_rows = rng.choice(n_referrals, size=max(n_referrals // 100, 2), replace=False)
    leaving_slots, arriving_slots = np.array_split(changed_slots, 2)
    leaving_rows, arriving_rows = np.array_split(changed_rows, 2)
    arguments = (
        instance.indptr,
        instance.slots,
        instance.weights,
        instance.n_slots,
        instance.tiers,
    )
    matcher = Matcher(
        *arguments, inactive_referrals=arriving_rows, unavailable_slots=arriving_slots
    )
    index_time, _ = timed(matcher.prepare_incremental)

    def change() -> None:
        matcher.remove_slots(leaving_slots)
        matcher.offer_slots(arriving_slots)
        matcher.remove_referrals(leaving_rows)
        matcher.add_referrals(arriving_rows)

    repair_time, _ = timed(change)
    cold_time, cold = timed(
        lambda: Matcher(
            *arguments, inactive_referrals=leaving_rows, unavailable_slots=leaving_slots
        )
    )
    assert lexicographic(instance, matcher.result().assignment) == lexicographic(
        instance, cold.result().assignment
    )
    booked = np.flatnonzero(matcher.result().assignment >= 0)
    one_time = 0.0
    if len(booked):
        slot = int(matcher.result().assignment[booked[rng.integers(len(booked))]])
        matcher.remove_slots([slot])
        one_time, _ = timed(lambda: matcher.offer_slots([slot]))  # a cancellation frees it
    return repair_time, cold_time, one_time, index_time
