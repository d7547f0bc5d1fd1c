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
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from care_graph._matcher import Solver, connected_components, insert_columns

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
    for name, value, dtype in (
        ("indptr", indptr, np.int64),
        ("slots", slots, np.int32),
        ("weights", weights, np.int64),
    ):
        if not isinstance(value, np.ndarray):
            raise ValueError(f"{name} must be a numpy array of {np.dtype(dtype).name}")
        if value.dtype != dtype:
            raise ValueError(f"{name} must have dtype {np.dtype(dtype).name}, got {value.dtype}")
        if value.ndim != 1:
            raise ValueError(f"{name} must be one-dimensional, got shape {value.shape}")
    assert isinstance(indptr, np.ndarray)
    assert isinstance(slots, np.ndarray)
    assert isinstance(weights, np.ndarray)
    if not isinstance(n_slots, int | np.integer) or isinstance(n_slots, bool) or n_slots < 0:
        raise ValueError(f"n_slots must be a non-negative integer, got {n_slots!r}")
    n_slots = int(n_slots)
    if len(indptr) == 0:
        raise ValueError("indptr needs at least one entry (0 for no referrals)")
    if indptr[0] != 0:
        raise ValueError(f"indptr must start at 0, got {indptr[0]}")
    if indptr[-1] != len(slots):
        raise ValueError(f"indptr must end at len(slots) = {len(slots)}, got {indptr[-1]}")
    if len(weights) != len(slots):
        raise ValueError(f"weights has {len(weights)} entries for {len(slots)} slots")
    if np.any(np.diff(indptr) < 0):
        raise ValueError("indptr must not decrease")
    if len(slots) and (slots.min() < 0 or slots.max() >= n_slots):
        raise ValueError(f"slot indices must lie in [0, {n_slots})")
    n_rows = len(indptr) - 1
    if n_rows + n_slots >= 2**31 - 1:
        raise ValueError("too many referrals and slots for 32-bit indices")
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
    return (
        np.ascontiguousarray(indptr),
        np.ascontiguousarray(slots),
        np.ascontiguousarray(weights),
        tier_array,
        n_slots,
    )


