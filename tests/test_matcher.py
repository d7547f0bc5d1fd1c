"""The matcher against independent oracles: an exhaustive plain-Python search on small random
instances and SciPy's dense assignment solver on larger ones; plus hard cases, degenerate
inputs and every kind of bad input, at Matcher's methods and at the compiled kernel's own edge
(ids checked before any C sees them, private solver state, real allocation failures)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from care_graph._matcher import InOrder, Solver, connected_components
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
    unavailable = matcher.solver.unavailable
    assert not unavailable[assignment[assignment >= 0]].any(), "a slot off offer was matched"
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
        kind = int(rng.integers(0, 5))
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
        elif kind == 4:  # some matched referrals take their slots for good
            held = np.flatnonzero(matcher.result().assignment >= 0)
            booked = held[rng.random(len(held)) < 0.5]
            slots_held = matcher.result().assignment[booked]
            taken = matcher.book(booked)
            assert taken.tolist() == slots_held.tolist()
            inactive |= set(booked.tolist())
            unavailable |= set(taken.tolist())
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


# --- the kernel's edge: every id checked before C sees it, state unchanged when refused -------

# four referrals, three slots; referral 3 waits later, slot 2 is not on offer yet
EDGE_ROWS = [[(0, 5), (1, 3)], [(0, 4)], [(1, 6), (2, 2)], [(2, 7), (0, 1)]]
EDGE_TIERS = np.array([0, 1, 1, 0])
BAD_IDS: list[tuple[Any, str]] = [
    ([-1], "{what} -1 is out of range: {what} ids lie in [0, {n})"),
    ([0, -1], "{what} -1 is out of range: {what} ids lie in [0, {n})"),
    (["n"], "{what} {n} is out of range: {what} ids lie in [0, {n})"),
    ([2**40], "{what} 1099511627776 is out of range: {what} ids lie in [0, {n})"),
    (np.array([2**63], dtype=np.uint64), "{what} 9223372036854775808 is out of range"),
    ([2**70], "{what} ids must be integers, got dtype object"),
    ([1.0], "{what} ids must be integers, got dtype float64"),
    ([True], "{what} ids must be integers, got dtype bool"),
    ([[0]], "{what} ids must be one-dimensional, got shape (1, 1)"),
    (0, "{what} ids must be one-dimensional, got shape ()"),
    ([1, 1], "{what} 1 is given twice"),
]


def edge_matcher(**changes: Any) -> Matcher:
    indptr, slots, weights = csr(EDGE_ROWS)
    arguments: dict[str, Any] = {"inactive_referrals": [3], "unavailable_slots": [2], **changes}
    return Matcher(indptr, slots, weights, 3, EDGE_TIERS, **arguments)


def snapshot(matcher: Matcher) -> tuple[Any, ...]:
    matching = matcher.result()
    return (
        matching.assignment.tolist(),
        matching.total_weight,
        matching.prices.tolist(),
        matcher.active.tolist(),
        matcher.solver.unavailable.tolist(),
        matcher.solver.match_edge.tolist(),
    )


@pytest.mark.parametrize(
    ("method", "what"),
    [
        ("add_referrals", "referral"),
        ("remove_referrals", "referral"),
        ("offer_slots", "slot"),
        ("remove_slots", "slot"),
    ],
)
@pytest.mark.parametrize(("ids", "message"), BAD_IDS)
def test_bad_ids_are_refused_and_change_nothing(
    method: str, what: str, ids: Any, message: str
) -> None:
    matcher = edge_matcher()
    n = 4 if what == "referral" else 3
    ids = [n] if ids == ["n"] else ids
    before = snapshot(matcher)
    with pytest.raises(ValueError, match=re.escape(message.format(what=what, n=n))):
        getattr(matcher, method)(ids)
    assert snapshot(matcher) == before
    # and it repairs exactly as a twin that never saw the bad call, to a cold solve's optimum
    twin = edge_matcher()
    for each in (matcher, twin):
        each.add_referrals([3])
        each.offer_slots([2])
    assert snapshot(matcher) == snapshot(twin)
    indptr, slots, weights = csr(EDGE_ROWS)
    cold = edge_matcher(inactive_referrals=[], unavailable_slots=[])
    assert masked_objective(matcher, indptr, slots, weights, EDGE_TIERS) == masked_objective(
        cold, indptr, slots, weights, EDGE_TIERS
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"inactive_referrals": [-1]}, "referral -1 is out of range: referral ids lie in [0, 4)"),
        ({"inactive_referrals": [4]}, "referral 4 is out of range: referral ids lie in [0, 4)"),
        ({"inactive_referrals": [3, 3]}, "referral 3 is given twice"),
        ({"unavailable_slots": [-1]}, "slot -1 is out of range: slot ids lie in [0, 3)"),
        ({"unavailable_slots": [3]}, "slot 3 is out of range: slot ids lie in [0, 3)"),
        ({"unavailable_slots": [0.5]}, "slot ids must be integers, got dtype float64"),
    ],
)
def test_bad_ids_at_construction_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        edge_matcher(**changes)


def test_repeating_a_change_is_harmless() -> None:
    matcher = edge_matcher()
    matcher.offer_slots([0, 1])  # on offer already, one of them held: nothing to do
    matcher.remove_slots([2])  # off offer already
    matcher.remove_referrals([3])  # not waiting already
    matcher.add_referrals([0])  # matched already
    assert snapshot(matcher) == snapshot(edge_matcher())


def test_the_callers_arrays_may_change_after_construction() -> None:
    indptr, slots, weights = csr(EDGE_ROWS)
    matcher = Matcher(indptr, slots, weights, 3, EDGE_TIERS, unavailable_slots=[2])
    indptr[:] = 10**9  # the solver keeps its own checked copy of the edges
    slots[:] = -1
    matcher.offer_slots([2])
    matcher.remove_referrals([0])
    twin = edge_matcher(inactive_referrals=[], unavailable_slots=[2])
    twin.offer_slots([2])
    twin.remove_referrals([0])
    assert snapshot(matcher) == snapshot(twin)


def solver_of_edge_instance() -> Solver:
    indptr, slots, weights = csr(EDGE_ROWS)
    solver = Solver(indptr, slots, weights, np.full(4, 100, dtype=np.int64), 3)
    solver.insert_rows([0, 1])
    return solver


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda s: s.insert_rows([4]), "referral 4 is out of range: referral ids lie in [0, 4)"),
        (lambda s: s.insert_rows([-1]), "referral -1 is out of range"),
        (lambda s: s.insert_rows([2, 2]), "referral 2 is given twice"),
        (lambda s: s.insert_rows([2, 0]), "referral 0 is matched already (column 1)"),
        (lambda s: s.remove_rows([4]), "referral 4 is out of range"),
        (lambda s: s.withdraw_columns([3]), "slot 3 is out of range: slot ids lie in [0, 3)"),
        (lambda s: s.offer_columns([-1]), "slot -1 is out of range"),
        (lambda s: s.offer_columns(np.array([0.0])), "slot ids must be integers"),
    ],
)
def test_the_solver_checks_what_it_is_given(call: Any, message: str) -> None:
    solver = solver_of_edge_instance()
    before = (solver.match_col.tolist(), solver.prices.tolist(), solver.unavailable.tolist())
    with pytest.raises(ValueError, match=re.escape(message)):
        call(solver)
    assert (solver.match_col.tolist(), solver.prices.tolist(), solver.unavailable.tolist()) == (
        before
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slots": np.array([0, 1, 0, 3, 2, 2, 0], dtype=np.int32)}, "got slots[3] = 3"),
        ({"slots": np.array([0, 1, 0, 1, -1, 2, 0], dtype=np.int32)}, "got slots[4] = -1"),
        (
            {"indptr": np.array([0, 2, 1, 5, 7], dtype=np.int64)},
            "indptr[2] = 1 after indptr[1] = 2",
        ),
        (
            {"indptr": np.array([0, 2, 3, 5, 6], dtype=np.int64)},
            "must end at len(slots) = 7, got 6",
        ),
        ({"slots": np.zeros(7, dtype=np.int64)}, "slots must have dtype int32, got int64"),
        ({"weights": np.zeros(6, dtype=np.int64)}, "weights has 6 entries for 7 slots"),
        ({"bonus": np.zeros(3, dtype=np.int64)}, "bonus has 3 entries for 4 referrals"),
        ({"n_slots": 2**40}, "n_slots must be a non-negative integer below 2**31 - 1"),
        ({"n_slots": True}, "n_slots must be a non-negative integer"),
    ],
)
def test_the_solver_checks_its_edges(change: dict[str, Any], message: str) -> None:
    indptr, slots, weights = csr(EDGE_ROWS)
    arguments: dict[str, Any] = {
        "indptr": indptr,
        "slots": slots,
        "weights": weights,
        "bonus": np.zeros(4, dtype=np.int64),
        "n_slots": 3,
        **change,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        Solver(**arguments)


def test_connected_components_checks_its_edges() -> None:
    indptr, slots, _ = csr(EDGE_ROWS)
    assert connected_components(indptr, slots, 4, 3).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError, match=re.escape("slot indices must lie in [0, 3)")):
        connected_components(indptr, np.array([0, 1, 0, 1, 5, 2, 0], dtype=np.int32), 4, 3)
    with pytest.raises(ValueError, match=re.escape("n_rows must be len(indptr) - 1 = 4, got 5")):
        connected_components(indptr, slots, 5, 3)


def test_the_solver_state_is_private() -> None:
    solver = edge_matcher().solver
    for name in ["n_rows", "n_slots", "match_col", "match_edge", "prices", "unavailable"]:
        with pytest.raises(AttributeError):
            setattr(solver, name, np.zeros(4))
    for name in ["u", "v", "match_row", "dead", "indptr", "slots", "costs", "_v", "_dead"]:
        assert not hasattr(solver, name)
        with pytest.raises(AttributeError):
            setattr(solver, name, np.zeros(4))
    views: list[npt.NDArray[Any]] = [solver.match_col, solver.match_edge, solver.unavailable]
    for view in views:
        with pytest.raises(ValueError, match="read-only"):
            view[0] = 1
        with pytest.raises(ValueError, match="WRITEABLE"):
            view.flags.writeable = True
    with pytest.raises(TypeError):
        Solver.__new__(Solver)  # no solver without checked edges


# A child process fills every slot, then, under an address-space limit that the working arrays
# fit in, offers one more slot that `width` referrals want more than their own: placing it pushes
# every one of them on the search heap, which must grow. glibc is told to map large blocks on
# their own and give them back at once, so that the limit bites where the kernel allocates. Then,
# without the limit, it offers the slot again, and the matching must be a fresh solve's.
ALLOCATION_CHILD = """
import resource, sys
import numpy as np
from care_graph._matcher import Solver

