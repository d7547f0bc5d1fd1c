"""care_graph's matcher: which waiting referral gets which free slot.

``solve(indptr, slots, weights, n_slots, tiers=None)`` takes the candidate edges in CSR by
referral — row ``r``'s candidate slots are ``slots[indptr[r]:indptr[r + 1]]`` with integer
``weights`` (higher is better) — and returns the slot of each referral (``-1``: unmatched) and
the total weight. The matching is exact and lexicographically optimal: first the most referrals
of tier 0 (the most urgent), then of tier 1, and so on, then the greatest total weight.

How: the instance splits into connected components (referrals sharing no candidate slot never
compete), each tier becomes a per-component bonus large enough that one more referral of a
tier outweighs anything below it (checked against int64 overflow), and each component is
solved by the compiled kernel (care_graph._matcher): shortest augmenting paths with a heap
on reduced costs, one referral at a time, with "stay unmatched" as an implicit zero-cost
option. Components run in parallel threads with the GIL released.

``Matcher`` keeps the solved state (assignment and dual prices) so that referrals can leave or
arrive and slots can go and come back without a full re-solve.

Every array and id handed in is checked by the kernel's boundary (``check_graph`` and ``as_ids``
in care_graph._matcher) before anything changes or any C sees it: ValueError naming the bad
value. Ids in one call must be distinct.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from care_graph._matcher import Solver, as_ids, check_graph, connected_components

IntArray = npt.NDArray[np.int64]
LIMIT = 1 << 60  # headroom below int64 for sums of reduced costs along a path


@dataclass(frozen=True, slots=True)
class Matching:
    """A solved instance: the slot of each referral (-1 unmatched), the total weight, and each
    slot's dual price in the solver's objective (weights plus tier bonuses)."""

    assignment: npt.NDArray[np.int32]
    total_weight: int
    prices: IntArray


def _check(
    indptr: object, slots: object, weights: object, n_slots: object, tiers: object | None
) -> tuple[IntArray, npt.NDArray[np.int32], IntArray, npt.NDArray[np.int32], int]:
    """The kernel checks the edges (check_graph); the weights' range and the tiers are ours."""
    indptr, slots, weights, n_slots = check_graph(indptr, slots, weights, n_slots)
    n_rows = len(indptr) - 1
    if len(weights) and np.abs(weights).max() >= 1 << 40:
        raise ValueError("weights must lie within +-2**40 (overflow guard)")
    if tiers is None:
        tier_array = np.zeros(n_rows, dtype=np.int32)
    else:
        tier_array = np.asarray(tiers)
        if tier_array.shape != (n_rows,) or not np.issubdtype(tier_array.dtype, np.integer):
            raise ValueError(f"tiers must be {n_rows} integers, one per referral")
        if n_rows and (tier_array.min() < 0 or tier_array.max() > 63):
            raise ValueError("tiers must lie in [0, 63]")
        tier_array = tier_array.astype(np.int32)
    return indptr, slots, weights, tier_array, n_slots


def _row_extremes(indptr: IntArray, weights: IntArray) -> tuple[IntArray, IntArray]:
    """Each referral's heaviest and lightest edge weight (0 and 0 without an edge)."""
    n_rows = len(indptr) - 1
    has_edges = np.diff(indptr) > 0
    row_max = np.zeros(n_rows, dtype=np.int64)
    row_min = np.zeros(n_rows, dtype=np.int64)
    if has_edges.any():
        starts = indptr[:-1][has_edges]
        row_max[has_edges] = np.maximum.reduceat(weights, starts)
        row_min[has_edges] = np.minimum.reduceat(weights, starts)
    return row_max, row_min


