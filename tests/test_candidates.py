"""Candidate edges from arrays as the database gives them: every hard constraint holds, and a
busy site's later slots are candidates for someone, so capacity is never hidden."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from care_graph.matcher import Matcher
from care_graph.matching.candidates import candidate_edges

Arrays = dict[str, npt.NDArray[Any]]
CAMDEN = (51.539, -0.143)
SEDATION = 0  # bit of the skill mask


def _referrals(count: int, **columns: Any) -> Arrays:
    """``count`` routine referrals near Camden for service 1, with ``columns`` overriding."""
    arrays: Arrays = {
        "id": np.arange(1, count + 1, dtype=np.int64),
        "service": np.ones(count, np.int32),
        "tier": np.full(count, 2, np.int32),
        "waited_days": np.arange(count, dtype=np.int32),
        "days_to_breach": np.arange(count, 0, -1, dtype=np.int32) + 20,
        "earliest_day": np.full(count, -100000, np.int32),
        "max_km": np.full(count, 30.0),
        "skill": np.full(count, -1, np.int32),
        "latitude": np.full(count, CAMDEN[0] + 0.01),
        "longitude": np.full(count, CAMDEN[1]),
    }
    for name, values in columns.items():
        arrays[name] = np.asarray(values, dtype=arrays[name].dtype)
    return arrays


def _slots(days: list[int], minutes: list[int], staff: list[int]) -> Arrays:
    """Slots of service 1 at site 1."""
    count = len(days)
    return {
        "id": np.arange(101, 101 + count, dtype=np.int64),
        "service": np.ones(count, np.int32),
        "site": np.ones(count, np.int32),
        "staff": np.asarray(staff, np.int32),
        "minutes_from_now": np.asarray(minutes, np.int64),
        "days_until": np.asarray(days, np.int32),
    }


SITES: Arrays = {
    "id": np.array([1], np.int32),
    "latitude": np.array([CAMDEN[0]]),
    "longitude": np.array([CAMDEN[1]]),
}
NO_PREFERENCES: Arrays = {"referral": np.zeros(0, np.int64), "site": np.zeros(0, np.int32)}
STAFF: Arrays = {"staff": np.array([1, 2], np.int32), "mask": np.array([0, 1 << SEDATION])}


def _edges_of(candidates: Any, row: int) -> list[int]:
    """The slot indexes offered to a referral row."""
    return sorted(candidates.slot[candidates.indptr[row] : candidates.indptr[row + 1]].tolist())


def test_a_busy_site_offers_all_its_slots_to_someone() -> None:
    slot_count, referral_count, degree = 400, 500, 16
    slots = _slots(
        [day // 10 for day in range(slot_count)],
        [60 * 24 * (day // 10) + day for day in range(slot_count)],
        [1] * slot_count,
    )
    candidates = candidate_edges(
        _referrals(referral_count), slots, SITES, STAFF, NO_PREFERENCES, max_degree=degree
    )

    assert set(candidates.slot.tolist()) == set(range(slot_count))
    assert np.diff(candidates.indptr).max() <= degree
    weights = np.ones(len(candidates.slot), dtype=np.int64)
    matching = Matcher(
        candidates.indptr, candidates.slot, weights, slot_count, np.full(referral_count, 2)
    ).result()
    assert int((matching.assignment >= 0).sum()) == slot_count


def test_the_most_pressing_referral_is_offered_the_soonest_slots() -> None:
    referrals = _referrals(50)  # the last is nearest its breach, the first furthest from it
    slots = _slots(list(range(200)), [1440 * day + 600 for day in range(200)], [1] * 200)
    candidates = candidate_edges(referrals, slots, SITES, STAFF, NO_PREFERENCES, max_degree=8)

    assert _edges_of(candidates, 49) == list(range(8))
    furthest = _edges_of(candidates, 0)
    assert furthest[:4] == list(range(4))
    assert min(furthest[4:]) > 150


def test_earliest_date_is_a_day_whatever_the_time_now() -> None:
    # tomorrow at 09:00 is less than 24 hours away when it is afternoon now
    slots = _slots([0, 1, 2], [60, 60 * 18, 60 * 42], [1, 1, 1])
    referrals = _referrals(2, earliest_day=[1, 2])
    candidates = candidate_edges(referrals, slots, SITES, STAFF, NO_PREFERENCES)

    assert _edges_of(candidates, 0) == [1, 2]
    assert _edges_of(candidates, 1) == [2]


def test_a_rare_skill_finds_its_slots_behind_many_others() -> None:
    staff = [1] * 300 + [2] * 3  # only the last three slots are with a sedation-trained clinician
    slots = _slots([i // 10 for i in range(303)], [100 * i for i in range(303)], staff)
    referrals = _referrals(2, skill=[SEDATION, -1])
    candidates = candidate_edges(referrals, slots, SITES, STAFF, NO_PREFERENCES, max_degree=8)

    assert _edges_of(candidates, 0) == [300, 301, 302]
    assert len(_edges_of(candidates, 1)) == 8


def test_no_edge_beyond_a_referrals_travel_limit() -> None:
    slots = _slots([1, 2], [1440, 2880], [1, 1])
    referrals = _referrals(2, max_km=[0.5, 5.0])  # 1.1 km from the site
    candidates = candidate_edges(referrals, slots, SITES, STAFF, NO_PREFERENCES)

    assert _edges_of(candidates, 0) == []
    assert _edges_of(candidates, 1) == [0, 1]
    assert np.allclose(candidates.km, 1.11, atol=0.01)


def test_urgent_referrals_see_more_slots_and_every_slot_sees_all() -> None:
    slots = _slots([i // 10 for i in range(400)], [100 * i for i in range(400)], [1] * 400)
    referrals = _referrals(3, tier=[0, 1, 2])
    sparse = candidate_edges(
        referrals, slots, SITES, STAFF, NO_PREFERENCES, max_degree=8, urgent_degree=32
    )
    every = candidate_edges(referrals, slots, SITES, STAFF, NO_PREFERENCES, every_slot=True)

    assert np.diff(sparse.indptr).tolist() == [32, 32, 8]
    assert np.diff(every.indptr).tolist() == [400, 400, 400]


def test_a_clinician_with_slots_and_no_skills_gives_slots_to_who_needs_none() -> None:
    # clinician 3, the highest id with slots, has no row in staff_skills: no mask at all
    slots = _slots([1, 2, 3], [1440, 2880, 4320], [1, 3, 3])
    referrals = _referrals(2, skill=[SEDATION, -1])
    candidates = candidate_edges(referrals, slots, SITES, STAFF, NO_PREFERENCES)

    assert _edges_of(candidates, 0) == []
    assert _edges_of(candidates, 1) == [0, 1, 2]
