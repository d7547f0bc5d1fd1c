"""Candidate edges from live data: for each waiting referral, the free slots that meet every
hard constraint — its service, a site within its maximum travel of the patient, not before its
earliest date, a clinician with its required skill — up to about ``max_degree`` per referral.

Distances come from the compiled kernel, referral by reachable site (a handful of sites per
service per patient), never referral by slot; slots are then read from per-site runs of the
slots that suit a (service, skill) need, sorted by time, so the work grows with the edges
produced.

Which slots of a run a referral is offered: its soonest (from its earliest date) and a window
placed by how pressing it is among the referrals reaching that run — the referral nearest its
breach at the front, the one with most time to spare at the back. When more referrals compete
for a run than one window holds, their windows together cover the whole run, so a busy site's
later slots are candidates for someone; and a referral's candidates lie where the optimum is
likely to place it. URGENT and TWO_WEEK_WAIT referrals, few and the ones whose place matters
most, see four times as many.
On the `region` demo data this sparse graph loses nothing measurable against offering every
feasible slot (the same urgent referrals seen before breach, the same number matched) with
a small fraction of the edges (1/35 in London).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from care_graph._matcher import haversine_km
from care_graph.matching.cost import CostModel

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Arrays = dict[str, npt.NDArray[Any]]
SITE_KEY = 1 << 32  # (row, site) key stride: site ids are int4
DAY_KEY = 1 << 20  # (run, day) key stride: far more days than any horizon
SKILL_KEY = 64  # (service, skill + 1) key stride: skills are bits of an int64 mask
URGENT_TIERS = 1  # tiers 0 and 1: URGENT and TWO_WEEK_WAIT
EVERY_SLOT = 1 << 40  # a degree no run reaches


@dataclass(frozen=True, slots=True)
class Candidates:
    """Edges in CSR by referral (row = index into the referral arrays), with what the cost
    model needs per edge."""

    indptr: IntArray
    slot: npt.NDArray[np.int32]  # index into the slot arrays
    km: FloatArray
    preferred: npt.NDArray[np.bool_]


def candidate_edges(
    referrals: Arrays,
    slots: Arrays,
    sites: Arrays,
    staff_masks: Arrays,
    preferences: Arrays,
    *,
    max_degree: int = 64,
    urgent_degree: int = 256,
    every_slot: bool = False,
) -> Candidates:
    """Every referral's feasible slots (about ``max_degree``, or ``urgent_degree`` for URGENT
    and TWO_WEEK_WAIT referrals, shared among its reachable sites; all of them with
    ``every_slot``, for comparisons), each marked when its site is one of those the
    referral's patient asked for (``preferences``: referral id and site id pairs)."""
    if every_slot:
        max_degree = urgent_degree = EVERY_SLOT
    n_referrals = len(referrals["id"])
    site_row = np.full(int(sites["id"].max(initial=0)) + 1, -1, dtype=np.int64)
    site_row[sites["id"]] = np.arange(len(sites["id"]))
    # staff with slots but no skills recorded have no mask row: theirs is 0 (no skill)
    staff_bound = max(staff_masks["staff"].max(initial=0), slots["staff"].max(initial=0))
    mask_of_staff = np.zeros(int(staff_bound) + 1, dtype=np.int64)
    mask_of_staff[staff_masks["staff"]] = staff_masks["mask"]
    slot_mask = mask_of_staff[slots["staff"]] if len(slots["id"]) else np.zeros(0, np.int64)
    by_place = np.lexsort((slots["minutes_from_now"], slots["site"], slots["service"]))
    service_of_place = slots["service"][by_place]

    # referrals grouped by need: (service, required skill or none)
    need = referrals["service"].astype(np.int64) * SKILL_KEY + referrals["skill"] + 1
    by_need = np.argsort(need, kind="stable")
    needs, need_start = np.unique(need[by_need], return_index=True)
    need_end = np.append(need_start[1:], n_referrals)[: len(needs)]

    edges: list[tuple[IntArray, IntArray, FloatArray]] = []
    for key, first, last in zip(
        needs.tolist(), need_start.tolist(), need_end.tolist(), strict=True
    ):
        service, skill = divmod(key, SKILL_KEY)
        low, high = np.searchsorted(service_of_place, [service, service + 1])
        run = by_place[low:high]
        if skill > 0:
            run = run[(slot_mask[run] >> (skill - 1)) & 1 == 1]
        if len(run):
            edges.append(
                _edges_at_sites(
                    referrals,
                    by_need[first:last],
                    run,
                    slots,
                    sites,
                    site_row,
                    (max_degree, urgent_degree),
                )
            )
    rows = np.concatenate([e[0] for e in edges]) if edges else np.zeros(0, np.int64)
    slot = np.concatenate([e[1] for e in edges]) if edges else np.zeros(0, np.int64)
    km = np.concatenate([e[2] for e in edges]) if edges else np.zeros(0)
    by_row = np.argsort(rows, kind="stable")
    rows, slot, km = rows[by_row], slot[by_row], km[by_row]
    indptr = np.zeros(n_referrals + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(rows, minlength=n_referrals))
    preferred = _at_preferred_site(referrals["id"], preferences, rows, slots["site"][slot])
    return Candidates(indptr, slot.astype(np.int32), km, preferred)