def _bonuses(
    extremes: tuple[IntArray, IntArray],
    tiers: npt.NDArray[np.int32],
    component: npt.NDArray[np.int32],
) -> IntArray:
    """Each referral's bonus: one more matched referral of a tier must outweigh every change
    below it, within its component (``extremes``: each referral's heaviest and lightest
    weight, from _row_extremes). Raises ValueError when that cannot fit in int64."""
    row_max, row_min = extremes
    n_rows = len(row_max)
    spread = np.maximum(row_max, 0) - np.minimum(row_min, 0)
    _, comp = np.unique(component, return_inverse=True)
    n_comp = int(comp.max()) + 1 if n_rows else 0
    span = np.bincount(comp, weights=spread, minlength=n_comp)  # float64: fine below 2**53
    n_tiers = int(tiers.max()) + 1 if n_rows else 1
    counts = np.zeros((n_comp, n_tiers), dtype=np.float64)
    np.add.at(counts, (comp, tiers), 1.0)
    bonus = np.zeros((n_comp, n_tiers), dtype=np.float64)
    below = np.zeros(n_comp, dtype=np.float64)  # sum over lower tiers of count * bonus
    for tier in range(n_tiers - 1, -1, -1):
        bonus[:, tier] = below + span + 1.0
        below = below + counts[:, tier] * bonus[:, tier]
    if n_comp and float((below + span).max()) >= LIMIT:
        raise ValueError(
            "tier bonuses would overflow int64 for a component of "
            f"{int(np.bincount(comp).max())} referrals: lower the weights or split the problem"
        )
    exact = np.zeros((n_comp, n_tiers), dtype=np.int64)
    below_exact = np.zeros(n_comp, dtype=np.int64)
    span_exact = np.zeros(n_comp, dtype=np.int64)
    np.add.at(span_exact, comp, spread)
    counts_exact = counts.astype(np.int64)
    for tier in range(n_tiers - 1, -1, -1):
        exact[:, tier] = below_exact + span_exact + 1
        below_exact = below_exact + counts_exact[:, tier] * exact[:, tier]
    row_bonus: IntArray = exact[comp, tiers]
    return row_bonus


