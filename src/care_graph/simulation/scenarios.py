"""What-if scenarios, as data: sessions added or removed, maximum travel widened or narrowed,
arrival rates changed. A scenario changes the world and the capacity a timeline is drawn
from, nothing else, so that with the same seeds it differs from the baseline only by what it
changes (common random numbers).

A scenario file is JSON::

    {"name": "two more ophthalmology clinics",
     "add": [{"staff": 12, "site": 40, "service": "OPHTHALMOLOGY", "weekdays": [2, 4],
              "starts": "09:00", "ends": "13:00", "from": "2027-01-04", "to": "2027-03-26"}],
     "remove": [{"site": 41, "service": "OPHTHALMOLOGY", "from": "2027-02-01",
                 "to": "2027-02-05"}],
     "travel_factor": 1.2,
     "arrival_factors": {"OPHTHALMOLOGY": 1.1, "*": 1.0}}

An added session is a weekly clinic of one staff member at a site (opening a service at
another site is adding sessions there); a removed one takes away the capacity of a service at
a site (of one staff member, when given) on those weekdays, hours and dates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, time, timedelta
from typing import Any

import numpy as np

from care_graph.simulation.timeline import MINUTES_A_DAY
from care_graph.simulation.world import MAX_HORIZON_DAYS, Arrays, World, join, take

MAX_SESSIONS = 500  # added or removed patterns in one scenario
MAX_FACTOR = 10.0
WEEKDAYS = (1, 2, 3, 4, 5)


@dataclass(frozen=True, slots=True)
class Sessions:
    """A weekly pattern of clinics: a service at a site, on ISO weekdays (1 = Monday), between
    two times, from one date to another; ``staff`` is who runs them (required to add)."""

    service: str
    site: int
    first_day: date
    last_day: date
    staff: int | None = None
    weekdays: tuple[int, ...] = WEEKDAYS
    starts: time = time(9, 0)
    ends: time = time(13, 0)

    def to_json(self) -> dict[str, Any]:
        """The pattern as a scenario file holds it."""
        pattern: dict[str, Any] = {
            "service": self.service,
            "site": self.site,
            "weekdays": list(self.weekdays),
            "starts": self.starts.isoformat("minutes"),
            "ends": self.ends.isoformat("minutes"),
            "from": self.first_day.isoformat(),
            "to": self.last_day.isoformat(),
        }
        if self.staff is not None:
            pattern["staff"] = self.staff
        return pattern

    def days(self, today: date) -> list[int]:
        """The days (counted from ``today``) the sessions fall on, tomorrow onwards."""
        span = (self.last_day - self.first_day).days
        return [
            (self.first_day + timedelta(days=offset) - today).days
            for offset in range(span + 1)
            if (self.first_day + timedelta(days=offset)).isoweekday() in self.weekdays
            and (self.first_day + timedelta(days=offset) - today).days >= 1
        ]


@dataclass(frozen=True, slots=True)
class Scenario:
    """Changes to the baseline; the empty scenario is the baseline itself."""

    name: str = "baseline"
    add: tuple[Sessions, ...] = ()
    remove: tuple[Sessions, ...] = ()
    travel_factor: float = 1.0
    arrival_factors: dict[str, float] = field(default_factory=dict)  # service code or "*"

    @classmethod
    def from_json(cls, data: Any) -> Scenario:
        """The scenario a JSON object describes; ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a scenario is a JSON object")
        known = {"name", "add", "remove", "travel_factor", "arrival_factors"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown scenario field {unknown[0]!r}; known: {sorted(known)}")
        name = data.get("name", "scenario")
        if not isinstance(name, str) or not 1 <= len(name) <= 100:
            raise ValueError("a scenario's name is 1 to 100 characters")
        add = _sessions(data.get("add", []), "add", staff_required=True)
        remove = _sessions(data.get("remove", []), "remove", staff_required=False)
        if len(add) + len(remove) > MAX_SESSIONS:
            raise ValueError(f"a scenario adds and removes at most {MAX_SESSIONS} patterns")
        travel = _factor(data.get("travel_factor", 1.0), "travel_factor")
        factors = data.get("arrival_factors", {})
        if not isinstance(factors, dict) or len(factors) > 100:
            raise ValueError("arrival_factors maps up to 100 service codes (or '*') to factors")
        arrival = {
            str(code): _factor(value, f"arrival_factors[{code!r}]")
            for code, value in factors.items()
        }
        return cls(name, add, remove, travel, arrival)

    def to_json(self) -> dict[str, Any]:
        """The scenario as ``from_json`` reads it."""
        return {
            "name": self.name,
            "add": [sessions.to_json() for sessions in self.add],
            "remove": [sessions.to_json() for sessions in self.remove],
            "travel_factor": self.travel_factor,
            "arrival_factors": dict(self.arrival_factors),
        }

    def world(self, world: World) -> World:
        """The world with this scenario's travel and arrivals."""
        unknown = sorted(set(self.arrival_factors) - set(world.services) - {"*"})
        if unknown:
            raise ValueError(f"unknown service {unknown[0]!r} in arrival_factors")
        code_of = {service_id: code for code, (service_id, _) in world.services.items()}
        everywhere = self.arrival_factors.get("*", 1.0)
        arrivals = {
            (service, tier): rate * self.arrival_factors.get(code_of.get(service, ""), everywhere)
            for (service, tier), rate in world.arrivals.items()
        }
        waiting = dict(world.waiting)
        waiting["max_km"] = world.waiting["max_km"] * self.travel_factor
        return replace(world, waiting=waiting, arrivals=arrivals)

    def capacity(self, world: World, slots: Arrays) -> Arrays:
        """``slots`` (the baseline's capacity over the horizon) with sessions removed, then
        sessions added."""
        for sessions in self.remove:
            slots = take(slots, ~_within(world, sessions, slots))
        for sessions in self.add:
            slots = join(slots, _cut(world, sessions))
        return slots


def _within(world: World, sessions: Sessions, slots: Arrays) -> np.ndarray[Any, Any]:
    """Which of ``slots`` the sessions cover."""
    service_id, _ = _service(world, sessions.service)
    days = np.array(sessions.days(world.today), dtype=np.int64)
    minute = slots["minute_of_day"]
    covered = (
        (slots["service"] == service_id)
        & (slots["site"] == sessions.site)
        & np.isin(slots["days_until"], days)
        & (minute >= _minutes(sessions.starts))
        & (minute < _minutes(sessions.ends))
    )
    if sessions.staff is not None:
        covered &= slots["staff"] == sessions.staff
    return np.asarray(covered, dtype=bool)


def _cut(world: World, sessions: Sessions) -> Arrays:
    """The slots of added sessions: each session cut into slots of its service's length."""
    if sessions.staff is None:
        raise ValueError("added sessions name their staff")
    return session_slots(
        world,
        sessions.service,
        sessions.site,
        sessions.staff,
        sessions.days(world.today),
        sessions.starts,
        sessions.ends,
    )


def session_slots(
    world: World, service: str, site: int, staff: int, days: list[int], starts: time, ends: time
) -> Arrays:
    """The slots of one staff member's clinics at ``site`` on ``days`` (counted from today),
    each clinic cut into slots of the service's length, as the world's slot arrays hold them
    (id -1: not yet in any roster)."""
    service_id, length = _service(world, service)
    if site not in set(world.sites["id"].tolist()):
        raise ValueError(f"unknown site {site}")
    minutes = np.arange(_minutes(starts), _minutes(ends) - length + 1, length)
    day_array = np.array(days, dtype=np.int64)
    day_array = day_array[day_array <= MAX_HORIZON_DAYS]
    day_of = np.repeat(day_array, len(minutes))
    minute_of = np.tile(minutes, len(day_array))
    n = len(day_of)
    return {
        "id": np.full(n, -1, dtype=np.int64),
        "service": np.full(n, service_id, dtype=np.int32),
        "site": np.full(n, site, dtype=np.int32),
        "staff": np.full(n, staff, dtype=np.int32),
        "minutes_from_now": day_of * MINUTES_A_DAY + minute_of - world.now_minute,
        "days_until": day_of.astype(np.int32),
        "open": np.ones(n, dtype=np.int32),
        "minute_of_day": minute_of.astype(np.int32),
    }


def _service(world: World, code: str) -> tuple[int, int]:
    if code not in world.services:
        raise ValueError(f"unknown service {code!r}")
    return world.services[code]


def _minutes(moment: time) -> int:
    return moment.hour * 60 + moment.minute


def _factor(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number")
    if not 0.0 < float(value) <= MAX_FACTOR:
        raise ValueError(f"{name} must be above 0 and at most {MAX_FACTOR}")
    return float(value)


def _sessions(items: Any, what: str, *, staff_required: bool) -> tuple[Sessions, ...]:
    if not isinstance(items, list) or len(items) > MAX_SESSIONS:
        raise ValueError(f"{what} is a list of at most {MAX_SESSIONS} session patterns")
    return tuple(_one_pattern(item, f"{what}[{k}]", staff_required) for k, item in enumerate(items))


def _one_pattern(item: Any, where: str, staff_required: bool) -> Sessions:
    if not isinstance(item, dict):
        raise ValueError(f"{where} is an object")
    known = {"service", "site", "staff", "weekdays", "starts", "ends", "from", "to"}
    unknown = sorted(set(item) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r}; known: {sorted(known)}")
    try:
        first, last = date.fromisoformat(item["from"]), date.fromisoformat(item["to"])
        starts = time.fromisoformat(item.get("starts", "09:00"))
        ends = time.fromisoformat(item.get("ends", "13:00"))
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{where}: 'from' and 'to' are dates, 'starts' and 'ends' times"
        ) from error
    if not 0 <= (last - first).days <= MAX_HORIZON_DAYS:
        raise ValueError(f"{where}: 'to' falls 0 to {MAX_HORIZON_DAYS} days after 'from'")
    if not ends > starts:
        raise ValueError(f"{where}: a session ends after it starts")
    weekdays = item.get("weekdays", list(WEEKDAYS))
    if (
        not isinstance(weekdays, list)
        or not weekdays
        or any(isinstance(day, bool) or day not in range(1, 8) for day in weekdays)
    ):
        raise ValueError(f"{where}: weekdays are 1 (Monday) to 7")
    site, staff = item.get("site"), item.get("staff")
    if isinstance(site, bool) or not isinstance(site, int):
        raise ValueError(f"{where}: site is a site's number")
    if staff is None and staff_required:
        raise ValueError(f"{where}: added sessions name their staff")
    if staff is not None and (isinstance(staff, bool) or not isinstance(staff, int)):
        raise ValueError(f"{where}: staff is a staff member's number")
    service = item.get("service")
    if not isinstance(service, str):
        raise ValueError(f"{where}: service is a service code")
    return Sessions(service, site, first, last, staff, tuple(sorted(set(weekdays))), starts, ends)
