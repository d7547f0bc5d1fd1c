"""Proposing a matching from the database: a small hand-made waiting list with known answers —
who is matched where, why the others are not, and the summary figures."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import asyncpg
import orjson
import pytest

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role
from care_graph.db.matching_store import candidates_for_slots
from care_graph.db.pool import OneConnection, connect, create_pool
from care_graph.domain.booking import Actor
from care_graph.domain.commit import commit_plan
from care_graph.domain.offers import offer_slots
from care_graph.domain.waiting_times import Priority
from care_graph.matching.compare import compare
from care_graph.matching.cost import CostModel
from care_graph.matching.plan import (
    Assignment,
    Plan,
    PriorityCount,
    Scope,
    Spread,
    Unmatched,
    Unplaced,
    keep,
    kept,
    pairs_of,
    propose,
    propose_with_instance,
)
from care_graph.testing import DatabaseFactory, asgi_client, bearer, fetch_one

# Site 1 in Camden has two cardiology slots (in 3 and 5 days); site 2 in Manchester has one.
# Referrals: 1 urgent and 2 routine-long-waiting near Camden; 3 routine, short wait, near
# Camden; 4 near Camden but needs a skill nobody there has; 5 near Manchester.
WORLD = """
INSERT INTO regions VALUES ('LONDON', 'London'), ('NORTH_WEST', 'North West');
INSERT INTO skills VALUES ('CARDIOLOGY', 'Cardiology'), ('SEDATION', 'Conscious sedation');
INSERT INTO services (id, code, name, kind, slot_minutes)
    VALUES (1, 'CARDIOLOGY', 'Cardiology', 'SPECIALTY', 20);
INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude) VALUES
    (1, 'S1', 'Camden General', 'LONDON', 'Camden', 'NW1 1AA', 51.539, -0.143),
    (2, 'S2', 'Manchester Royal', 'NORTH_WEST', 'Manchester', 'M13 9WL', 53.463, -2.227);
INSERT INTO site_services VALUES (1, 1), (2, 1);
INSERT INTO staff (id, given_name, family_name, role, base_site_id) VALUES
    (1, 'Ada', 'Jones', 'CONSULTANT', 1), (2, 'Ben', 'Shaw', 'CONSULTANT', 2);
INSERT INTO staff_skills VALUES (1, 'CARDIOLOGY'), (2, 'CARDIOLOGY');
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at) VALUES
    (11, 1, 1, 1, date_trunc('day', now()) + interval '3 days 9 hours',
     date_trunc('day', now()) + interval '3 days 9 hours 20 minutes'),
    (12, 1, 1, 1, date_trunc('day', now()) + interval '5 days 9 hours',
     date_trunc('day', now()) + interval '5 days 9 hours 20 minutes'),
    (21, 1, 2, 2, date_trunc('day', now()) + interval '4 days 9 hours',
     date_trunc('day', now()) + interval '4 days 9 hours 20 minutes');
INSERT INTO patients (id, nhs_number, given_name, family_name, date_of_birth, postcode,
                      region_code, latitude, longitude) VALUES
    (1, '9434765919', 'Sam', 'Khan', '1970-05-04', 'NW1 2BB', 'LONDON', 51.54, -0.15),
    (2, '4010232137', 'Ivy', 'Shaw', '1981-02-11', 'M14 5AB', 'NORTH_WEST', 53.45, -2.22);
INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind, to_service_id,
                       priority, status, received_at, clock_start, breach_date,
                       max_travel_km, required_skill) VALUES
    (1, '100000000001', 1, 'Dr A', 'GP', 1, 'URGENT', 'ACCEPTED', now() - interval '2 days',
     now() - interval '2 days', current_date + 12, 30, NULL),
    (2, '100000000002', 1, 'Dr A', 'GP', 1, 'ROUTINE', 'ACCEPTED', now() - interval '90 days',
     now() - interval '90 days', current_date + 36, 30, NULL),
    (3, '100000000003', 1, 'Dr A', 'GP', 1, 'ROUTINE', 'ACCEPTED', now() - interval '10 days',
     now() - interval '10 days', current_date + 116, 30, NULL),
    (4, '100000000004', 1, 'Dr A', 'GP', 1, 'ROUTINE', 'ACCEPTED', now() - interval '95 days',
     now() - interval '95 days', current_date + 31, 30, 'SEDATION'),
    (5, '100000000005', 2, 'Dr B', 'GP', 1, 'ROUTINE', 'ACCEPTED', now() - interval '20 days',
     now() - interval '20 days', current_date + 106, 30, NULL);
