"""What the dashboard draws, from the capacity outlook's rows and a region's snapshot: demand
against capacity by service, breaches ahead by week, unmet demand by site, and the waiting
list's course under a scenario. No HTML here, no database: figures only, named as the
outlook names them (docs/capacity.md), so the page's numbers are the API's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np

from care_graph.simulation.engine import Outcome
from care_graph.simulation.recommend import waiting_nearest
from care_graph.simulation.world import World

Row = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ServiceLoad:
    """One service over the outlook's weeks: referrals expected against slots on offer."""

    service: str
    expected_arrivals: float
    slots_offered: int
    breaches_ahead: int


@dataclass(frozen=True, slots=True)
class WeekBreaches:
    """Breaches ahead in one week, over every service."""

    week_starting: date
    breaches_ahead: int


@dataclass(frozen=True, slots=True)
class SiteDemand:
    """A site and its unmet demand: the referrals waiting nearest to it for a service it
    offers, less its open slots for that service within the outlook's weeks (never below
    nothing), summed over its services."""

    site: int
    latitude: float
    longitude: float
    unmet: int


@dataclass(frozen=True, slots=True)
class Course:
    """The waiting list (waiting, or booked and not yet seen) at the end of each simulated
    day, under one scenario."""

    scenario: str
    list_size: tuple[int, ...]
    breaches: int


def service_loads(rows: list[Row]) -> list[ServiceLoad]:
    """Each service's expected arrivals and slots offered over the weeks, busiest first."""
    loads: dict[str, list[float]] = {}
    for row in rows:
        sums = loads.setdefault(row["service_code"], [0.0, 0.0, 0.0])
        sums[0] += float(row["expected_arrivals"] or 0)
        sums[1] += int(row["slots_offered"] or 0)
        sums[2] += int(row["breaches_ahead"] or 0)
    return sorted(
        (ServiceLoad(code, round(a, 1), int(o), int(b)) for code, (a, o, b) in loads.items()),
        key=lambda load: (-load.expected_arrivals, load.service),
    )


def week_breaches(rows: list[Row]) -> list[WeekBreaches]:
    """Breaches ahead in each week, summed over the services."""
    weeks: dict[date, int] = {}
    for row in rows:
        week = row["week_starting"]
        weeks[week] = weeks.get(week, 0) + int(row["breaches_ahead"] or 0)
    return [WeekBreaches(week, count) for week, count in sorted(weeks.items())]


def site_demand(world: World, weeks: int) -> list[SiteDemand]:
    """Each site's unmet demand (see SiteDemand) over ``weeks`` weeks."""
    lists = waiting_nearest(world)
    slots = world.slots
    soon = (slots["open"] > 0) & (slots["days_until"] <= weeks * 7)
    code_of = {service_id: code for code, (service_id, _) in world.services.items()}
    open_slots: dict[tuple[int, str], int] = {}
    for site, service in zip(
        slots["site"][soon].tolist(), slots["service"][soon].tolist(), strict=True
    ):
        key = (int(site), code_of.get(int(service), ""))
        open_slots[key] = open_slots.get(key, 0) + 1
    unmet: dict[int, int] = {}
    for (site, service), waiting in lists.items():
        short = max(waiting - open_slots.get((site, service), 0), 0)
        unmet[site] = unmet.get(site, 0) + short
    offering = {site for site, _ in world.site_services}
    at = {int(site): k for k, site in enumerate(world.sites["id"].tolist())}
    return [
        SiteDemand(
            site,
            float(world.sites["latitude"][at[site]]),
            float(world.sites["longitude"][at[site]]),
            unmet.get(site, 0),
        )
        for site in sorted(offering)
        if site in at
    ]


def course(scenario: str, outcome: Outcome) -> Course:
    """One simulated run's waiting list, day by day."""
    return Course(scenario, outcome.list_size, outcome.total_breaches)


def bounds(values: list[float]) -> tuple[float, float]:
    """The smallest and largest of ``values`` (0 and 1 when there are none or all agree)."""
    if not values:
        return 0.0, 1.0
    low, high = float(np.min(values)), float(np.max(values))
    return (low, high) if high > low else (low - 0.5, high + 0.5)