def address_space():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize"))

n, width, headroom = (int(arg) for arg in sys.argv[1:])
# referral k: its own slot k, and (the first `width` of them) the extra slot n, wanted more
indptr = np.concatenate([[0], np.arange(1, width + 1) * 2, 2 * width + np.arange(1, n - width + 1)])
own = np.arange(n)
slots = np.concatenate([np.stack([own[:width], np.full(width, n)], 1).ravel(), own[width:]])
extra = 1001 + np.arange(width) % 997
weights = np.concatenate([np.stack([np.full(width, 1000), extra], 1).ravel(),
                          np.full(n - width, 1000)])
indptr, slots, weights = indptr.astype(np.int64), slots.astype(np.int32), weights.astype(np.int64)

def build():
    return Solver(indptr, slots, weights, np.zeros(n, dtype=np.int64), n + 1)

solver = build()
solver.withdraw_columns([n])
solver.insert_rows(np.arange(n))
solver.prepare_columns()
working_arrays = (n + 1) * 25  # bytes per search node: dist, pred_edge, pred_row, ...
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (address_space() + working_arrays + headroom, hard))
try:
    solver.offer_columns([n])
    print("offered")
except MemoryError as error:
    print("MemoryError:", error, "| off offer again:", bool(solver.unavailable[n]))
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
solver.offer_columns([n])
fresh = build()
fresh.insert_rows(np.arange(n))
def objective(s):
    held = s.match_edge[s.match_edge >= 0]
    return int(weights[held].sum()), len(held)