def _bonuses(
    indptr: IntArray,
    weights: IntArray,
    tiers: npt.NDArray[np.int32],
    component: npt.NDArray[np.int32],
) -> IntArray:
    """Each referral's bonus: one more matched referral of a tier must outweigh every change
    below it, within its component. Raises ValueError when that cannot fit in int64."""
    n_rows = len(indptr) - 1
    degree = np.diff(indptr)
    has_edges = degree > 0
    row_max = np.zeros(n_rows, dtype=np.int64)
    row_min = np.zeros(n_rows, dtype=np.int64)
    if has_edges.any():
        starts = indptr[:-1][has_edges]
        row_max[has_edges] = np.maximum.reduceat(weights, starts)
        row_min[has_edges] = np.minimum.reduceat(weights, starts)
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
    """A solved instance kept warm: assignment and duals survive between changes."""

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
        self.component = connected_components(indptr, slots, n_rows, n_slots)
        bonus = _bonuses(indptr, weights, tier_array, self.component)
        degree = np.diff(indptr)
        costs = np.repeat(bonus, degree)  # built in place: one array of len(edges), not three
        costs += weights
        np.negative(costs, out=costs)
        self.solver = Solver(indptr, slots, costs, n_rows, n_slots)
        self.active = np.ones(n_rows, dtype=bool)
        self.active[np.asarray(inactive_referrals, dtype=np.int64)] = False
        self.solver.dead[np.asarray(unavailable_slots, dtype=np.int64)] = 1
        self._by_slot: tuple[IntArray, npt.NDArray[np.int32], IntArray] | None = None
        self._solve_all(threads or min(2, os.cpu_count() or 1))

    def _solve_all(self, threads: int) -> None:
        n_rows = self.solver.n_rows
        if n_rows == 0:
            return
        # urgent tiers first (they rarely need to displace anyone), components kept together
        order = np.lexsort((self.tiers, self.component)).astype(np.int32)
        order = order[self.active[order]]
        if threads <= 1:
            self.solver.insert_rows(order)
            return
        # split whole components into `threads` groups of similar work (edges)
        comp_sorted = self.component[order]
        boundaries = np.flatnonzero(np.diff(comp_sorted)) + 1
        pieces = np.split(order, boundaries)
        work = [int(np.diff(self.solver.indptr)[piece].sum()) + len(piece) for piece in pieces]
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
        self._columns_to_rows()

    def _columns_to_rows(self) -> tuple[IntArray, npt.NDArray[np.int32], IntArray]:
        """Each slot's referrals (CSC of the edges), built on first use."""
        if self._by_slot is None:
            solver = self.solver
            edge_rows = np.repeat(np.arange(solver.n_rows, dtype=np.int32), np.diff(solver.indptr))
            order = np.argsort(solver.slots, kind="stable")
            col_ptr = np.zeros(solver.n_slots + 1, dtype=np.int64)
            col_ptr[1:] = np.cumsum(np.bincount(solver.slots, minlength=solver.n_slots))
            self._by_slot = (col_ptr, edge_rows[order], order.astype(np.int64))
        return self._by_slot

    def _reinsert(self, rows: list[int] | npt.NDArray[np.int32]) -> None:
        rows = np.asarray(rows, dtype=np.int32)
        rows = rows[self.active[rows] & (self.solver.match_col[rows] < 0)]
        self.solver.insert_rows(rows[np.argsort(self.tiers[rows], kind="stable")])

    def _release(self, rows: npt.NDArray[np.int64]) -> list[int]:
        """Unassign rows; return the columns they held (now free)."""
        solver = self.solver
        held = solver.match_col[rows]
        rows, held = rows[held >= 0], held[held >= 0]
        solver.match_row[held] = -1
        solver.match_col[rows] = -1
        solver.match_edge[rows] = -1
        freed: list[int] = held.tolist()
        return freed

    def _free(self, columns: list[int]) -> None:
        """Slots just freed or put back on offer: each goes to whoever gains most from it,
        along a shortest path, or stays free at price 0."""
        real = [column for column in columns if column < self.solver.n_slots]
        self.solver.v[[column for column in columns if column >= self.solver.n_slots]] = 0
        insert_columns(self.solver, real, *self._columns_to_rows())

    def remove_slots(self, slot_ids: npt.ArrayLike) -> None:
        """Slots taken off offer (booked elsewhere, blocked); their referrals are re-matched."""
        slots = np.asarray(slot_ids, dtype=np.int64)
        self.solver.dead[slots] = 1
        holders = self.solver.match_row[slots]
        holders = holders[holders >= 0].astype(np.int64)
        self._release(holders.astype(np.int64))
        self._reinsert(holders.astype(np.int32))

    def offer_slots(self, slot_ids: npt.ArrayLike) -> None:
        """Slots (back) on offer, e.g. after a cancellation: the referrals that gain most take
        them, and whatever they give up moves on, along shortest paths only."""
        slots = np.asarray(slot_ids, dtype=np.int64)
        self.solver.dead[slots] = 0
        self._free(slots.tolist())

    def remove_referrals(self, referrals: npt.ArrayLike) -> None:
        """Referrals that no longer wait (booked elsewhere, withdrawn); their slots move on."""
        rows = np.asarray(referrals, dtype=np.int64)
        self.active[rows] = False
        self._free(self._release(rows))

    def add_referrals(self, referrals: npt.ArrayLike) -> None:
        """Referrals that start waiting (their candidate edges were in the instance)."""
        rows = np.asarray(referrals, dtype=np.int64)
        self.active[rows] = True
        self._reinsert(rows.astype(np.int32))

    def result(self) -> Matching:
        """The current matching."""
        n_slots = self.solver.n_slots
        columns = self.solver.match_col
        assignment = np.where(columns < n_slots, columns, -1).astype(np.int32)
        edges = self.solver.match_edge
        matched = edges >= 0
        total = int(self.weights[edges[matched]].sum())
        prices: IntArray = -self.solver.v[:n_slots]
        return Matching(assignment, total, prices)


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
