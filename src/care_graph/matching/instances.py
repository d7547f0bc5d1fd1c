"""Seeded matching instances that look like a region's waiting list, for benchmarks and tests.

Sites are spread at constant density over a square, each offering a few of 20 services; slots
belong to a (site, service) pair; each referral wants one service, has a priority tier (about 5%
urgent, 15% suspected cancer, 80% routine) and reaches the slots of that service at the sites
within its travel radius, up to ``max_degree`` candidates. Weights reward waiting and penalise
distance and delay, as the real cost model does. ``loose`` capacity is about five times demand;
``scarce`` is below it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

SITE_SPACING_KM = 12.0
TRAVEL_RADIUS_KM = 30.0
TIER_MIX = (0.05, 0.15, 0.80)


@dataclass(frozen=True, slots=True)
class Instance:
    """Candidate edges in CSR by referral, and what they describe."""

    indptr: npt.NDArray[np.int64]
    slots: npt.NDArray[np.int32]
    weights: npt.NDArray[np.int64]
    tiers: npt.NDArray[np.int32]
    n_slots: int
    service: npt.NDArray[np.int32]  # each referral's service: edges never cross services

    @property
    def n_referrals(self) -> int:
        """How many referrals."""
        return len(self.indptr) - 1


def generate_instance(
    n_referrals: int,
    n_slots: int,
    *,
    seed: int = 0,
    n_services: int = 20,
    max_degree: int = 64,
    services_per_site: int = 6,
) -> Instance:
    """A seeded instance of this size (same arguments, same instance)."""
    rng = np.random.default_rng(seed)
    n_sites = max(n_slots // 800, 4)
    side = SITE_SPACING_KM * np.sqrt(n_sites)
    site_xy = rng.uniform(0, side, (n_sites, 2))
    # each site offers a few services; every (site, service) pair gets a pool of slots
    offers = np.array(
        [rng.choice(n_services, services_per_site, replace=False) for _ in range(n_sites)]
    )
    pool_site = np.repeat(np.arange(n_sites), services_per_site)
    pool_service = offers.ravel()
    n_pools = len(pool_site)
    pool_of_slot = rng.integers(0, n_pools, n_slots)
    order = np.argsort(pool_of_slot, kind="stable")
    pool_len = np.bincount(pool_of_slot, minlength=n_pools)
    pool_start = np.concatenate([[0], np.cumsum(pool_len)[:-1]])
    slot_day = rng.integers(0, 56, n_slots)

    referral_xy = rng.uniform(0, side, (n_referrals, 2))
    service = rng.integers(0, n_services, n_referrals).astype(np.int32)
    tiers = rng.choice(len(TIER_MIX), n_referrals, p=TIER_MIX).astype(np.int32)
    waited = rng.integers(0, 200, n_referrals)

    # pools within reach of each referral, by a grid over sites
    cell = TRAVEL_RADIUS_KM
    grid = (site_xy // cell).astype(np.int64)
    grid_width = int(side // cell) + 2
    site_cell = grid[:, 0] * grid_width + grid[:, 1]
    by_cell: dict[int, list[int]] = {}
    for site, key in enumerate(site_cell.tolist()):
        by_cell.setdefault(key, []).append(site)
    pools_by_site_service = {
        (int(s), int(v)): p for p, (s, v) in enumerate(zip(pool_site, pool_service, strict=True))
    }
    pair_referral: list[int] = []
    pair_pool: list[int] = []
    pair_km: list[float] = []
    referral_cell = (referral_xy // cell).astype(np.int64)
    for r in range(n_referrals):
        cx, cy = referral_cell[r]
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for site in by_cell.get(int((cx + dx) * grid_width + cy + dy), ()):
                    pool = pools_by_site_service.get((site, int(service[r])))
                    if pool is None or pool_len[pool] == 0:
                        continue
                    km = float(np.hypot(*(site_xy[site] - referral_xy[r])))
                    if km <= TRAVEL_RADIUS_KM:
                        pair_referral.append(r)
                        pair_pool.append(pool)
                        pair_km.append(km)
    pairs_r = np.array(pair_referral, dtype=np.int64)
    pairs_p = np.array(pair_pool, dtype=np.int64)
    pairs_km = np.array(pair_km)
    per_referral = np.bincount(pairs_r, minlength=n_referrals)
    take = np.maximum(max_degree // np.maximum(per_referral[pairs_r], 1), 1)
    take = np.minimum(take, pool_len[pairs_p])
    edge_pair = np.repeat(np.arange(len(pairs_r)), take)
    offset = (rng.random(len(edge_pair)) * pool_len[pairs_p[edge_pair]]).astype(np.int64)
    edge_slot = order[pool_start[pairs_p[edge_pair]] + offset].astype(np.int32)
    edge_referral = pairs_r[edge_pair]
    weights = (
        1000
        + 3 * waited[edge_referral]
        - np.rint(4 * pairs_km[edge_pair]).astype(np.int64)
        - 6 * slot_day[edge_slot]
    ).astype(np.int64)
    sort = np.argsort(edge_referral, kind="stable")
    indptr = np.zeros(n_referrals + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(edge_referral, minlength=n_referrals))
    return Instance(indptr, edge_slot[sort], weights[sort], tiers, n_slots, service)
