"""A plain-Python reference for the matcher's contract, for tests on small instances: it tries
every matching (depth-first, each referral either unmatched or on one free candidate) and keeps
the lexicographically best — most tier-0 referrals matched, then tier 1, …, then total weight.
Exponential; meant for a dozen referrals at most."""

from __future__ import annotations

from collections.abc import Sequence


def objective(
    assignment: Sequence[int],
    indptr: Sequence[int],
    slots: Sequence[int],
    weights: Sequence[int],
    tiers: Sequence[int],
) -> tuple[int, ...]:
    """(matched in tier 0, tier 1, …, total weight) of an assignment; the best weight is used
    when a referral has several edges to its slot."""
    n_tiers = max(tiers, default=0) + 1
    counts = [0] * n_tiers
    total = 0
    for row, slot in enumerate(assignment):
        if slot < 0:
            continue
        counts[tiers[row]] += 1
        total += max(weights[e] for e in range(indptr[row], indptr[row + 1]) if slots[e] == slot)
    return (*counts, total)


def solve_reference(
    indptr: Sequence[int],
    slots: Sequence[int],
    weights: Sequence[int],
    n_slots: int,
    tiers: Sequence[int] | None = None,
) -> tuple[list[int], tuple[int, ...]]:
    """The best assignment and its objective, by exhaustive search."""
    n_rows = len(indptr) - 1
    tier_list = list(tiers) if tiers is not None else [0] * n_rows
    n_tiers = max(tier_list, default=0) + 1
    best: list[tuple[tuple[int, ...], list[int]]] = []
    taken = [False] * n_slots
    current = [-1] * n_rows

    def score(row: int, slot: int) -> int:
        return max(weights[e] for e in range(indptr[row], indptr[row + 1]) if slots[e] == slot)

    def search(row: int, counts: list[int], total: int) -> None:
        if row == n_rows:
            value = (*counts, total)
            if not best or value > best[0][0]:
                best[:] = [(value, list(current))]
            return
        search(row + 1, counts, total)  # this referral stays unmatched
        for slot in sorted({slots[e] for e in range(indptr[row], indptr[row + 1])}):
            if taken[slot]:
                continue
            taken[slot] = True
            current[row] = slot
            counts[tier_list[row]] += 1
            search(row + 1, counts, total + score(row, slot))
            counts[tier_list[row]] -= 1
            current[row] = -1
            taken[slot] = False

    search(0, [0] * n_tiers, 0)
    value, assignment = best[0]
    return assignment, value