# prices are not unique, and ties among the keen referrals leave a choice: the optimum is
print("then as a fresh solve" if objective(solver) == objective(fresh) else
      f"then {objective(solver)}, a fresh solve {objective(fresh)}")
"""
N_FILLED = 1 << 19  # the heap must grow to 2**19 entries (6 MiB) for the wide slot


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS and /proc are Linux's")
@pytest.mark.parametrize(
    ("width", "headroom", "outcome"),
    [
        (N_FILLED, -(4 << 20), "MemoryError"),  # malloc of the working arrays fails
        (N_FILLED, 2 << 20, "MemoryError"),  # they fit; realloc of the growing heap fails
        (4000, 2 << 20, "offered"),  # the same limit, a heap that never grows: no error
    ],
)
def test_allocation_failure_is_a_memory_error(width: int, headroom: int, outcome: str) -> None:
    environment = {
        **os.environ,
        "GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=0",
    }
    result = subprocess.run(
        [sys.executable, "-c", ALLOCATION_CHILD, str(N_FILLED), str(width), str(headroom)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    first, second = result.stdout.splitlines()
    assert first.startswith(outcome)
    if outcome == "MemoryError":
        assert "not enough memory for the solver's working arrays while offering" in first
        assert first.endswith("off offer again: True")
    assert second == "then as a fresh solve"


def test_book_keeps_the_pairs_and_refuses_a_referral_without_a_slot() -> None:
    indptr, slots, weights = csr([[(0, 5), (1, 3)], [(0, 4)], [(1, 6)]])
    matcher = Matcher(indptr, slots, weights, 2, [0, 0, 0])
    before = matcher.result().assignment.copy()
    holder_of_0 = int(np.flatnonzero(before == 0)[0])
    assert matcher.book([holder_of_0]).tolist() == [0]
    after = matcher.result().assignment
    assert after[holder_of_0] == -1
    assert not matcher.active[holder_of_0]
    assert matcher.solver.unavailable[0]
    # the others keep what they held: booking moves nobody
    others = [row for row in range(3) if row != holder_of_0]
    assert after[others].tolist() == before[others].tolist()
    unmatched = [row for row in range(3) if after[row] < 0 and matcher.active[row]]
    with pytest.raises(ValueError, match="holds no slot to book"):
        matcher.book(unmatched or [holder_of_0])


def test_in_order_books_each_referral_its_best_open_slot_in_the_order_given() -> None:
    indptr, slots, weights = csr([[(0, 5), (1, 3)], [(0, 9)], [(1, 6), (2, 6)]])
    booker = InOrder(indptr, slots, weights, 3)
    first_come = np.ones(3, dtype=np.uint8)
    assert booker.book([0, 1, 2], first_come).tolist() == [0, -1, 3]  # 1 finds slot 0 gone
    assert first_come.tolist() == [0, 0, 1]
    other_order = np.ones(3, dtype=np.uint8)
    assert booker.book([1, 0, 2], other_order).tolist() == [2, 1, 4]  # ties: the earlier edge
    closed = np.zeros(3, dtype=np.uint8)
    assert booker.book([0, 1, 2], closed).tolist() == [-1, -1, -1]


@pytest.mark.parametrize(
    ("rows", "flags", "message"),
    [
        ([0, 0], np.ones(3, np.uint8), "referral 0 is given twice"),
        ([3], np.ones(3, np.uint8), "referral 3 is out of range"),
        ([0], np.ones(2, np.uint8), "open_slots must be 3 contiguous uint8 flags"),
        ([0], np.ones(3, np.int64), "open_slots must have dtype uint8"),
        ([0], np.ones(6, np.uint8)[::2], "open_slots must be 3 contiguous uint8 flags"),
    ],
)
def test_in_order_checks_what_it_is_given(rows: Any, flags: Any, message: str) -> None:
    indptr, slots, weights = csr([[(0, 5), (1, 3)], [(0, 9)], [(1, 6), (2, 6)]])
    with pytest.raises(ValueError, match=message):
        InOrder(indptr, slots, weights, 3).book(rows, flags)
