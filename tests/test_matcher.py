"""The matcher against independent oracles: an exhaustive plain-Python search on small random
instances and SciPy's dense assignment solver on larger ones; plus hard cases, degenerate
inputs and every kind of bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from care_graph.matcher import Matcher, solve
from care_graph.matching.reference import objective, solve_reference


def csr(
    rows: list[list[tuple[int, int]]],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    """(indptr, slots, weights) from per-row lists of (slot, weight)."""
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(row) for row in rows])
    slots = np.array([slot for row in rows for slot, _ in row], dtype=np.int32)
    weights = np.array([weight for row in rows for _, weight in row], dtype=np.int64)
    return indptr, slots, weights


def assert_valid(assignment: npt.NDArray[np.int32], indptr: Any, slots: Any) -> None:
    used = [slot for slot in assignment.tolist() if slot >= 0]
    assert len(used) == len(set(used)), "a slot went to two referrals"
    for row, slot in enumerate(assignment.tolist()):
        if slot >= 0:
            assert slot in slots[indptr[row] : indptr[row + 1]].tolist(), "not a candidate edge"


@st.composite
def instances(draw: st.DrawFn, max_rows: int = 7, max_slots: int = 6) -> dict[str, Any]:
    n_rows = draw(st.integers(0, max_rows))
    n_slots = draw(st.integers(0, max_slots))
    rows = []
    for _ in range(n_rows):
        degree = draw(st.integers(0, min(4, n_slots)))
        picked = (
            draw(st.lists(st.integers(0, max(n_slots - 1, 0)), min_size=degree, max_size=degree))
            if n_slots
            else []
        )
        rows.append([(slot, draw(st.integers(-5, 12))) for slot in picked])
    tiers = draw(st.lists(st.integers(0, 2), min_size=n_rows, max_size=n_rows))
    return {"rows": rows, "n_slots": n_slots, "tiers": tiers}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_matches_the_exhaustive_reference(instance: dict[str, Any]) -> None:
    indptr, slots, weights = csr(instance["rows"])
    tiers = np.array(instance["tiers"], dtype=np.int32)
    assignment, total = solve(indptr, slots, weights, instance["n_slots"], tiers)
    assert_valid(assignment, indptr, slots)
    _, best = solve_reference(
        indptr.tolist(), slots.tolist(), weights.tolist(), instance["n_slots"], instance["tiers"]
    )
    mine = objective(
        assignment.tolist(), indptr.tolist(), slots.tolist(), weights.tolist(), instance["tiers"]
    )
    assert mine == best
    assert total == mine[-1]


def scipy_objective(
    rows: list[list[tuple[int, int]]], n_slots: int, tiers: list[int]
) -> tuple[int, ...]:
    """The lexicographic optimum by SciPy's dense solver, with a per-referral dummy column for
    "unmatched" and tier bonuses computed here independently (exact in float64 at this size)."""
    n_rows = len(rows)
    n_tiers = max(tiers, default=0) + 1
    span = sum(max([0] + [w for _, w in row]) - min([0] + [w for _, w in row]) for row in rows)
    bonus = [0] * n_tiers
    below = 0
    for tier in range(n_tiers - 1, -1, -1):
        bonus[tier] = below + span + 1
        below += tiers.count(tier) * bonus[tier]
    assert below + span < 2**52
    big = float(2 * (below + span) + 1)
    cost = np.full((n_rows, n_slots + n_rows), big)
    for row, edges in enumerate(rows):
        cost[row, n_slots + row] = 0.0
        for slot, weight in edges:
            cost[row, slot] = min(cost[row, slot], -(weight + bonus[tiers[row]]))
    chosen_rows, chosen_cols = linear_sum_assignment(cost)
    assignment = [-1] * n_rows
    for row, col in zip(chosen_rows.tolist(), chosen_cols.tolist(), strict=True):
        assignment[row] = col if col < n_slots else -1
    indptr, slots, weights = csr(rows)
    return objective(assignment, indptr.tolist(), slots.tolist(), weights.tolist(), tiers)


@pytest.mark.parametrize("seed", range(40))
def test_matches_scipy_on_larger_random_instances(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n_rows, n_slots = int(rng.integers(20, 60)), int(rng.integers(5, 70))  # scarce and loose
    rows = [
        [
            (int(slot), int(rng.integers(0, 50)))
            for slot in rng.choice(
                n_slots, size=int(rng.integers(0, min(6, n_slots) + 1)), replace=False
            )
        ]
        for _ in range(n_rows)
    ]
    tiers = rng.choice(3, size=n_rows, p=[0.1, 0.2, 0.7]).tolist()
    indptr, slots, weights = csr(rows)
    assignment, total = solve(indptr, slots, weights, n_slots, np.array(tiers))
    assert_valid(assignment, indptr, slots)
    mine = objective(assignment.tolist(), indptr.tolist(), slots.tolist(), weights.tolist(), tiers)
    assert mine == scipy_objective(rows, n_slots, tiers)
    assert total == mine[-1]


def test_an_urgent_referral_beats_any_weight() -> None:
    indptr, slots, weights = csr([[(0, 1)], [(0, 1000)]])
    assignment, total = solve(indptr, slots, weights, 1, np.array([0, 1]))
    assert assignment.tolist() == [0, -1]
    assert total == 1


def test_one_slot_wanted_by_many() -> None:
    indptr, slots, weights = csr([[(0, w)] for w in (3, 9, 4, 9, 1)])
    assignment, total = solve(indptr, slots, weights, 1)
    assert sorted(assignment.tolist()) == [-1, -1, -1, -1, 0]
    assert total == 9


def test_more_matches_in_a_tier_beat_weight_within_it() -> None:
    # r0 could take s0 alone for 10, but then r1 (same tier) stays unmatched
    indptr, slots, weights = csr([[(0, 10), (1, 1)], [(0, 1)]])
    assignment, total = solve(indptr, slots, weights, 2)
    assert assignment.tolist() == [1, 0]
    assert total == 2


def test_negative_weights_are_still_matched_for_the_tier() -> None:
    indptr, slots, weights = csr([[(0, -3)]])
    assert solve(indptr, slots, weights, 1)[0].tolist() == [0]


def test_degenerate_inputs() -> None:
    empty = np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int64)
    assignment, total = solve(*empty, 0)
    assert (assignment.tolist(), total) == ([], 0)
    indptr = np.zeros(4, dtype=np.int64)
    assignment, total = solve(indptr, empty[1], empty[2], 3)
    assert (assignment.tolist(), total) == ([-1, -1, -1], 0)
    indptr, slots, weights = csr([[(0, 5), (0, 7)]])  # a duplicate edge keeps the better one
    assignment, total = solve(indptr, slots, weights, 1)
    assert (assignment.tolist(), total) == ([0], 7)


def test_prices_are_dual_feasible() -> None:
    rng = np.random.default_rng(3)
    rows = [
        [(int(s), int(rng.integers(1, 30))) for s in rng.choice(15, 4, replace=False)]
        for _ in range(30)
    ]
    indptr, slots, weights = csr(rows)
    matching = Matcher(indptr, slots, weights, 15).result()
    assert (matching.prices >= 0).all()
    free = np.setdiff1d(np.arange(15), matching.assignment)
    assert (matching.prices[free] == 0).all()  # an unsold slot costs nothing


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"indptr": np.array([0, 1], dtype=np.int32)}, "indptr must have dtype int64"),
        ({"slots": np.array([0], dtype=np.int64)}, "slots must have dtype int32"),
        ({"weights": [5]}, "weights must be a numpy array"),
        ({"indptr": np.array([[0, 1]], dtype=np.int64)}, "indptr must be one-dimensional"),
        ({"indptr": np.array([1, 1], dtype=np.int64)}, "indptr must start at 0"),
        ({"indptr": np.array([0, 2], dtype=np.int64)}, "indptr must end at len(slots) = 1"),
        ({"slots": np.array([5], dtype=np.int32)}, "slot indices must lie in [0, 2)"),
        ({"slots": np.array([-1], dtype=np.int32)}, "slot indices must lie in [0, 2)"),
        ({"weights": np.array([2**41], dtype=np.int64)}, "weights must lie within"),
        ({"weights": np.array([1, 2], dtype=np.int64)}, "weights has 2 entries for 1 slots"),
        ({"n_slots": -1}, "n_slots must be a non-negative integer"),
        ({"tiers": np.array([0, 1])}, "tiers must be 1 integers"),
        ({"tiers": np.array([-1])}, "tiers must lie in [0, 63]"),
    ],
)
def test_bad_input_is_a_clear_value_error(change: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {
        "indptr": np.array([0, 1], dtype=np.int64),
        "slots": np.array([0], dtype=np.int32),
        "weights": np.array([5], dtype=np.int64),
        "n_slots": 2,
        "tiers": None,
        **change,
    }
    with pytest.raises(
        ValueError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")
    ):
        solve(**arguments)


def test_non_monotone_indptr_is_refused() -> None:
    with pytest.raises(ValueError, match="indptr must not decrease"):
        solve(
            np.array([0, 2, 1, 2], dtype=np.int64),
            np.array([0, 1], dtype=np.int32),
            np.array([1, 1], dtype=np.int64),
            2,
        )


def test_overflowing_bonuses_are_refused() -> None:
    n = 4000
    indptr = np.arange(n + 1, dtype=np.int64)
    slots = np.zeros(n, dtype=np.int32)
    weights = np.full(n, 2**39, dtype=np.int64)
    tiers = np.repeat(np.arange(8), n // 8)
    with pytest.raises(ValueError, match="tier bonuses would overflow int64"):
        solve(indptr, slots, weights, 1, tiers)


def masked_objective(
    matcher: Matcher, indptr: Any, slots: Any, weights: Any, tiers: Any
) -> tuple[int, ...]:
    assignment = matcher.result().assignment
    assert_valid(assignment, indptr, slots)
    assert not (assignment[~matcher.active] >= 0).any(), "an inactive referral was matched"
    dead = matcher.solver.dead[: matcher.solver.n_slots].astype(bool)
    assert not dead[assignment[assignment >= 0]].any(), "a slot off offer was matched"
    return objective(
        assignment.tolist(), indptr.tolist(), slots.tolist(), weights.tolist(), tiers.tolist()
    )


@pytest.mark.parametrize("seed", range(60))
def test_incremental_changes_equal_a_cold_solve(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    n_rows, n_slots = int(rng.integers(5, 80)), int(rng.integers(3, 90))
    rows = [
        [
            (int(slot), int(rng.integers(-3, 40)))
            for slot in rng.choice(
                n_slots, size=int(rng.integers(0, min(5, n_slots) + 1)), replace=False
            )
        ]
        for _ in range(n_rows)
    ]
    indptr, slots, weights = csr(rows)
    tiers = rng.choice(3, size=n_rows, p=[0.2, 0.3, 0.5])
    inactive = set(rng.choice(n_rows, size=n_rows // 5, replace=False).tolist())
    unavailable = set(rng.choice(n_slots, size=n_slots // 5, replace=False).tolist())
    matcher = Matcher(
        indptr,
        slots,
        weights,
        n_slots,
        tiers,
        inactive_referrals=sorted(inactive),
        unavailable_slots=sorted(unavailable),
    )
    for _ in range(6):
        kind = int(rng.integers(0, 4))
        if kind == 0 and len(unavailable) < n_slots:
            change = rng.choice(
                sorted(set(range(n_slots)) - unavailable),
                size=int(rng.integers(1, 4)),
                replace=True,
            )
            unavailable |= set(change.tolist())
            matcher.remove_slots(sorted(set(change.tolist())))
        elif kind == 1 and unavailable:
            change = rng.choice(sorted(unavailable), size=int(rng.integers(1, 4)), replace=True)
            unavailable -= set(change.tolist())
            matcher.offer_slots(sorted(set(change.tolist())))
        elif kind == 2 and len(inactive) < n_rows:
            change = rng.choice(
                sorted(set(range(n_rows)) - inactive), size=int(rng.integers(1, 4)), replace=True
            )
            inactive |= set(change.tolist())
            matcher.remove_referrals(sorted(set(change.tolist())))
        elif kind == 3 and inactive:
            change = rng.choice(sorted(inactive), size=int(rng.integers(1, 4)), replace=True)
            inactive -= set(change.tolist())
            matcher.add_referrals(sorted(set(change.tolist())))
        cold = Matcher(
            indptr,
            slots,
            weights,
            n_slots,
            tiers,
            inactive_referrals=sorted(inactive),
            unavailable_slots=sorted(unavailable),
        )
        assert masked_objective(matcher, indptr, slots, weights, tiers) == masked_objective(
            cold, indptr, slots, weights, tiers
        )
