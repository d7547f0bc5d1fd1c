"""One replication's course of events, drawn before any day is simulated: the capacity over
the horizon, the referrals that will arrive, what will become of each booking, and the
candidate edges between them. Every policy of a replication is run on the same timeline, so
that policies (and scenarios, drawn with the same seed) differ only by what they change.

Capacity beyond the published rosters repeats the published weeks: the whole weeks rostered
from tomorrow are laid end to end until the horizon. Arrivals are Poisson by day for each
(service, priority), each new referral taking its patient's home, maximum travel and required
skill from a referral of the same service on the list now (the region's own mix).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from care_graph.matching.candidates import candidate_edges, weigh
from care_graph.matching.cost import CostModel
from care_graph.simulation.world import Arrays, Assumptions, World, join, take

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
ARRIVALS, FATES = 1, 2  # the random streams of a seed: one per arrival cell, one for fates
ATTEMPTS = 4  # bookings per referral with their own fate; later ones reuse the last
NO_PREFERENCES: Arrays = {
    "referral": np.zeros(0, dtype=np.int64),
    "site": np.zeros(0, dtype=np.int32),
}
MINUTES_A_DAY = 24 * 60


@dataclass(frozen=True, slots=True)
class Timeline:
    """Everything one replication draws, shared by the policies run on it.

    ``referrals`` holds the list at day 0 and then every arrival (``arrival_day``: -1 for the
    list); ``fates[row, attempt]`` holds three uniform draws per booking: whether the patient
    cancels, when, and whether they do not attend.
    """

    seed: int
    referrals: Arrays
    arrival_day: IntArray
    slots: Arrays
    indptr: IntArray
    slot: npt.NDArray[np.int32]
    weights: IntArray
    km: FloatArray
    fates: FloatArray

    @property
    def n_initial(self) -> int:
        """Referrals on the list at day 0."""
        return int((self.arrival_day < 0).sum())


def capacity(world: World, horizon_days: int) -> Arrays:
    """The rostered slots from day 1 to the horizon, the published weeks repeated past the
    last published day; slots projected so have id -1 and are open."""
    slots = world.slots
    days = slots["days_until"]
    parts = [take(slots, (days >= 1) & (days <= horizon_days))]
    published = world.published_days()
    period = published // 7 * 7
    if period >= 7:
        pattern = take(slots, (days >= 1) & (days <= period))
        for shift in repeats(published, horizon_days):
            copy = dict(pattern)
            copy["id"] = np.full(len(pattern["id"]), -1, dtype=pattern["id"].dtype)
            copy["days_until"] = pattern["days_until"] + shift
            copy["minutes_from_now"] = pattern["minutes_from_now"] + shift * MINUTES_A_DAY
            copy["open"] = np.ones_like(pattern["open"])
            beyond = (copy["days_until"] > published) & (copy["days_until"] <= horizon_days)
            parts.append(take(copy, beyond))
    result = parts[0]
    for part in parts[1:]:
        result = join(result, part)
    return result


def repeats(published_days: int, horizon_days: int) -> range:
    """By how many days the published weeks (the whole weeks rostered from tomorrow) are
    shifted, copy after copy, to fill the horizon past the last published day: how capacity,
    and the shifts that make it, are projected."""
    period = published_days // 7 * 7
    return range(period, horizon_days, period) if period >= 7 else range(0)


def draw(
    world: World,
    assumptions: Assumptions,
    seed: int,
    model: CostModel | None = None,
    slots: Arrays | None = None,
) -> Timeline:
    """The timeline of replication ``seed`` (``slots``: the capacity, when already made)."""
    horizon = assumptions.horizon_days
    slots = capacity(world, horizon) if slots is None else slots
    waiting = world.waiting
    fates = [np.random.default_rng([seed, FATES]).random((len(waiting["id"]), ATTEMPTS, 3))]
    arrivals, arrival_day = [], [np.full(len(waiting["id"]), -1, dtype=np.int64)]
    breach_days = world.breach_days()
    next_id = -1
    for (service, tier), rate in sorted(world.arrivals.items()):
        rng = np.random.default_rng([seed, ARRIVALS, service, tier])
        counts = rng.poisson(rate, horizon)
        days = np.repeat(np.arange(horizon, dtype=np.int64), counts)
        pool = np.flatnonzero(waiting["service"] == service)
        if len(days) == 0 or len(pool) == 0:
            continue  # nobody on the list to take a new patient's home and needs from
        template = take(waiting, pool[rng.integers(0, len(pool), len(days))])
        template["id"] = np.arange(next_id, next_id - len(days), -1, dtype=np.int64)
        next_id -= len(days)
        template["tier"] = np.full(len(days), tier, dtype=np.int32)
        template["waited_days"] = (-days).astype(np.int32)
        template["days_to_breach"] = (days + breach_days[tier]).astype(np.int32)
        template["earliest_day"] = (days + 1).astype(np.int32)
        arrivals.append(template)
        arrival_day.append(days)
        fates.append(rng.random((len(days), ATTEMPTS, 3)))
    referrals = waiting
    for part in arrivals:
        referrals = join(referrals, part)
    candidates = candidate_edges(referrals, slots, world.sites, world.staff_masks, NO_PREFERENCES)
    weights, _ = weigh(model or CostModel(), referrals, slots, candidates)
    return Timeline(
        seed=seed,
        referrals=referrals,
        arrival_day=np.concatenate(arrival_day),
        slots=slots,
        indptr=candidates.indptr,
        slot=candidates.slot,
        weights=weights,
        km=candidates.km,
        fates=np.concatenate(fates),
    )
