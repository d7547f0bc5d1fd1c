"""Candidate edges from live data: for each waiting referral, the free slots that meet every
hard constraint — its service, a site within its maximum travel of the patient, not before its
earliest date, a clinician with its required skill — up to ``max_degree`` per referral.

Distances come from the compiled kernel, referral by reachable site (a handful of sites per
service per patient), never referral by slot; slots are then read from per-(service, site)
runs sorted by time, so the work grows with the edges produced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from care_graph._matcher import haversine_km

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
MINUTES_PER_GROUP = 10_000_000  # sort key stride: a horizon is far shorter than this
SITE_KEY = 1 << 32  # (row, site) key stride: site ids are int4


@dataclass(frozen=True, slots=True)
class Candidates:
    """Edges in CSR by referral (row = index into the referral arrays), with what the cost
    model needs per edge."""

    indptr: IntArray
    slot: npt.NDArray[np.int32]  # index into the slot arrays
    km: FloatArray
    preferred: npt.NDArray[np.bool_]


def candidate_edges(
    referrals: dict[str, npt.NDArray[Any]],
    slots: dict[str, npt.NDArray[Any]],
    sites: dict[str, npt.NDArray[Any]],
    staff_masks: dict[str, npt.NDArray[Any]],
    preferences: dict[str, npt.NDArray[Any]],
    *,
    max_degree: int = 64,
) -> Candidates:
    """Every referral's feasible slots (at most ``max_degree``, soonest first per site), each
    marked when its site is one of those the referral's patient asked for (``preferences``:
    referral id and site id pairs)."""
    n_referrals = len(referrals["id"])
    site_row = np.full(int(sites["id"].max(initial=0)) + 1, -1, dtype=np.int64)
    site_row[sites["id"]] = np.arange(len(sites["id"]))
    mask_of_staff = np.zeros(int(staff_masks["staff"].max(initial=0)) + 1, dtype=np.int64)
    mask_of_staff[staff_masks["staff"]] = staff_masks["mask"]
    slot_mask = mask_of_staff[slots["staff"]] if len(slots["id"]) else np.zeros(0, np.int64)

    # runs of slots per (service, site), each sorted by time
    pair_key = slots["service"].astype(np.int64) * 100_000 + slots["site"]
    groups, group_of_slot = np.unique(pair_key, return_inverse=True)
    order = np.lexsort((slots["minutes_from_now"], group_of_slot))
    run_start = np.searchsorted(group_of_slot[order], np.arange(len(groups)))
    run_end = np.searchsorted(group_of_slot[order], np.arange(len(groups)), side="right")
    group_service = groups // 100_000
    group_site = groups % 100_000
    sorted_key = group_of_slot[order] * MINUTES_PER_GROUP + slots["minutes_from_now"][order]

    edge_rows: list[IntArray] = []
    edge_slots: list[IntArray] = []
    edge_km: list[FloatArray] = []
    for service in np.unique(referrals["service"]).tolist():
        members = np.flatnonzero(referrals["service"] == service)
        offering = np.flatnonzero(group_service == service)
        if len(offering) == 0:
            continue
        rows_in = site_row[group_site[offering]]
        # distance from each referral of the service to each site offering it
        km = haversine_km(
            np.repeat(referrals["latitude"][members], len(offering)),
            np.repeat(referrals["longitude"][members], len(offering)),
            np.tile(sites["latitude"][rows_in], len(members)),
            np.tile(sites["longitude"][rows_in], len(members)),
        ).reshape(len(members), len(offering))
        reach_r, reach_g = np.nonzero(km <= referrals["max_km"][members][:, None])
        if len(reach_r) == 0:
            continue
        referral = members[reach_r]
        group = offering[reach_g]
        sites_reached = np.bincount(reach_r, minlength=len(members))[reach_r]
        per_run = np.maximum(max_degree // sites_reached, 2)
        first_minute = np.maximum(referrals["earliest_day"][referral], 0).astype(np.int64) * 1440
        start = np.searchsorted(sorted_key, group * MINUTES_PER_GROUP + first_minute)
        start = np.maximum(start, run_start[group])
        # over-read a little so that a required skill can still fill the quota
        take = np.minimum(per_run * 2, run_end[group] - start).clip(min=0)
        pair = np.repeat(np.arange(len(referral)), take)
        offset = np.arange(len(pair)) - np.repeat(np.cumsum(take) - take, take)
        slot_index = order[start[pair] + offset]
        wanted = referrals["skill"][referral[pair]]
        skilled = (wanted < 0) | ((slot_mask[slot_index] >> np.maximum(wanted, 0)) & 1 == 1)
        # keep the first per_run skilled slots of each (referral, site) run
        rank = np.cumsum(skilled) - 1
        first_rank = np.repeat(
            np.concatenate(
                [
                    [0],
                    np.cumsum(
                        np.bincount(pair, weights=skilled, minlength=len(referral)).astype(np.int64)
                    )[:-1],
                ]
            ),
            take,
        )
        keep = skilled & (rank - first_rank < per_run[pair])
        edge_rows.append(referral[pair[keep]])
        edge_slots.append(slot_index[keep])
        edge_km.append(km[reach_r[pair[keep]], reach_g[pair[keep]]])
    rows = np.concatenate(edge_rows) if edge_rows else np.zeros(0, np.int64)
    slot = np.concatenate(edge_slots) if edge_slots else np.zeros(0, np.int64)
    km_all = np.concatenate(edge_km) if edge_km else np.zeros(0)
    by_row = np.argsort(rows, kind="stable")
    rows, slot, km_all = rows[by_row], slot[by_row], km_all[by_row]
    indptr = np.zeros(n_referrals + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(rows, minlength=n_referrals))
    preferred = _at_preferred_site(referrals["id"], preferences, rows, slots["site"][slot])
    return Candidates(indptr, slot.astype(np.int32), km_all, preferred)


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
