"""What the matcher is worth: the same instance booked the way it is booked without one.

- first come, first served: referrals in arrival order each take their best free slot;
- priority-greedy: the same, most urgent first;
- care_graph: the exact lexicographic optimum.

Scored alike: urgent referrals (URGENT and TWO_WEEK_WAIT) seen before breach, all referrals
seen before breach, mean travel, and utilisation of the slots on offer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from care_graph.matching.plan import Instance


def greedy(instance: Instance, order: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Each referral in ``order`` takes its highest-weight candidate still free; returns the
    chosen edge per referral (-1: none)."""
    taken = np.zeros(len(instance.slots["id"]), dtype=bool)
    chosen = np.full(len(instance.referrals["id"]), -1, dtype=np.int64)
    indptr, slot, weights = instance.indptr, instance.slot, instance.weights
    for row in order.tolist():
        first, last = int(indptr[row]), int(indptr[row + 1])
        if first == last:
            continue
        free = np.flatnonzero(~taken[slot[first:last]])
        if len(free) == 0:
            continue
        best = first + int(free[np.argmax(weights[first:last][free])])
        chosen[row] = best
        taken[slot[best]] = True
    return chosen


def score(instance: Instance, chosen: npt.NDArray[np.int64]) -> dict[str, Any]:
    """The figures the comparison reports, for chosen edges (-1: unmatched)."""
    matched = chosen >= 0
    tiers = instance.referrals["tier"]
    in_time = np.zeros(len(chosen), dtype=bool)
    days_until = instance.slots["days_until"][instance.slot[chosen[matched]]]
    in_time[matched] = days_until <= instance.referrals["days_to_breach"][matched]
    urgent = tiers <= 1
    km = instance.km[chosen[matched]] if matched.any() else np.zeros(1)
    return {
        "urgent_seen_in_time": f"{int((in_time & urgent).sum())} / {int(urgent.sum())}",
        "seen_in_time": int(in_time.sum()),
        "matched": int(matched.sum()),
        "mean_travel_km": round(float(km.mean()), 1),
        "utilisation": round(float(matched.sum()) / max(len(instance.slots["id"]), 1), 3),
    }


def compare(instance: Instance, optimal_edges: npt.NDArray[np.int64]) -> dict[str, Any]:
    """Scores of first-come-first-served, priority-greedy and the optimum on one instance."""
    arrival = np.argsort(-instance.referrals["waited_days"], kind="stable")
    by_priority = np.lexsort((-instance.referrals["waited_days"], instance.referrals["tier"]))
    return {
        "first_come_first_served": score(instance, greedy(instance, arrival)),
        "priority_greedy": score(instance, greedy(instance, by_priority)),
        "care_graph": score(instance, optimal_edges),
    }