def _edges_at_sites(
    referrals: Arrays,
    members: IntArray,
    run: IntArray,
    slots: Arrays,
    sites: Arrays,
    site_row: IntArray,
    degrees: tuple[int, int],
) -> tuple[IntArray, IntArray, FloatArray]:
    """The edges of referrals with one need (``members``) into the slots that suit it
    (``run``: slot indexes sorted by site, then time): (referral row, slot index, km)."""
    run_site = slots["site"][run]
    run_start = np.flatnonzero(np.r_[True, run_site[1:] != run_site[:-1]])
    run_end = np.append(run_start[1:], len(run))
    offering = site_row[run_site[run_start]]
    km = haversine_km(
        np.repeat(referrals["latitude"][members], len(offering)),
        np.repeat(referrals["longitude"][members], len(offering)),
        np.tile(sites["latitude"][offering], len(members)),
        np.tile(sites["longitude"][offering], len(members)),
    ).reshape(len(members), len(offering))
    reach_r, reach_g = np.nonzero(km <= referrals["max_km"][members][:, None])
    if len(reach_r) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
    referral = members[reach_r]

    # each (referral, site) pair shares the referral's quota with its other reachable sites
    degree = np.where(referrals["tier"][referral] <= URGENT_TIERS, degrees[1], degrees[0])
    quota = np.maximum(degree // np.bincount(reach_r, minlength=len(members))[reach_r], 2)
    soonest = (quota + 1) // 2
    day_key = np.repeat(np.arange(len(run_start)), run_end - run_start) * DAY_KEY
    day_key += slots["days_until"][run]
    earliest = np.clip(referrals["earliest_day"][referral], 0, DAY_KEY - 1)
    start = np.searchsorted(day_key, reach_g * DAY_KEY + earliest)

    # how pressing each referral is among those reaching the same site: rank 0 is the most
    rank = np.empty(len(referral), dtype=np.int64)
    pressing = np.lexsort(
        (
            referrals["id"][referral],
            -referrals["waited_days"][referral],
            referrals["days_to_breach"][referral],
            referrals["tier"][referral],
            reach_g,
        )
    )
    competing = np.bincount(reach_g, minlength=len(run_start))
    group_first = np.cumsum(competing) - competing
    rank[pressing] = np.arange(len(referral)) - group_first[reach_g[pressing]]
    run_length = (run_end - run_start)[reach_g]
    placed = run_start[reach_g] + rank * run_length // competing[reach_g]
    after_soonest = start + soonest
    window = np.maximum(np.minimum(placed, run_end[reach_g] - (quota - soonest)), after_soonest)

    pair_a, at_a = _spans(start, np.minimum(soonest, run_end[reach_g] - start))
    pair_b, at_b = _spans(window, np.minimum(quota - soonest, run_end[reach_g] - window))
    pair = np.concatenate([pair_a, pair_b])
    at = np.concatenate([at_a, at_b])
    return referral[pair], run[at], km[reach_r[pair], reach_g[pair]]


def _spans(first: IntArray, length: IntArray) -> tuple[IntArray, IntArray]:
    """For spans ``[first, first + length)`` (lengths clipped at zero): each position, with
    the index of the span it belongs to."""
    length = np.maximum(length, 0)
    which = np.repeat(np.arange(len(first)), length)
    offset = np.arange(len(which)) - np.repeat(np.cumsum(length) - length, length)
    return which, first[which] + offset


def _at_preferred_site(
    referral_ids: IntArray,
    preferences: dict[str, npt.NDArray[Any]],
    rows: IntArray,
    edge_sites: npt.NDArray[Any],
) -> npt.NDArray[np.bool_]:
    """For each edge (referral row, site), whether the referral prefers that site."""
    if len(referral_ids) == 0 or len(preferences["referral"]) == 0:
        return np.zeros(len(rows), dtype=np.bool_)
    row_of = np.searchsorted(referral_ids, preferences["referral"]).clip(max=len(referral_ids) - 1)
    known = referral_ids[row_of] == preferences["referral"]
    rows_with = row_of[known].astype(np.int64)
    wanted = rows_with * SITE_KEY + preferences["site"][known]
    # only the edges of referrals with a preference are looked up (one in five has one)
    has_preference = np.zeros(len(referral_ids), dtype=np.bool_)
    has_preference[rows_with] = True
    looked_up = np.flatnonzero(has_preference[rows])
    preferred = np.zeros(len(rows), dtype=np.bool_)
    preferred[looked_up] = np.isin(
        rows[looked_up].astype(np.int64) * SITE_KEY + edge_sites[looked_up], wanted
    )
    return preferred


def weigh(
    model: CostModel, referrals: Arrays, slots: Arrays, candidates: Candidates
) -> tuple[IntArray, dict[str, IntArray]]:
    """Each edge's weight under ``model``, and the terms it sums (aligned on edges): what
    matching and simulation alike weigh candidates by."""
    rows = np.repeat(np.arange(len(referrals["id"])), np.diff(candidates.indptr))
    parts = model.components(
        waited_days=referrals["waited_days"][rows].astype(np.int64),
        days_to_breach=referrals["days_to_breach"][rows].astype(np.int64),
        days_until=slots["days_until"][candidates.slot].astype(np.int64),
        km=candidates.km,
        preferred=candidates.preferred,
    )
    weights = (
        np.sum(list(parts.values()), axis=0).astype(np.int64)
        if rows.size
        else np.zeros(0, dtype=np.int64)
    )
    return weights, parts
