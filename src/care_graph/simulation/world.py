"""What a simulation starts from: a region's waiting list, its rostered capacity, where its
sites are and what its staff can do, and how fast referrals arrive — as arrays, copied out of
the database once (care_graph.simulation.snapshot) and never written back."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from care_graph.domain.rostering import Shift, StaffTerms
from care_graph.domain.waiting_times import WaitingStandards
from care_graph.matching.cost import TIER_ORDER

Arrays = dict[str, npt.NDArray[Any]]
MAX_HORIZON_DAYS = 371  # a year and a week: rosters are published a year at most
MAX_REPLICATIONS = 200


class Policy(StrEnum):
    """How a simulated day's bookings are chosen."""

    FIRST_COME_FIRST_SERVED = "fcfs"  # in order of clock start, each its best open slot
    PRIORITY_GREEDY = "priority"  # the same, most urgent priority first
    CARE_GRAPH = "care_graph"  # the matcher's optimum, kept warm from day to day


@dataclass(frozen=True, slots=True)
class Assumptions:
    """What the simulation takes as given about patients and booking. The rates are per
    booking: each booked patient cancels beforehand, or does not attend, with that chance."""

    horizon_days: int = 18 * 7
    release_days: int = 42  # slots open for booking this many days ahead
    commit_days: int = 14  # care_graph: a planned booking is made this close to its slot
    no_show_rate: float = 0.06
    cancellation_rate: float = 0.08
    lookback_days: int = 56  # arrival rates from the referrals received in this many days

    def __post_init__(self) -> None:
        if not 1 <= self.horizon_days <= MAX_HORIZON_DAYS:
            raise ValueError(f"the horizon is 1 to {MAX_HORIZON_DAYS} days")
        if not 1 <= self.release_days <= MAX_HORIZON_DAYS:
            raise ValueError(f"slots open 1 to {MAX_HORIZON_DAYS} days ahead")
        if not 1 <= self.commit_days <= self.release_days:
            raise ValueError("planned bookings are made 1 day to the release window ahead")
        for name in ("no_show_rate", "cancellation_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"{name} is a probability below 1")
        if not 1 <= self.lookback_days <= MAX_HORIZON_DAYS:
            raise ValueError(f"arrival rates look back 1 to {MAX_HORIZON_DAYS} days")


@dataclass(frozen=True, slots=True)
class World:
    """A region as the simulator sees it. Days count from ``today`` (day 0) on the clinics'
    calendar.

    - ``waiting``: referrals waiting now, as care_graph.db.matching_store reads them for
      matching (tier, waited_days, days_to_breach, earliest_day, max_km, skill, position);
    - ``slots``: rostered capacity from day 1 on (service, site, staff, days_until,
      minutes_from_now, minute_of_day, open: 0 where already booked);
    - ``sites``, ``staff_masks``: positions and skills, as matching reads them;
    - ``arrivals``: referrals a day by (service, tier);
    - ``services``: id, slot_minutes and code of each service (for added sessions);
    - ``staff``, ``shifts``, ``site_services``: what rostering rules check an added session
      against (care_graph.domain.rostering).
    """

    region: str
    today: date
    now_minute: int  # minutes since the clinics' midnight, when the snapshot was taken
    waiting: Arrays
    slots: Arrays
    sites: Arrays
    staff_masks: Arrays
    arrivals: dict[tuple[int, int], float]
    services: dict[str, tuple[int, int]]  # code -> (id, slot minutes)
    standards: WaitingStandards = field(default_factory=WaitingStandards)
    staff: tuple[StaffTerms, ...] = ()  # who may work at the region's sites, and on what terms
    shifts: dict[int, list[Shift]] = field(default_factory=dict)  # by staff, from today on
    site_services: frozenset[tuple[int, int]] = frozenset()  # (site, service id), the region's

    def breach_days(self) -> npt.NDArray[np.int64]:
        """Days from clock start to breach, by tier."""
        return np.array([self.standards.days_for(p) for p in TIER_ORDER], dtype=np.int64)

    def published_days(self) -> int:
        """How many days ahead rosters are published (the last rostered day)."""
        return int(self.slots["days_until"].max(initial=0))

    def with_slots(self, slots: Arrays) -> World:
        """The same world with other capacity."""
        return replace(self, slots=slots)


def take(arrays: Arrays, chosen: npt.NDArray[Any]) -> Arrays:
    """The rows ``chosen`` (indexes or a mask) of every column."""
    return {name: values[chosen] for name, values in arrays.items()}


def join(first: Arrays, second: Arrays) -> Arrays:
    """The rows of ``second`` after those of ``first``, column by column."""
    return {
        name: np.concatenate([values, second[name].astype(values.dtype)])
        for name, values in first.items()
    }