class Matcher:
    """A solved instance kept warm: assignment and duals survive between changes.

    Each change takes ids (referral rows, slot columns) as a sequence of distinct integers in
    range; anything else raises ValueError before the matcher changes.
    """

    def __init__(
        self,
        indptr: IntArray,
        slots: npt.NDArray[np.int32],
        weights: IntArray,
        n_slots: int,
        tiers: npt.ArrayLike | None = None,
        *,
        inactive_referrals: npt.ArrayLike = (),
        unavailable_slots: npt.ArrayLike = (),
        threads: int | None = None,
    ) -> None:
        indptr, slots, weights, tier_array, n_slots = _check(indptr, slots, weights, n_slots, tiers)
        self.weights = weights
        self.tiers = tier_array
        n_rows = len(indptr) - 1
        inactive = as_ids("referral", inactive_referrals, n_rows)
        unavailable = as_ids("slot", unavailable_slots, n_slots)
        self.component = connected_components(indptr, slots, n_rows, n_slots)
        extremes = _row_extremes(indptr, weights)
        self._keenness = extremes[0]
        bonus = _bonuses(extremes, tier_array, self.component)
        self.solver = Solver(indptr, slots, weights, bonus, n_slots)
        self._degree = np.diff(indptr)
        self.active = np.ones(n_rows, dtype=bool)
        self.active[inactive] = False
        self.solver.withdraw_columns(unavailable)  # nobody holds a slot yet: returns no one
        self._solve_all(threads or min(2, os.cpu_count() or 1))

    def _solve_all(self, threads: int) -> None:
        n_rows = self.solver.n_rows
        if n_rows == 0:
            return
        everyone = np.flatnonzero(self.active).astype(np.int32)
        order = self._insertion_order(everyone, self.component[everyone])
        if threads <= 1:
            self.solver.insert_rows(order)
            return
        # split whole components into `threads` groups of similar work (edges); the solver
        # runs groups in parallel only because no component spans two of them
        comp_sorted = self.component[order]
        boundaries = np.flatnonzero(np.diff(comp_sorted)) + 1
        pieces = np.split(order, boundaries)
        work = [int(self._degree[piece].sum()) + len(piece) for piece in pieces]
        groups: list[list[npt.NDArray[np.int32]]] = [[] for _ in range(threads)]
        load = [0] * threads
        for index in np.argsort(work)[::-1]:
            lightest = load.index(min(load))
            groups[lightest].append(pieces[index])
            load[lightest] += work[index]
        batches = [np.concatenate(group) for group in groups if group]
        with ThreadPoolExecutor(len(batches)) as pool:
            list(pool.map(self.solver.insert_rows, batches))

    # --- incremental changes: repair what changed, keep the rest ----------------------------
    def prepare_incremental(self) -> None:
        """Build the slot -> referrals index that repairs need (done on first use otherwise):
        a one-time cost, about a cold solve's, paid before the first change is timed."""
        self.solver.prepare_columns()

    def _insertion_order(
        self, rows: npt.NDArray[np.int32], group: npt.NDArray[np.int32] | None = None
    ) -> npt.NDArray[np.int32]:
        """Rows in the order the solver takes them best (any order gives the same optimum):
        by group when given (a component, kept together), then urgent tiers first (they
        rarely need to displace anyone), then the keenest first, so that one coming after
        keener ones and losing to them proves so in a short search."""
        keys: list[npt.NDArray[np.int64] | npt.NDArray[np.int32]] = [
            -self._keenness[rows],
            self.tiers[rows],
        ]
        if group is not None:
            keys.append(group)
        return rows[np.lexsort(keys)]

    def _reinsert(self, rows: npt.NDArray[np.int32]) -> None:
        """Insert the active, unmatched ones of rows (checked ids)."""
        rows = rows[self.active[rows] & (self.solver.match_col[rows] < 0)]
        self.solver.insert_rows(self._insertion_order(rows))

    def remove_slots(self, slot_ids: npt.ArrayLike) -> None:
        """Slots taken off offer (booked elsewhere, blocked); their referrals are re-matched."""
        self._reinsert(self.solver.withdraw_columns(slot_ids))

    def offer_slots(self, slot_ids: npt.ArrayLike) -> None:
        """Slots (back) on offer, e.g. after a cancellation: the referrals that gain most take
        them, and whatever they give up moves on, along shortest paths only. Slots on offer
        already stay as they are."""
        self.solver.offer_columns(slot_ids)

    def remove_referrals(self, referrals: npt.ArrayLike) -> None:
        """Referrals that no longer wait (booked elsewhere, withdrawn); their slots move on."""
        rows = as_ids("referral", referrals, self.solver.n_rows)
        self.active[rows] = False
        self.solver.remove_rows(rows)

    def book(self, referrals: npt.ArrayLike) -> npt.NDArray[np.int32]:
        """Referrals that take the slots they hold now, for good: each leaves with its slot and
        nobody else moves (what is left is still optimal for what is left). Returns their
        slots; a referral that holds no slot raises ValueError before anything changes."""
        rows = as_ids("referral", referrals, self.solver.n_rows)
        columns = self.solver.match_col[rows]
        unmatched = rows[(columns < 0) | (columns >= self.solver.n_slots)]
        if len(unmatched):
            raise ValueError(f"referral {int(unmatched[0])} holds no slot to book")
        held = columns.astype(np.int32)
        self.solver.withdraw_columns(held)  # returns these same referrals, now free
        self.active[rows] = False
        return held

    def add_referrals(self, referrals: npt.ArrayLike) -> None:
        """Referrals that start waiting (their candidate edges were in the instance)."""
        rows = as_ids("referral", referrals, self.solver.n_rows)
        self.active[rows] = True
        self._reinsert(rows)

    def result(self) -> Matching:
        """The current matching."""
        n_slots = self.solver.n_slots
        columns = self.solver.match_col
        assignment = np.where(columns < n_slots, columns, -1).astype(np.int32)
        edges = self.solver.match_edge
        matched = edges >= 0
        total = int(self.weights[edges[matched]].sum())
        return Matching(assignment, total, self.solver.prices)


def solve(
    indptr: IntArray,
    slots: npt.NDArray[np.int32],
    weights: IntArray,
    n_slots: int,
    tiers: npt.ArrayLike | None = None,
) -> tuple[npt.NDArray[np.int32], int]:
    """The lexicographically optimal matching: (slot of each referral or -1, total weight).

    ``indptr`` int64 (n_referrals + 1, non-decreasing, from 0 to len(slots)), ``slots`` int32
    in [0, n_slots), ``weights`` int64 (|w| < 2**40), ``tiers`` one integer per referral
    (0 = most urgent). Raises ValueError on anything else.
    """
    matching = Matcher(indptr, slots, weights, n_slots, tiers).result()
    return matching.assignment, matching.total_weight
