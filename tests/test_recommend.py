"""Recommending capacity: candidates that keep the rostering rules, the warm matcher's value of
a candidate against a cold solve, the recommendation on a region worked by hand, and the
whole path on a real database (snapshot, recommend, publish the draft roster)."""

from __future__ import annotations

import asyncio
from datetime import date, time, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from care_graph.api.ids import encode_global_id, key_of_type
from care_graph.auth import Role
from care_graph.db.pool import connect
from care_graph.domain.rostering import Shift, StaffTerms
from care_graph.matcher import Matcher
from care_graph.matching.cost import CostModel
from care_graph.simulation import recommend as recommending
from care_graph.simulation.scenarios import Scenario
from care_graph.simulation.snapshot import snapshot
from care_graph.simulation.study import study
from care_graph.simulation.timeline import draw
from care_graph.simulation.world import Assumptions, Policy, World
from care_graph.testing import DatabaseFactory, bearer, live_server
from tests.test_cli import care_graph
from tests.test_simulation import SERVICE, TODAY, daily_slots, quiet, referrals

HORIZON = quiet(horizon_days=56)
CONTRACT = 12 * 60  # staff 1 may work 12 hours a week
PUBLISHED_MONDAYS = (7, 14, 28)  # staff 1's Monday morning clinics, days from today
LEAVE = (21, 25)  # staff 1's leave, days from today


def ordinal(day: int) -> int:
    return (TODAY + timedelta(days=day)).toordinal()


def region() -> World:
    """80 routine referrals living at site 1, within 10 km of it only, breaching on day 40;
    staff 1 (site 1, 12 hours a week, on leave days 21-25) runs Monday mornings; staff 2
    works at site 2, 50 km away; staff 3 at site 1 lacks the skill."""
    skill = frozenset({"CARDIOLOGY"})
    return World(
        region="NORTH_WEST",
        today=TODAY,
        now_minute=0,
        waiting=referrals(*({"days_to_breach": 40, "max_km": 10.0} for _ in range(80))),
        slots=daily_slots(PUBLISHED_MONDAYS, 12),  # staff 1's Monday mornings at site 1
        sites={
            "id": np.array([1, 2], dtype=np.int32),
            "latitude": np.array([53.48, 53.40]),
            "longitude": np.array([-2.24, -2.98]),
        },
        staff_masks={"staff": np.array([1, 2, 3], dtype=np.int32), "mask": np.zeros(3, np.int64)},
        arrivals={},
        services={"CARDIOLOGY": (SERVICE, 20)},
        staff=(
            StaffTerms(
                1,
                1,
                skill,
                contracted_minutes_week=CONTRACT,
                leave=((ordinal(LEAVE[0]), ordinal(LEAVE[1])),),
            ),
            StaffTerms(2, 2, skill),
            StaffTerms(3, 1, frozenset()),
        ),
        shifts={1: [Shift(ordinal(day), 540, 780) for day in PUBLISHED_MONDAYS]},
        site_services=frozenset({(1, SERVICE), (2, SERVICE)}),
    )


def test_candidates_keep_the_rostering_rules() -> None:
    world = region()
    found = recommending.candidates(world, HORIZON, lead_days=7)
    assert {c.staff for c in found} == {1, 2}  # staff 3 lacks the skill
    assert all(c.site == (1 if c.staff == 1 else 2) for c in found)
    projected = recommending.projected_shifts(world, HORIZON.horizon_days)[1]
    # the published Mondays repeat every 28 days: days 35, 42 and 56 are worked too
    assert sorted(s.day - TODAY.toordinal() for s in projected) == [7, 14, 28, 35, 42, 56]
    busy = {s.day - TODAY.toordinal() for s in projected}
    for candidate in found:
        assert min(candidate.days) >= 7
        assert max(candidate.days) < HORIZON.horizon_days
        assert all((TODAY + timedelta(days=d)).isoweekday() == candidate.weekday
                   for d in candidate.days)  # fmt: skip
        if candidate.staff == 1:
            assert not any(LEAVE[0] <= day <= LEAVE[1] for day in candidate.days)
            if candidate.weekday == 1 and candidate.starts == time(9):
                assert not busy & set(candidate.days)  # never over a published clinic
    monday_morning = next(c for c in found if c.place == (1, "CARDIOLOGY", 1, time(9)))
    assert monday_morning.days == (49,)  # the one Monday neither worked nor on leave
    with pytest.raises(ValueError, match="within the horizon"):
        recommending.candidates(world, HORIZON, lead_days=56)