"""


@pytest.fixture(scope="module")
def plan(databases: DatabaseFactory) -> Plan:
    url = databases.create(sql=WORLD)

    async def run() -> Plan:
        connection = await connect(url)
        try:
            return await propose(connection, Scope())
        finally:
            await connection.close()

    return asyncio.run(run())


Item = TypeVar("Item", Assignment, Unmatched)


def by_referral(items: list[Item]) -> dict[int, Item]:
    return {item.referral: item for item in items}


def test_the_urgent_and_the_longest_waiting_get_the_near_slots(plan: Plan) -> None:
    matched = by_referral(plan.assignments)
    assert sorted(matched) == [1, 2, 5]
    assert {matched[1].slot, matched[2].slot} == {11, 12}
    assert matched[5].slot == 21
    assert matched[1].priority == "URGENT"


@pytest.fixture(scope="module")
def preferring_world_url(databases: DatabaseFactory) -> str:
    # referral 5 prefers Camden first and Manchester second; referral 2 prefers Manchester only
    return databases.create(
        sql=WORLD
        + "UPDATE referrals SET preferred_site_ids = '{1,2}' WHERE id = 5;"
        + "UPDATE referrals SET preferred_site_ids = '{2}' WHERE id = 2;"
    )


async def test_every_preferred_site_earns_the_bonus(preferring_world_url: str) -> None:
    connection = await connect(preferring_world_url)
    try:
        plan = await propose(connection, Scope())
    finally:
        await connection.close()
    matched = by_referral(plan.assignments)
    bonus = CostModel().preferred_site_bonus
    assert matched[5].slot == 21  # Manchester, its second choice
    assert matched[5].breakdown["preference"] == bonus
    assert matched[2].slot in (11, 12)  # Camden: Manchester is out of its reach
    assert matched[2].breakdown["preference"] == 0
    assert matched[1].breakdown["preference"] == 0


def test_each_assignment_explains_its_weight(plan: Plan) -> None:
    for item in plan.assignments:
        assert sum(item.breakdown.values()) == item.weight
        assert item.breakdown["in_time"] > 0  # all three are seen before their breach
        assert item.km < 30


def test_the_unmatched_say_why(plan: Plan) -> None:
    unmatched = by_referral(plan.unmatched)
    assert sorted(unmatched) == [3, 4]
    assert unmatched[4].reason == Unplaced.NO_CAPACITY  # nobody near has the skill it needs
    assert unmatched[3].reason == Unplaced.TAKEN
    assert unmatched[3].best_slot == 11  # the soonest slot, which went to ...
    assert unmatched[3].went_to in (1, 2)
    assert (
        unmatched[3].went_to
        == by_referral([item for item in plan.assignments if item.slot == 11])[
            unmatched[3].went_to
        ].referral
    )


def test_summary_figures(plan: Plan) -> None:
    summary = plan.summary
    assert summary.referrals == 5
    assert summary.matched == 3
    assert summary.by_priority == (
        PriorityCount(Priority.URGENT, 1, 0),
        PriorityCount(Priority.TWO_WEEK_WAIT, 0, 0),
        PriorityCount(Priority.ROUTINE, 2, 2),
    )
    assert summary.seen_before_breach == 3
    assert summary.breaches_avoided == 2  # 1 and 2 breach within the horizon; 5 does not
    assert summary.breaches_expected == 1  # referral 4 breaches within the horizon
    assert summary.already_breached == 0
    # Sam lives 0.50 km from Camden (two bookings), Ivy 1.52 km from Manchester
    assert summary.travel_km == Spread(0.8, 1.4)
    assert summary.days_to_appointment == Spread(4.0, 4.9)  # days 3, 4 and 5
    assert set(plan.timings) == {"read", "candidates", "solve", "explain", "total"}


async def test_breaches_already_past_are_counted_apart(commit_world_url: str) -> None:
    connection = await connect(commit_world_url)
    try:
        await connection.execute("UPDATE referrals SET breach_date = current_date - 3 WHERE id = 4")
        summary = (await propose(connection, Scope())).summary
        nothing = (await propose(connection, Scope(services=["NO_SUCH_SERVICE"]))).summary
    finally:
        await connection.close()
    assert summary.already_breached == 1
    assert summary.breaches_expected == 0  # 4 is past its breach date; 3 breaches later
    assert nothing.matched == 0
    assert nothing.travel_km == Spread(None, None)
    assert nothing.days_to_appointment == Spread(None, None)


RUN = """mutation { runMatching(scope: {regions: ["LONDON", "NORTH_WEST"]}, mode: PROPOSE) { planKey
  summary { referrals matched seenBeforeBreach breachesAvoided breachesExpected alreadyBreached
            meanDaysToAppointment p95DaysToAppointment byPriority { priority matched unmatched } }
  assignments { referralId slotId priority breakdown { inTime travel } }
  unmatched { referralId reason bestSlotId wentToReferralId } } }"""


async def test_run_matching_through_graphql(databases_world_url: str) -> None:
    async with asgi_client(databases_world_url, headers=bearer(Role.SCHEDULER)) as client:
        body = (await client.post("/graphql", json={"query": RUN})).json()
    plan = body["data"]["runMatching"]
    assert plan["summary"]["referrals"] == 5
    assert plan["summary"]["matched"] == 3
    assert plan["summary"]["byPriority"][0] == {"priority": "URGENT", "matched": 1, "unmatched": 0}
    assert [
        plan["summary"][name]
        for name in (
            "seenBeforeBreach",
            "breachesAvoided",
            "breachesExpected",
            "alreadyBreached",
            "meanDaysToAppointment",
            "p95DaysToAppointment",
        )
    ] == [3, 2, 1, 0, 4.0, 4.9]
    assert plan["assignments"][0]["referralId"] == encode_global_id("Referral", 1)  # urgent first
    reasons = {item["referralId"]: item["reason"] for item in plan["unmatched"]}
    assert reasons == {
        encode_global_id("Referral", 3): Unplaced.TAKEN,
        encode_global_id("Referral", 4): Unplaced.NO_CAPACITY,
    }
    # proposing read the homes of the five waiting patients: one audit event says whose
    event = await fetch_one(
        databases_world_url,
        "SELECT actor, actor_role, detail FROM audit_events"
        " WHERE operation = 'READ' AND detail->>'purpose' = 'matching'"
        " ORDER BY id DESC LIMIT 1",
    )
    assert event is not None
    assert (event["actor"], event["actor_role"]) == ("tester", "scheduler")
    detail = event["detail"]  # jsonb, decoded by the connection
    assert sorted(detail["referrals"]) == [1, 2, 3, 4, 5]
    assert detail["plan"] == plan["planKey"]
    async with asgi_client(databases_world_url, headers=bearer(Role.PATIENT, "p", 1)) as client:
        refused = (await client.post("/graphql", json={"query": RUN})).json()
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    not_a_code = RUN.replace('["LONDON", "NORTH_WEST"]', '["LONDON\' OR 1=1"]')
    async with asgi_client(databases_world_url, headers=bearer(Role.SCHEDULER)) as client:
        bad = (await client.post("/graphql", json={"query": not_a_code})).json()
    assert bad["data"] is None
    assert bad["errors"][0]["extensions"]["code"] == "INVALID_ARGUMENT"
    assert "not a code" in bad["errors"][0]["message"]


@pytest.fixture(scope="module")
def databases_world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


@pytest.fixture
def skill_less_world_url(databases: DatabaseFactory) -> str:
    """The world and Cy, the highest staff id, with a Camden slot and no row in staff_skills."""
    return databases.create(
        sql=WORLD
        + """
        INSERT INTO staff (id, given_name, family_name, role, base_site_id)
            VALUES (3, 'Cy', 'Rees', 'CONSULTANT', 1);
        INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at) VALUES
            (13, 1, 1, 3, date_trunc('day', now()) + interval '6 days 9 hours',
             date_trunc('day', now()) + interval '6 days 9 hours 20 minutes');
        """
    )


async def test_a_clinician_with_no_skills_recorded_still_offers_slots(
    skill_less_world_url: str,
) -> None:
    async with asgi_client(skill_less_world_url, headers=bearer(Role.SCHEDULER)) as client:
        body = (await client.post("/graphql", json={"query": RUN})).json()
    assert "errors" not in body, body
    plan = body["data"]["runMatching"]
    assert plan["summary"]["matched"] == 4  # 1, 2 and 3 in Camden, 5 in Manchester
    reasons = {item["referralId"]: item["reason"] for item in plan["unmatched"]}
    assert reasons == {encode_global_id("Referral", 4): Unplaced.NO_CAPACITY}  # Cy has no sedation


def test_the_optimum_beats_greedy_booking(databases_world_url: str) -> None:
    async def run() -> dict[str, Any]:
        connection = await connect(databases_world_url)
        try:
            _, instance = await propose_with_instance(connection, Scope(), every_slot=True)
        finally:
            await connection.close()
        return compare(instance, instance.chosen)

    scores = asyncio.run(run())
    assert set(scores) == {"first_come_first_served", "priority_greedy", "care_graph"}
    ours = scores["care_graph"]
    assert ours["urgent_seen_in_time"] == "1 / 1"
    for other in ("first_come_first_served", "priority_greedy"):
        assert ours["matched"] >= scores[other]["matched"]
        assert ours["seen_in_time"] >= scores[other]["seen_in_time"]
    # first come, first served lets referrals 2 and 3 (waiting longer) take both Camden slots
    # before the urgent referral 1 arrives at the front
    assert scores["first_come_first_served"]["urgent_seen_in_time"] == "0 / 1"


COMMIT = """mutation($key: String) { runMatching(scope: {}, mode: COMMIT, planKey: $key) {
  planKey summary { matched } committed { booked skipped { referralId slotId } } } }"""
PROPOSE_KEY = """mutation { runMatching(scope: {}) { planKey summary { matched }
  assignments { referralId } } }"""


@pytest.fixture
def commit_world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


async def test_commit_books_the_proposed_plan_once(commit_world_url: str) -> None:
    async with asgi_client(commit_world_url, headers=bearer(Role.SCHEDULER)) as client:

        async def commit(key: str | None) -> dict[str, Any]:
            body = (
                await client.post("/graphql", json={"query": COMMIT, "variables": {"key": key}})
            ).json()
            return dict(body)

        proposed = (await client.post("/graphql", json={"query": PROPOSE_KEY})).json()
        key = proposed["data"]["runMatching"]["planKey"]
        first = await commit(key)
        # a retry (the answer was lost, say) books nothing more and gives the same answer
        again = await commit(key)
        for body in (first, again):
            assert body["data"]["runMatching"]["planKey"] == key
            assert body["data"]["runMatching"]["summary"]["matched"] == 3
            assert body["data"]["runMatching"]["committed"] == {"booked": 3, "skipped": []}
        # with no key COMMIT proposes afresh: nothing is left to book
        fresh = await commit(None)
        assert fresh["data"]["runMatching"]["committed"] == {"booked": 0, "skipped": []}
        assert fresh["data"]["runMatching"]["planKey"] != key
    connection = await connect(commit_world_url)
    try:
        booked = await connection.fetch(
            "SELECT a.referral_id, a.slot_id, s.status, r.status AS referral_status"
            " FROM appointments a JOIN slots s ON s.id = a.slot_id"
            " JOIN referrals r ON r.id = a.referral_id ORDER BY a.referral_id"
        )
        audit = await connection.fetchval(
            "SELECT count(*) FROM audit_events WHERE operation = 'BOOK'"
        )
    finally:
        await connection.close()
    assert [row["referral_id"] for row in booked] == [1, 2, 5]
    assert [encode_global_id("Referral", row["referral_id"]) for row in booked] == sorted(
        item["referralId"] for item in proposed["data"]["runMatching"]["assignments"]
    )
    assert {row["status"] for row in booked} == {"busy"}
    assert {row["referral_status"] for row in booked} == {"BOOKED"}
    assert audit == 3


async def test_a_plan_key_is_checked(commit_world_url: str) -> None:
    async with asgi_client(commit_world_url, headers=bearer(Role.SCHEDULER)) as client:
        proposed = (await client.post("/graphql", json={"query": PROPOSE_KEY})).json()
        key = proposed["data"]["runMatching"]["planKey"]

        async def code(query: str, key: str) -> str:
            body = (
                await client.post("/graphql", json={"query": query, "variables": {"key": key}})
            ).json()
            assert body["data"] is None
            return str(body["errors"][0]["extensions"]["code"])

        propose_with_key = """mutation($key: String) { runMatching(scope: {}, planKey: $key) {
          planKey } }"""
        assert await code(propose_with_key, key) == "INVALID_ARGUMENT"
        assert await code(COMMIT, "plan:unknown") == "NOT_FOUND"
        connection = await connect(commit_world_url)
        try:
            await connection.execute(
                "UPDATE matching_plans SET proposed_at = now() - interval '2 days'"
            )
        finally:
            await connection.close()
        assert await code(COMMIT, key) == "PLAN_EXPIRED"
        # proposing again gives a new plan, with a key of its own, that can be committed
        again = (await client.post("/graphql", json={"query": PROPOSE_KEY})).json()
        fresh = again["data"]["runMatching"]["planKey"]
        assert fresh != key
        committed = (
            await client.post("/graphql", json={"query": COMMIT, "variables": {"key": fresh}})
        ).json()
        assert committed["data"]["runMatching"]["committed"]["booked"] == 3


async def test_commit_books_the_kept_plan_even_when_a_fresh_one_would_differ(
    commit_world_url: str,
) -> None:
    connection = await connect(commit_world_url)
    try:
        plan = await propose(connection, Scope())
        key, _ = await keep(connection, plan, "clerk")
        # an urgent referral arrives after the plan was read: a fresh plan would seat it
        await connection.execute(
            "INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind,"
            " to_service_id, priority, status, received_at, clock_start, breach_date,"
            " max_travel_km) VALUES (6, '100000000006', 1, 'Dr A', 'GP', 1, 'URGENT',"
            " 'ACCEPTED', now(), now(), current_date + 5, 30)"
        )
        fresh = await propose(connection, Scope())
        kept_plan, pairs = await kept(connection, key)
        done = await commit_plan(
            OneConnection(connection), Actor("clerk", Role.SCHEDULER), pairs, key=key
        )
    finally:
        await connection.close()
    assert 6 in {item.referral for item in fresh.assignments}
    assert kept_plan.summary == plan.summary
    assert sorted(booked[1:] for booked in done.booked) == sorted(pairs_of(plan))


async def test_a_shared_plan_is_booked_site_by_site_by_whoever_may(
    commit_world_url: str,
) -> None:
    connection = await connect(commit_world_url)
    try:
        plan = await propose(connection, Scope())
        key, _ = await keep(connection, plan, "admin")
        pairs = pairs_of(plan)
        manchester = await commit_plan(
            OneConnection(connection), Actor("clerk", Role.SCHEDULER, None, (2,)), pairs, key=key
        )
        everyone = await commit_plan(
            OneConnection(connection), Actor("admin", Role.ADMIN), pairs, key=key
        )
    finally:
        await connection.close()
    assert [referral for _, referral, _ in manchester.booked] == [5]
    assert sorted(referral for _, referral, _ in everyone.booked) == [1, 2]
    assert everyone.skipped == [(5, 21)]  # booked already, by the Manchester clerk


async def test_a_referral_offered_a_slot_after_the_plan_is_not_booked_by_it(
    commit_world_url: str,
) -> None:
    connection = await connect(commit_world_url)
    try:
        plan = await propose(connection, Scope())
        await connection.execute(
            "UPDATE slots SET status = 'busy-tentative', held_for_referral_id = 1,"
            " hold_expires_at = now() + interval '30 minutes' WHERE id = 21"
        )
        done = await commit_plan(
            OneConnection(connection), Actor("clerk", Role.SCHEDULER), pairs_of(plan)
        )
    finally:
        await connection.close()
    assert (1, 11) in done.skipped  # 1 waits for its answer on slot 21
    assert sorted(referral for _, referral, _ in done.booked) == [2]  # 21 is held, so 5 waits


async def test_commit_is_idempotent_and_skips_what_changed(commit_world_url: str) -> None:
    connection = await connect(commit_world_url)
    try:
        plan = await propose(connection, Scope())
        pairs = [(item.referral, item.slot) for item in plan.assignments]
        # meanwhile someone books the slot planned for referral 5
        slot_of_5 = dict(pairs)[5]
        await connection.execute("UPDATE slots SET status = 'busy' WHERE id = $1", slot_of_5)
        clerk = Actor("clerk", Role.SCHEDULER)
        first = await commit_plan(OneConnection(connection), clerk, pairs)
        again = await commit_plan(OneConnection(connection), clerk, pairs)
        count = await connection.fetchval("SELECT count(*) FROM appointments")
    finally:
        await connection.close()
    assert first.skipped == [(5, slot_of_5)]
    assert len(first.booked) == 2
    assert (again.plan_key, again.booked, again.skipped) == (
        first.plan_key,
        first.booked,
        first.skipped,
    )
    assert count == 2


@pytest.fixture
def two_world_urls(databases: DatabaseFactory) -> tuple[str, str]:
    return databases.create(sql=WORLD), databases.create(sql=WORLD)


async def test_batches_on_parallel_connections_book_the_same_plan(
    two_world_urls: tuple[str, str],
) -> None:
    serial_url, parallel_url = two_world_urls
    clerk = Actor("clerk", Role.SCHEDULER)

    async def commit(url: str, workers: int) -> tuple[list[tuple[int, int, int]], int]:
        pool = await create_pool(url, min_size=1, max_size=workers, statement_timeout_ms=0)
        try:
            async with pool.acquire() as connection:
                plan = await propose(connection, Scope())
            pairs = [(item.referral, item.slot) for item in plan.assignments]
            done = await commit_plan(pool, clerk, pairs, workers=workers, batch_size=1)
            again = await commit_plan(pool, clerk, pairs, workers=workers, batch_size=1)
            assert again == done  # the retry books nothing twice and answers the same
            async with pool.acquire() as connection:
                booked = await connection.fetchval(
                    "SELECT count(*) FROM appointments WHERE status = 'booked'"
                )
        finally:
            await pool.close()
        assert done.skipped == []
        return done.booked, booked

    serial, parallel = await commit(serial_url, 1), await commit(parallel_url, 2)
    assert len(serial[0]) == 3
    assert [pair[1:] for pair in parallel[0]] == [pair[1:] for pair in serial[0]]
    assert parallel[1] == serial[1] == 3


class _SecondConnectionReadOnly:
    """Lends a working connection first and a read-only one second: one worker fails."""

    def __init__(self, working: asyncpg.Connection[Any], failing: asyncpg.Connection[Any]):
        self.lent = [failing, working]

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection[Any]]:
        yield self.lent.pop()


async def test_a_failing_worker_stops_the_commit_and_a_retry_finishes_it(
    commit_world_url: str,
) -> None:
    working, failing = await connect(commit_world_url), await connect(commit_world_url)
    try:
        await failing.execute("SET default_transaction_read_only = on")
        plan = await propose(working, Scope())
        pairs = [(item.referral, item.slot) for item in plan.assignments]
        clerk = Actor("clerk", Role.SCHEDULER)
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await commit_plan(
                _SecondConnectionReadOnly(working, failing),
                clerk,
                pairs,
                workers=2,
                batch_size=1,
            )
        partly = await working.fetchval("SELECT count(*) FROM appointments")
        retried = await commit_plan(OneConnection(working), clerk, pairs, batch_size=1)
        booked = await working.fetchval("SELECT count(*) FROM appointments")
    finally:
        await working.close()
        await failing.close()
    assert partly < len(pairs)  # the failed batch booked nothing
    assert sorted(pair[1:] for pair in retried.booked) == sorted(pairs)
    assert retried.skipped == []
    assert booked == len(pairs)


async def test_freed_slots_are_offered_together_to_who_gains_most(
    commit_world_url: str,
) -> None:
    connection = await connect(commit_world_url)
    try:
        offered = await offer_slots(
            connection, [21, 12, 11], Actor("clerk", Role.SCHEDULER), excluded_referrals=[2]
        )
        held = await connection.fetch(
            "SELECT id, status, held_for_referral_id FROM slots ORDER BY id"
        )
        audited = await connection.fetchval(
            "SELECT count(*) FROM audit_events WHERE operation = 'OFFER'"
        )
    finally:
        await connection.close()
    # 2 gave a slot up and 4 needs a skill nobody at Camden has: the urgent 1 and the routine
    # 3 share Camden, 1 taking the sooner slot; 5 is offered Manchester
    assert offered == {11: 1, 12: 3, 21: 5}
    assert [tuple(row) for row in held] == [
        (11, "busy-tentative", 1),
        (12, "busy-tentative", 3),
        (21, "busy-tentative", 5),
    ]
    assert audited == 3


async def test_site_bound_staff_commit_only_at_their_sites(commit_world_url: str) -> None:
    connection = await connect(commit_world_url)
    try:
        plan = await propose(connection, Scope())
        pairs = [(item.referral, item.slot) for item in plan.assignments]
        clerk = Actor("clerk", Role.SCHEDULER, None, (2,))
        done = await commit_plan(OneConnection(connection), clerk, pairs)
    finally:
        await connection.close()
    assert [referral for _, referral, _ in done.booked] == [5]  # Manchester is site 2


async def test_site_bound_staff_plan_only_their_sites_slots(commit_world_url: str) -> None:
    manchester_clerk = bearer(Role.SCHEDULER, "clerk", site_ids=(2,))
    async with asgi_client(commit_world_url, headers=manchester_clerk) as client:
        body = (await client.post("/graphql", json={"query": COMMIT})).json()
    plan = body["data"]["runMatching"]
    assert plan["summary"]["matched"] == 1  # slot 21, for referral 5
    assert plan["committed"] == {"booked": 1, "skipped": []}


async def test_a_referral_holding_an_offer_is_neither_matched_nor_offered_more(
    commit_world_url: str,
) -> None:
    connection = await connect(commit_world_url)
    try:
        await connection.execute(
            "UPDATE slots SET status = 'busy-tentative', held_for_referral_id = 1,"
            " hold_expires_at = now() + interval '30 minutes' WHERE id = 21"
        )
        plan = await propose(connection, Scope())
        offered = await offer_slots(connection, [11], Actor("clerk", Role.SCHEDULER))
        await connection.execute(
            "UPDATE slots SET hold_expires_at = now() - interval '1 minute' WHERE id IN (11, 21)"
        )
        after_lapse = await propose(connection, Scope())
    finally:
        await connection.close()
    considered = {item.referral for item in plan.assignments + plan.unmatched}
    assert considered == {2, 3, 4, 5}
    # the urgent referral 1 would take slot 11; it waits for its answer on slot 21 instead
    assert offered == {11: 2}
    # once the holds lapse, 1 waits again and slots 11 and 21 are on offer again
    assert {item.referral: item.slot for item in after_lapse.assignments}[1] == 11


async def test_reach_boxes_hold_every_place_within_reach(commit_world_url: str) -> None:
    connection = await connect(commit_world_url)
    try:
        await connection.execute("SELECT setseed(0.42)")
        # homes anywhere with a place at a random bearing no further than their reach, and
        # homes at chosen latitudes with places at their full reach in every direction
        counts = await connection.fetchrow(
            """
            WITH home AS (
                SELECT radians(random() * 170 - 85) AS lat1, radians(random() * 358 - 179) AS lon1,
                       1 + random() * 1500 AS km, radians(random() * 360) AS bearing,
                       random() AS share
                FROM generate_series(1, 20000)
                UNION ALL
                SELECT radians(lat), radians(-2.5), km, radians(bearing), 0.999999
                FROM unnest(ARRAY[0, 30, 51.5, 60, 75]) lat,
                     unnest(ARRAY[5, 50, 400]) km, generate_series(0, 359) bearing),
            place AS (
                SELECT *, asin(sin(lat1) * cos(angle) + cos(lat1) * sin(angle) * cos(bearing))
                          AS lat2
                FROM (SELECT *, km * share / 6371.0088 AS angle FROM home) h),
            reached AS (
                SELECT degrees(lat1) AS lat1, degrees(lon1) AS lon1, km, degrees(lat2) AS lat2,
                       degrees(lon1 + atan2(sin(bearing) * sin(angle) * cos(lat1),
                               cos(angle) - sin(lat1) * sin(lat2))) AS lon2
                FROM place)
            SELECT count(*) FILTER (WHERE NOT reach_box(lat1, lon1, km)
                                    @> box(point(lon2, lat2), point(lon2, lat2))),
                   count(*)
            FROM reached
            WHERE lon2 BETWEEN -180 AND 180 AND great_circle_km(lat1, lon1, lat2, lon2) <= km
            """
        )
    finally:
        await connection.close()
    assert counts is not None
    outside, inside = counts
    assert inside > 20000
    assert outside == 0


async def test_every_referral_written_gets_the_reach_of_its_home(commit_world_url: str) -> None:
    connection = await connect(commit_world_url)
    try:
        misplaced = await connection.fetchval(
            "SELECT count(*) FROM referrals r JOIN patients p ON p.id = r.patient_id"
            " WHERE r.reach IS NULL"
            " OR NOT r.reach ~= reach_box(p.latitude, p.longitude, r.max_travel_km)"
        )
        await connection.execute("UPDATE referrals SET max_travel_km = 5 WHERE id = 5")
        narrowed = await connection.fetchval(
            "SELECT reach ~= reach_box(53.45, -2.22, 5) FROM referrals WHERE id = 5"
        )
    finally:
        await connection.close()
    assert misplaced == 0
    assert narrowed is True


async def test_a_patient_who_moves_is_offered_slots_near_the_new_home(
    commit_world_url: str,
) -> None:
    connection = await connect(commit_world_url)
    try:
        before = await candidates_for_slots(connection, [11], [])
        # Ivy (referral 5, 30 km at most) moves from Manchester to Camden
        await connection.execute(
            "UPDATE patients SET latitude = 51.54, longitude = -0.14 WHERE id = 2"
        )
        after = await candidates_for_slots(connection, [11], [])
    finally:
        await connection.close()
    assert 5 not in {row["id"] for row in before}
    assert 5 in {row["id"] for row in after}


async def test_offers_made_at_once_never_choose_the_same_referral(commit_world_url: str) -> None:
    first, second = await connect(commit_world_url), await connect(commit_world_url)
    clerk = Actor("clerk", Role.SCHEDULER)
    try:
        open_transaction = first.transaction()
        await open_transaction.start()
        to_first = await offer_slots(first, [11], clerk)
        later = asyncio.create_task(offer_slots(second, [12], clerk))
        await asyncio.sleep(0.3)
        waited = not later.done()  # the second offer waits for the first to be settled
        await open_transaction.commit()
        to_second = await later
    finally:
        await first.close()
        await second.close()
    assert to_first == {11: 1}
    assert waited
    assert to_second == {12: 2}  # 1 already holds an offer


def test_a_kept_plan_reads_back_as_it_was_kept(plan: Plan) -> None:
    again = Plan.from_json(orjson.loads(orjson.dumps(plan.to_json())))
    assert again == plan
    assert isinstance(again.assignments[0].priority, Priority)


def test_a_plan_kept_before_plans_were_typed_still_reads(plan: Plan) -> None:
    kept_then = plan.to_json()
    kept_then["summary"]["by_priority"] = {
        count.priority.value: {"matched": count.matched, "unmatched": count.unmatched}
        for count in plan.summary.by_priority
    }
    assert Plan.from_json(orjson.loads(orjson.dumps(kept_then))) == plan
