"""The waiting-list simulator: answers queueing theory knows, policies on cases worked by hand,
reproducibility and common random numbers, scenarios, and the snapshot of a real database."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import asyncpg
import numpy as np
import pytest

from care_graph.db.pool import connect
from care_graph.simulation.engine import run
from care_graph.simulation.scenarios import Scenario
from care_graph.simulation.snapshot import snapshot
from care_graph.simulation.study import interval, study
from care_graph.simulation.timeline import capacity, draw
from care_graph.simulation.world import Assumptions, Policy, World

TODAY = date(2027, 1, 4)  # a Monday
SERVICE = 1
ROUTINE, URGENT = 2, 0


def quiet(**days: int) -> Assumptions:
    """Assumptions where every patient attends and nobody cancels."""
    return Assumptions(no_show_rate=0.0, cancellation_rate=0.0, **days)


def referrals(*rows: dict[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    """Waiting referrals as the snapshot reads them; every patient lives at the one site."""
    defaults = {
        "service": SERVICE,
        "tier": ROUTINE,
        "waited_days": 0,
        "days_to_breach": 10_000,
        "earliest_day": -100_000,
        "max_km": 1e9,
        "skill": -1,
        "latitude": 53.48,
        "longitude": -2.24,
    }
    filled = [{**defaults, **row, "id": k + 1} for k, row in enumerate(rows)]
    kinds = {"max_km": np.float64, "latitude": np.float64, "longitude": np.float64, "id": np.int64}
    return {
        name: np.array([row[name] for row in filled], dtype=kinds.get(name, np.int32))
        for name in ["id", *defaults]
    }


def daily_slots(days: int | Sequence[int], per_day: int = 1) -> dict[str, np.ndarray[Any, Any]]:
    """``per_day`` slots of 20 minutes from 09:00 on each of days 1..``days`` (or on the days
    listed) at site 1, staff 1."""
    listed = np.arange(1, days + 1) if isinstance(days, int) else np.array(days)
    day = np.repeat(listed, per_day)
    n = len(day)
    return {
        "id": np.arange(1, n + 1, dtype=np.int64),
        "service": np.full(n, SERVICE, dtype=np.int32),
        "site": np.ones(n, dtype=np.int32),
        "staff": np.ones(n, dtype=np.int32),
        "minutes_from_now": day * 1440 + np.tile(np.arange(per_day) * 20, len(listed)),
        "days_until": day.astype(np.int32),
        "open": np.ones(n, dtype=np.int32),
        "minute_of_day": (540 + np.tile(np.arange(per_day) * 20, len(listed))).astype(np.int32),
    }


def world(
    waiting: dict[str, np.ndarray[Any, Any]],
    slots: dict[str, np.ndarray[Any, Any]],
    arrivals: dict[tuple[int, int], float] | None = None,
) -> World:
    return World(
        region="NORTH_WEST",
        today=TODAY,
        now_minute=0,
        waiting=waiting,
        slots=slots,
        sites={
            "id": np.array([1, 2], dtype=np.int32),
            "latitude": np.array([53.48, 53.40]),
            "longitude": np.array([-2.24, -2.98]),
        },
        staff_masks={"staff": np.array([1], dtype=np.int32), "mask": np.array([0], np.int64)},
        arrivals=arrivals or {},
        services={"CARDIOLOGY": (SERVICE, 20)},
    )


def queue(rate: float, slots_a_day: int, days: int = 371) -> World:
    """One clinic of ``slots_a_day`` a day and Poisson arrivals at ``rate`` a day: a discrete-
    time queue (one routine referral on the list gives the arrivals their home)."""
    return world(
        referrals({"days_to_breach": 10_000}),
        daily_slots(days, slots_a_day),
        {(SERVICE, ROUTINE): rate},
    )


ONE_DAY_AHEAD = quiet(horizon_days=371, release_days=1, commit_days=1)


@pytest.mark.parametrize("policy", list(Policy))
def test_one_slot_a_day_is_the_m_d_1_queue(policy: Policy) -> None:
    # Booking tomorrow's one slot for the longest waiting makes the number in the system at
    # each day's end X' = max(X - 1, 0) + A with A ~ Poisson(rho): the M/D/1 queue's embedded
    # chain, whose mean is rho + rho**2 / (2 (1 - rho)) = 0.75 for rho = 0.5.
    rho, warm_up = 0.5, 30
    means, little = [], []
    for seed in range(1, 13):
        timeline = draw(queue(rho, 1), ONE_DAY_AHEAD, seed)
        outcome = run(timeline, ONE_DAY_AHEAD, policy)
        means.append(float(np.mean(outcome.list_size[warm_up:])))
        little.append(outcome)
    expected = rho + rho**2 / (2 * (1 - rho))
    estimate = interval(means)
    assert estimate.low - 0.03 <= expected <= estimate.high + 0.03, estimate
    assert abs(estimate.mean - expected) < 0.06
    for outcome in little:  # nobody is lost: seen or still in the system
        assert outcome.seen + outcome.waiting_at_end == outcome.arrived + 1
    # Little's law: the mean number in the system is the arrival rate times the mean stay,
    # here 0.75 / 0.5 = 1.5 days from referral to appointment
    stay = interval([o.mean_wait_days for o in little if o.mean_wait_days is not None])
    assert abs(stay.mean - expected / rho) < 0.12, stay
    # every slot a day goes to someone while anyone waits: utilisation is about rho
    assert abs(np.mean([o.utilisation for o in little]) - rho) < 0.03


def test_an_overloaded_clinic_grows_by_the_excess_each_day() -> None:
    # two referrals a day for one slot a day: the list grows by one a day and the clinic is full
    assumptions = quiet(horizon_days=300, release_days=7, commit_days=3)
    slopes, used = [], []
    for seed in range(1, 6):
        outcome = run(draw(queue(2.0, 1), assumptions, seed), assumptions, Policy.CARE_GRAPH)
        sizes = np.array(outcome.list_size, dtype=np.float64)
        slopes.append(float(np.polyfit(np.arange(50, 300), sizes[50:300], 1)[0]))
        used.append(outcome.utilisation)
    assert abs(np.mean(slopes) - 1.0) < 0.05
    assert min(used) > 0.99


def contested() -> World:
    """A routine referral that has waited long and an urgent one due tomorrow, both wanting
    the one slot of day 1; the next slot is on day 3."""
    slots = daily_slots(3)
    slots = {name: values[[0, 2]] for name, values in slots.items()}
    return world(
        referrals(
            {"tier": ROUTINE, "waited_days": 90, "days_to_breach": 36},
            {"tier": URGENT, "waited_days": 1, "days_to_breach": 1},
        ),
        slots,
    )


def test_first_come_first_served_lets_the_urgent_referral_breach_and_care_graph_does_not() -> None:
    assumptions = quiet(horizon_days=7, release_days=7, commit_days=7)
    timeline = draw(contested(), assumptions, 1)
    fcfs = run(timeline, assumptions, Policy.FIRST_COME_FIRST_SERVED)
    by_priority = run(timeline, assumptions, Policy.PRIORITY_GREEDY)
    optimal = run(timeline, assumptions, Policy.CARE_GRAPH)
    assert fcfs.breaches == (1, 0, 0)  # the routine referral took day 1; urgent seen day 3
    assert by_priority.breaches == (0, 0, 0)
    assert optimal.breaches == (0, 0, 0)
    assert fcfs.seen == by_priority.seen == optimal.seen == 2


def test_care_graph_keeps_a_planned_slot_open_for_a_more_pressing_arrival() -> None:
    # One slot on day 10, a routine referral waiting now. An urgent referral arrives later;
    # care_graph commits only 2 days ahead, so the urgent one still gets the slot.
    slots = {name: values[[9]] for name, values in daily_slots(10).items()}
    waiting = referrals({"tier": ROUTINE, "waited_days": 30, "days_to_breach": 500})
    arrivals = {(SERVICE, URGENT): 0.05}
    assumptions = quiet(horizon_days=30, release_days=30, commit_days=2)
    scenario_world = world(waiting, slots, arrivals)
    seed = next(
        seed
        for seed in range(1, 200)
        if (lambda t: ((t.arrival_day >= 0) & (t.arrival_day < 7)).sum() == 1)(
            draw(scenario_world, assumptions, seed)
        )
    )
    timeline = draw(scenario_world, assumptions, seed)
    urgent_row = int(np.flatnonzero(timeline.arrival_day >= 0)[0])
    assert timeline.referrals["days_to_breach"][urgent_row] >= 10  # reachable in time
    optimal = run(timeline, assumptions, Policy.CARE_GRAPH)
    fcfs = run(timeline, assumptions, Policy.FIRST_COME_FIRST_SERVED)
    # the urgent referral is seen on day 10 by care_graph; first come, first served gave
    # the slot away before it arrived, so it is never seen and breaches within the horizon
    assert optimal.breaches[0] == 0
    assert fcfs.breaches[0] == 1
    assert optimal.seen == fcfs.seen == 1


def test_the_same_seed_gives_the_same_outcome_and_the_warm_matcher_agrees_with_a_cold_one() -> None:
    assumptions = Assumptions(horizon_days=60)
    busy = queue(3.0, 2, days=60)
    first = run(draw(busy, assumptions, 3), assumptions, Policy.CARE_GRAPH)
    again = run(draw(busy, assumptions, 3), assumptions, Policy.CARE_GRAPH)
    cold = run(draw(busy, assumptions, 3), assumptions, Policy.CARE_GRAPH, cold=True)
    assert replace(first, first_day_seconds=0.0, seconds_per_day=0.0) == replace(
        again, first_day_seconds=0.0, seconds_per_day=0.0
    )
    assert (first.seen, first.breaches) == (cold.seen, cold.breaches)
    other = run(draw(busy, assumptions, 4), assumptions, Policy.CARE_GRAPH)
    assert other.list_size != first.list_size


def test_an_unchanged_scenario_differs_by_exactly_nothing_and_added_sessions_help() -> None:
    assumptions = Assumptions(horizon_days=56)
    busy = queue(3.0, 2, days=56)
    more = Scenario.from_json(
        {
            "name": "more",
            "add": [
                {
                    "staff": 1,
                    "site": 1,
                    "service": "CARDIOLOGY",
                    "weekdays": [1, 2, 3, 4, 5],
                    "starts": "14:00",
                    "ends": "15:00",
                    "from": str(TODAY + timedelta(days=1)),
                    "to": str(TODAY + timedelta(days=56)),
                }
            ],
        }
    )
    same = Scenario(name="same")
    result = study(
        busy,
        assumptions,
        policies=[Policy.CARE_GRAPH],
        scenarios=[Scenario(), same, more],
        replications=4,
    )
    nothing = result.difference("same", Policy.CARE_GRAPH, "baseline")
    assert all(change.mean == change.low == change.high == 0 for change in nothing.values())
    helped = result.difference("more", Policy.CARE_GRAPH, "baseline")
    assert helped["seen"].low > 0  # three more slots a weekday are used
    assert helped["breaches"].mean <= 0


def test_removed_sessions_take_their_slots_away_and_the_published_weeks_repeat() -> None:
    plain = world(referrals({}), daily_slots(14, 3))
    grown = capacity(plain, 42)
    assert len(grown["days_until"]) == 42 * 3  # two published weeks laid end to end thrice
    assert (grown["id"][grown["days_until"] > 14] == -1).all()
    closed = Scenario.from_json(
        {
            "name": "closed",
            "remove": [
                {
                    "site": 1,
                    "service": "CARDIOLOGY",
                    "weekdays": [1],
                    "starts": "09:00",
                    "ends": "09:30",
                    "from": str(TODAY),
                    "to": str(TODAY + timedelta(days=41)),
                }
            ],
        }
    )
    left = closed.capacity(plain, grown)
    mondays = [day for day in range(1, 42) if (TODAY + timedelta(days=day)).isoweekday() == 1]
    # the 09:00 and 09:20 slots of each Monday go; the 09:40 one stays
    assert len(left["days_until"]) == 42 * 3 - 2 * len(mondays)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "a scenario is a JSON object"),
        ({"nmae": "x"}, "unknown scenario field 'nmae'"),
        ({"add": [{"site": 1, "service": "X", "from": "2027-01-01", "to": "2027-01-02"}]},
         "added sessions name their staff"),
        ({"add": [{"staff": 1, "site": 1, "service": "X", "from": "soon", "to": "later"}]},
         "'from' and 'to' are dates"),
        ({"travel_factor": 0}, "travel_factor must be above 0"),
        ({"travel_factor": True}, "travel_factor must be a number"),
        ({"remove": [{"site": 1, "service": "X", "from": "2027-01-01", "to": "2029-01-01"}]},
         "'to' falls 0 to"),
        ({"remove": [{"site": 1, "service": "X", "weekdays": [8], "from": "2027-01-01",
                      "to": "2027-01-02"}]}, "weekdays are 1 (Monday) to 7"),
        ({"add": [{}] * 501}, "at most 500"),
    ],
)  # fmt: skip
def test_a_bad_scenario_is_refused_naming_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Scenario.from_json(data)


def test_an_unknown_service_in_a_scenario_is_refused_against_the_world() -> None:
    bad = Scenario.from_json({"arrival_factors": {"DERMATOLOGY": 2}})
    with pytest.raises(ValueError, match="unknown service 'DERMATOLOGY'"):
        bad.world(queue(1.0, 1, days=7))


def test_assumptions_out_of_range_are_refused() -> None:
    for bad in (
        {"horizon_days": 0},
        {"horizon_days": 400},
        {"commit_days": 50, "release_days": 42},
        {"no_show_rate": 1.0},
        {"cancellation_rate": -0.1},
    ):
        with pytest.raises(ValueError, match=r"horizon|planned|probability"):
            Assumptions(**bad)


def test_the_snapshot_reads_what_the_database_holds(seeded_url: str) -> None:
    async def both() -> tuple[World, dict[str, int]]:
        connection = await connect(seeded_url)
        try:
            taken = await snapshot(connection, "NORTH_WEST")
            counts = await connection.fetchrow(
                """
                SELECT
                  (SELECT count(*) FROM referrals r JOIN patients p ON p.id = r.patient_id
                   WHERE p.region_code = 'NORTH_WEST' AND r.status IN ('SUBMITTED', 'ACCEPTED')
                     AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.referral_id = r.id
                       AND a.status IN ('pending', 'booked', 'arrived', 'checked-in'))
                  ) AS waiting,
                  (SELECT count(*) FROM slots s JOIN sites t ON t.id = s.site_id
                   WHERE t.region_code = 'NORTH_WEST' AND s.starts_at > now()
                     AND s.status NOT IN ('busy-unavailable', 'entered-in-error')) AS slots,
                  (SELECT count(*) FROM referrals r JOIN patients p ON p.id = r.patient_id
                   WHERE p.region_code = 'NORTH_WEST'
                     AND (r.received_at AT TIME ZONE 'Europe/London')::date
                         > (now() AT TIME ZONE 'Europe/London')::date - 56
                     AND (r.received_at AT TIME ZONE 'Europe/London')::date
                         <= (now() AT TIME ZONE 'Europe/London')::date) AS arrived
                """
            )
            assert counts is not None
            return taken, dict(counts)
        finally:
            await connection.close()

    taken, counts = asyncio.run(both())
    assert len(taken.waiting["id"]) <= counts["waiting"]  # less those with an offer pending
    assert len(taken.waiting["id"]) > 0
    assert len(taken.slots["id"]) == counts["slots"]
    assert round(sum(taken.arrivals.values()) * 56) == counts["arrived"]
    outcome = run(draw(taken, Assumptions(horizon_days=14), 1), Assumptions(horizon_days=14),
                  Policy.CARE_GRAPH)  # fmt: skip
    assert outcome.seen > 0


def test_an_unknown_region_or_service_is_refused(seeded_url: str) -> None:
    from care_graph.errors import CareGraphError

    async def attempt(region: str, services: list[str] | None) -> None:
        connection: asyncpg.Connection[Any] = await connect(seeded_url)
        try:
            await snapshot(connection, region, services)
        finally:
            await connection.close()

    with pytest.raises(CareGraphError, match="unknown region"):
        asyncio.run(attempt("ATLANTIS", None))
    with pytest.raises(CareGraphError, match="unknown service"):
        asyncio.run(attempt("NORTH_WEST", ["NOT_A_SERVICE"]))