def test_the_warm_value_of_a_candidate_is_what_a_cold_solve_finds() -> None:
    world = region()
    found = recommending.candidates(world, HORIZON, lead_days=7)
    timeline = draw(world, HORIZON, 1)
    instance = recommending._instance(world, timeline, found, CostModel(), HORIZON.horizon_days)
    n_slots = len(instance.slot_days)
    breach = timeline.referrals["days_to_breach"].astype(np.int64)

    def cold(offered: np.ndarray[Any, Any]) -> tuple[int, int]:
        matcher = Matcher(
            *instance.graph,
            n_slots,
            timeline.referrals["tier"],
            unavailable_slots=np.setdiff1d(instance.withheld, offered),
        )
        columns = matcher.solver.match_col
        unseen = recommending._unseen(breach, HORIZON.horizon_days, instance.slot_days, columns)
        return int(np.count_nonzero(unseen)), matcher.result().total_weight

    base_unseen, base_weight = cold(np.zeros(0, dtype=np.int64))
    assert base_unseen == instance.unseen() == 80 - 48  # 48 published slots by day 40
    valued = 0
    for index, candidate in enumerate(found):
        slots = instance.slots_of(index, candidate.days)
        value = instance.value(slots)
        assert value == base_unseen - cold(slots)[0], candidate
        assert instance.matcher.result().total_weight == base_weight  # undone exactly
        valued += value > 0
    assert valued > 0


def test_the_recommendation_sees_everyone_in_time_within_each_contract() -> None:
    world = region()
    chosen = recommending.recommend(world, HORIZON, 10, lead_days=7)
    assert chosen.baseline_breaches == 32
    assert chosen.avoided == 32  # enough hours for everyone; then no candidate helps
    assert 1 <= len(chosen.picks) < 10
    assert all(pick.candidate.staff == 1 and pick.avoided > 0 for pick in chosen.picks)
    minutes: dict[int, int] = {}
    for day in (*PUBLISHED_MONDAYS, 35, 42, 56):
        week = (ordinal(day) - 1) // 7
        minutes[week] = minutes.get(week, 0) + 240
    clinics: set[tuple[int, int]] = set()
    for pick in chosen.picks:
        for day in pick.candidate.days:
            shift = pick.candidate.shift(TODAY, day)
            minutes[shift.week] = minutes.get(shift.week, 0) + shift.minutes
            assert (day, shift.starts) not in clinics  # no two clinics at once
            clinics.add((day, shift.starts))
    assert max(minutes.values()) <= CONTRACT
    # the draft roster and the scenario hold the same clinics as the picks
    roster_days = {
        (date.fromisoformat(entry["firstDay"]), date.fromisoformat(entry["lastDay"]))
        for entry in chosen.roster()
    }
    assert sum((last - first).days // 7 + 1 for first, last in roster_days) == len(clinics)
    scenario = chosen.scenario()
    assert sum(len(sessions.days(TODAY)) for sessions in scenario.add) == len(clinics)
    verdict = recommending.confirm(world, HORIZON, chosen, replications=2)
    gained = verdict.difference("recommended", Policy.CARE_GRAPH, "baseline")["breaches"]
    assert gained.mean == -32  # the simulator agrees: nobody breaches any more
    with pytest.raises(ValueError, match="budget"):
        recommending.recommend(world, HORIZON, 0)


def test_the_simple_rule_places_clinics_at_the_longest_list_and_keeps_the_rules() -> None:
    world = region()
    found = recommending.candidates(world, HORIZON, lead_days=7)
    simple = recommending.simple_rule(world, found, 5)
    # twelve hours a week hold three clinics of four: then staff 1 has no hours left
    assert len(simple) == 3
    assert all(c.site == 1 for c in simple)  # everyone lives nearest site 1
    assert [(c.weekday, c.starts.hour) for c in simple] == [(1, 9), (3, 13), (5, 9)]
    minutes: dict[int, int] = {}
    for day in (*PUBLISHED_MONDAYS, 35, 42, 56):
        week = (ordinal(day) - 1) // 7
        minutes[week] = minutes.get(week, 0) + 240
    for candidate in simple:
        for day in candidate.days:
            shift = candidate.shift(TODAY, day)
            minutes[shift.week] = minutes.get(shift.week, 0) + shift.minutes
    assert max(minutes.values()) <= CONTRACT


def test_the_snapshot_reads_staff_terms_and_shifts(seeded_url: str) -> None:
    async def read() -> tuple[World, dict[str, Any]]:
        connection = await connect(seeded_url)
        try:
            world = await snapshot(connection, "LONDON")
            counts = await connection.fetchrow(
                """
                WITH mine AS (
                  SELECT s.id FROM staff s WHERE s.base_site_id IN
                    (SELECT id FROM sites WHERE region_code = 'LONDON')
                  OR s.id IN (SELECT staff_id FROM staff_sites w JOIN sites t ON t.id = w.site_id
                              WHERE t.region_code = 'LONDON'))
                SELECT (SELECT count(*) FROM mine) AS staff,
                       (SELECT count(*) FROM roster_shifts WHERE staff_id IN (SELECT id FROM mine)
                        AND (starts_at AT TIME ZONE 'Europe/London')::date
                            >= (now() AT TIME ZONE 'Europe/London')::date) AS shifts,
                       (SELECT sum(contracted_minutes_week) FROM staff
                        WHERE id IN (SELECT id FROM mine)) AS minutes,
                       (SELECT count(*) FROM site_services ss JOIN sites t ON t.id = ss.site_id
                        WHERE t.region_code = 'LONDON') AS offered
                """
            )
            assert counts is not None
            return world, dict(counts)
        finally:
            await connection.close()

    world, counts = asyncio.run(read())
    assert len(world.staff) == counts["staff"] > 0
    assert sum(len(shifts) for shifts in world.shifts.values()) == counts["shifts"] > 0
    assert sum(t.contracted_minutes_week for t in world.staff) == counts["minutes"]
    assert len(world.site_services) == counts["offered"]
    assert all(t.skills for t in world.staff)


# 40 routine referrals, for a specialty that a North West clinician delivers at their base
# site, all breaching in 30 days: demand that more of that clinician's clinics would meet
MORE_DEMAND = """
WITH chosen AS (
  SELECT s.base_site_id AS site_id, v.id AS service_id
  FROM staff s JOIN sites t ON t.id = s.base_site_id AND t.region_code = 'NORTH_WEST'
  JOIN staff_skills k ON k.staff_id = s.id JOIN services v ON v.code = k.skill_code
  JOIN site_services o ON o.site_id = s.base_site_id AND o.service_id = v.id
  WHERE v.kind = 'SPECIALTY' ORDER BY s.id, v.id LIMIT 1)
INSERT INTO referrals (ubrn, patient_id, referrer_name, referrer_kind, referrer_subject,
                       to_service_id, priority, status, received_at, clock_start, breach_date,
                       max_travel_km)
SELECT (800000000000 + n)::text, p.id, 'Dr Test', 'GP', 'gp-test', chosen.service_id,
       'ROUTINE', 'ACCEPTED', now() - interval '100 days', now() - interval '100 days',
       current_date + 30, 500
FROM chosen, generate_series(1, 40) n,
     LATERAL (SELECT id FROM patients WHERE region_code = 'NORTH_WEST'
              ORDER BY id OFFSET n % 10 LIMIT 1) p;
"""


def test_recommend_writes_a_draft_roster_that_publishes_as_it_is(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    own_seeded_url = databases.create(seeded=True, anchor=date.today(), sql=MORE_DEMAND)
    roster, scenario = tmp_path / "roster.json", tmp_path / "scenario.json"
    done = care_graph(
        "recommend", "--region", "NORTH_WEST", "--sessions", "3", "--weeks", "8",
        "--replications", "1", "--compare-simple", "--roster-file", str(roster),
        "--scenario-file", str(scenario), "--json", database_url=own_seeded_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    answer = orjson.loads(done.stdout)
    picks = answer["recommendation"]["picks"]
    assert picks, "the added demand is met by more clinics"
    assert {run["scenario"] for run in answer["simulation"]["runs"]} == {
        "baseline", "recommended", recommending.SIMPLE_RULE,
    }  # fmt: skip
    assert "[recommend] valuing and choosing" in done.stderr
    simulated = care_graph(
        "simulate", "--region", "NORTH_WEST", "--weeks", "8", "--replications", "1",
        "--policy", "care_graph", "--scenario", str(scenario), database_url=own_seeded_url,
    )  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr
    assert "recommended - baseline" in simulated.stdout

    async def slots() -> int:
        connection = await connect(own_seeded_url)
        try:
            return int(await connection.fetchval("SELECT count(*) FROM slots"))
        finally:
            await connection.close()

    before = asyncio.run(slots())
    published = care_graph("roster", "publish", str(roster), database_url=own_seeded_url)
    assert published.returncode == 0, published.stderr
    assert asyncio.run(slots()) - before == sum(pick["slots"] for pick in picks)
    again = care_graph("roster", "publish", str(roster), database_url=own_seeded_url)
    assert again.returncode == 1
    assert "entry 1: the roster overlaps shifts" in again.stderr
    assert "(ROSTER_OVERLAP)" in again.stderr
    assert asyncio.run(slots()) - before == sum(pick["slots"] for pick in picks)
    bad = tmp_path / "bad.json"
    bad.write_text('{"roster": [{"staff": 1}]}')
    refused = care_graph("roster", "publish", str(bad), database_url=own_seeded_url)
    assert refused.returncode == 2
    assert "a roster entry is an object" in refused.stderr


RECOMMEND = """mutation($r: String!, $b: Int!, $w: Int!) {
  recommendCapacity(region: $r, budget: $b, weeks: $w) {
    feasible considered baselineBreaches breachesAvoided
    clinics { staffId siteId service weekday starts ends days slots breachesAvoided }
    roster { staffId siteId service weekdays starts ends firstDay lastDay } } }"""
APPLY = """mutation($i: ApplyCapacityPlanInput!) { applyCapacityPlan(input: $i) { slotCount } }"""


@pytest.fixture
def demand_url(databases: DatabaseFactory) -> str:
    """The tiny demo anchored today with MORE_DEMAND, in a database of the test's own."""
    return databases.create(seeded=True, anchor=date.today(), sql=MORE_DEMAND)


async def test_graphql_recommends_what_the_command_does_and_applies_its_roster_whole(
    demand_url: str,
) -> None:
    url = demand_url
    done = care_graph(
        "recommend", "--region", "NORTH_WEST", "--sessions", "3", "--weeks", "8",
        "--replications", "0", "--json", database_url=url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    by_command = orjson.loads(done.stdout)["recommendation"]

    async with (
        live_server(url) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=120) as client,
    ):

        async def ask(query: str, role: Role, **variables: Any) -> dict[str, Any]:
            answer = await client.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers=bearer(role, "planner", 1 if role is Role.PATIENT else None),
            )
            body: dict[str, Any] = answer.json()
            return body

        shown = await ask(RECOMMEND, Role.SCHEDULER, r="NORTH_WEST", b=3, w=8)
        assert "errors" not in shown, shown
        recommendation = shown["data"]["recommendCapacity"]
        assert recommendation["breachesAvoided"] == by_command["avoided"] > 0
        assert [
            (
                key_of_type(c["staffId"], "Staff"),
                key_of_type(c["siteId"], "Site"),
                c["service"],
                c["weekday"],
                c["days"],
                c["breachesAvoided"],
            )
            for c in recommendation["clinics"]
        ] == [
            (p["staff"], p["site"], p["service"], p["weekday"], p["days"], p["avoided"])
            for p in by_command["picks"]
        ]
        for variables, code in (
            ({"b": 0, "w": 8}, "INVALID_ARGUMENT"),
            ({"b": 3, "w": 1}, "INVALID_ARGUMENT"),
        ):
            refused = await ask(RECOMMEND, Role.SCHEDULER, r="NORTH_WEST", **variables)
            assert refused["errors"][0]["extensions"]["code"] == code
        patient = await ask(RECOMMEND, Role.PATIENT, r="NORTH_WEST", b=3, w=8)
        assert patient["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        unknown = await ask(RECOMMEND, Role.SCHEDULER, r="ATLANTIS", b=3, w=8)
        assert unknown["errors"][0]["extensions"]["code"] == "INVALID_ARGUMENT"

        roster = {"roster": recommendation["roster"]}
        applied = await ask(APPLY, Role.SCHEDULER, i=roster)
        assert "errors" not in applied, applied
        slots = sum(c["slots"] for c in recommendation["clinics"])
        assert applied["data"]["applyCapacityPlan"] == {"slotCount": slots}
        again = await ask(APPLY, Role.SCHEDULER, i=roster)
        assert again["errors"][0]["extensions"]["code"] == "ROSTER_OVERLAP"
        assert again["errors"][0]["message"].startswith("entry 1: ")
        referrer = await ask(APPLY, Role.REFERRER, i=roster)
        assert referrer["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    connection = await connect(url)
    try:
        added = await connection.fetchval(
            "SELECT count(*) FROM audit_events WHERE operation = 'PUBLISH_ROSTER'"
        )
    finally:
        await connection.close()
    assert added == len(recommendation["roster"])  # applied once: the retry wrote nothing


SIMULATE = """mutation($r: String!, $s: ScenarioInput, $w: Int!, $n: Int!) {
  simulateCapacity(region: $r, scenario: $s, weeks: $w, replications: $n) {
    name breaches { mean low high } seen { mean } p92WeeksWaiting { mean }
    breachesAgainstBaseline { mean low high } } }"""


async def test_graphql_simulates_a_scenario_as_the_simulator_does(demand_url: str) -> None:
    connection = await connect(demand_url)
    try:
        world = await snapshot(connection, "NORTH_WEST")
        site = int(world.sites["id"][0])
    finally:
        await connection.close()
    name = "more referrals, wider travel"
    scenario = {
        "name": name,
        "travelFactor": 1.5,
        "arrivalFactors": [{"service": "*", "factor": 1.2}],
    }
    async with (
        live_server(demand_url) as address,
        httpx.AsyncClient(base_url=f"http://{address}", timeout=120) as client,
    ):

        async def ask(role: Role, **variables: Any) -> dict[str, Any]:
            answer = await client.post(
                "/graphql",
                json={"query": SIMULATE, "variables": variables},
                headers=bearer(role, "planner", 1 if role is Role.PATIENT else None),
            )
            body: dict[str, Any] = answer.json()
            return body

        shown = await ask(Role.SCHEDULER, r="NORTH_WEST", s=scenario, w=6, n=2)
        assert "errors" not in shown, shown
        baseline, changed = shown["data"]["simulateCapacity"]
        week = {"firstDay": "2027-01-04", "lastDay": "2027-01-08", "service": "CARDIOLOGY"}
        bad_site = {"name": "x", "add": [{**week, "siteId": "nope", "staffId": None}]}
        no_staff = {"name": "x", "add": [{**week, "siteId": encode_global_id("Site", site)}]}
        for variables, code in (
            ({"s": None, "w": 0, "n": 1}, "INVALID_ARGUMENT"),
            ({"s": None, "w": 6, "n": 11}, "INVALID_ARGUMENT"),
            ({"s": {"name": "baseline"}, "w": 6, "n": 1}, "INVALID_ARGUMENT"),
            ({"s": {"name": "x", "travelFactor": 0}, "w": 6, "n": 1}, "INVALID_ARGUMENT"),
            ({"s": bad_site, "w": 6, "n": 1}, "INVALID_ARGUMENT"),
            ({"s": no_staff, "w": 6, "n": 1}, "INVALID_ARGUMENT"),
        ):
            refused = await ask(Role.SCHEDULER, r="NORTH_WEST", **variables)
            assert refused["errors"][0]["extensions"]["code"] == code, variables
        patient = await ask(Role.PATIENT, r="NORTH_WEST", s=None, w=6, n=1)
        assert patient["errors"][0]["extensions"]["code"] == "FORBIDDEN"

    direct = study(
        world,
        Assumptions(horizon_days=42),
        policies=(Policy.CARE_GRAPH,),
        scenarios=(
            Scenario(),
            Scenario.from_json({"name": name, "travel_factor": 1.5, "arrival_factors": {"*": 1.2}}),
        ),
        replications=2,
    )
    assert baseline["name"] == "baseline"
    assert baseline["breachesAgainstBaseline"] is None
    expected = direct.summary("baseline", Policy.CARE_GRAPH)["breaches"]
    assert baseline["breaches"] == {"mean": expected.mean, "low": expected.low,
                                    "high": expected.high}  # fmt: skip
    change = direct.difference(name, Policy.CARE_GRAPH, "baseline")["breaches"]
    assert changed["breachesAgainstBaseline"] == {"mean": change.mean, "low": change.low,
                                                  "high": change.high}  # fmt: skip
