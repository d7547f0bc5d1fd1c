"""Every path that lists, holds, offers, plans or books agrees on every (referral, slot) pair,
whatever happened before: a stateful property test drives random sequences of hold, book,
cancel, offer, accept, decline, lapse, sweep, plan and commit on a small world, and after each
step checks, pair by pair,

- the single booking's rule check (``booking_store.broken_rules``),
- ``Referral.candidateSlots``, compiled and served through a real request,
- the matcher's candidate builder (``matching.plan.feasible_pairs``),

against each other and against the rules computed in Python from the raw rows; and that each
write did what the rules allowed before it (a booking succeeds exactly when the pair was
bookable, a plan or an offer picks only pairs it may) and left no slot or referral doubly used.

CI runs a bounded number of sequences; ``pytest tests/test_bookable_paths.py
--hypothesis-profile long`` runs many more, longer ones (see README, "One rule book")."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from care_graph.api.ids import decode_global_id
from care_graph.auth import Role
from care_graph.db import booking_store
from care_graph.db.pool import OneConnection, connect
from care_graph.domain.booking import (
    Actor,
    accept_offer,
    book_appointment,
    cancel_appointment,
    decline_offer,
    hold_slot,
    reschedule_appointment,
)
from care_graph.domain.commit import commit_plan
from care_graph.domain.offers import offer_slots, sweep_lapsed_holds
from care_graph.errors import CareGraphError
from care_graph.matching.plan import Scope, feasible_pairs, pairs_of, propose
from care_graph.testing import DatabaseFactory, asgi_client, bearer

CLINICS = ZoneInfo("Europe/London")
EARTH_KM = 6371.0088

# Camden and Croydon (about 16 km apart); cardiology and dermatology. Ada (Camden) has
# echocardiography, Bea (Camden) not, Cy (Croydon) sees both services. Slots 1-9 fall on days
# 3 and 25, at both sites, for both services; slot 10 started an hour ago.
# Referral 1 needs echocardiography, 2 is not to be seen before day 20, 3 travels at most
# 5 km, 4 is for dermatology, 5 and 6 need nothing special.
WORLD = """
INSERT INTO regions VALUES ('LONDON', 'London');
INSERT INTO skills VALUES ('CARDIOLOGY', 'Cardiology'), ('ECHO', 'Echocardiography'),
    ('DERMATOLOGY', 'Dermatology');
INSERT INTO services (id, code, name, kind, slot_minutes) VALUES
    (1, 'CARDIOLOGY', 'Cardiology', 'SPECIALTY', 20),
    (2, 'DERMATOLOGY', 'Dermatology', 'SPECIALTY', 20);
INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude) VALUES
    (1, 'S1', 'Camden General', 'LONDON', 'Camden', 'NW1 1AA', 51.53, -0.14),
    (2, 'S2', 'Croydon University', 'LONDON', 'Croydon', 'CR7 7YE', 51.39, -0.10);
INSERT INTO site_services VALUES (1, 1), (2, 1), (1, 2), (2, 2);
INSERT INTO staff (id, given_name, family_name, role, base_site_id) VALUES
    (1, 'Ada', 'Jones', 'CONSULTANT', 1), (2, 'Bea', 'Lee', 'CONSULTANT', 1),
    (3, 'Cy', 'Ode', 'CONSULTANT', 2);
INSERT INTO staff_skills VALUES (1, 'CARDIOLOGY'), (1, 'ECHO'), (2, 'CARDIOLOGY'),
    (3, 'CARDIOLOGY'), (3, 'DERMATOLOGY');
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at)
    SELECT id, service, site, staff,
           date_trunc('day', now()) + make_interval(days => day, hours => hour),
           date_trunc('day', now()) + make_interval(days => day, hours => hour, mins => 20)
    FROM (VALUES (1, 1, 1, 1, 3, 9), (2, 1, 1, 2, 3, 9), (3, 1, 2, 3, 3, 9),
                 (4, 1, 1, 1, 25, 9), (5, 1, 1, 2, 25, 9), (6, 1, 2, 3, 25, 9),
                 (7, 2, 2, 3, 3, 10), (8, 2, 2, 3, 25, 10), (9, 1, 1, 2, 3, 10))
         AS v(id, service, site, staff, day, hour);
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at) VALUES
    (10, 1, 1, 2, now() - interval '1 hour', now() - interval '40 minutes');
INSERT INTO patients (id, nhs_number, given_name, family_name, date_of_birth, postcode,
                      region_code, latitude, longitude) VALUES
    (1, '9434765919', 'Sam', 'Khan', '1970-05-04', 'NW1 2BB', 'LONDON', 51.53, -0.15),
    (2, '4010232137', 'Ivy', 'Shaw', '1981-02-11', 'NW1 3CC', 'LONDON', 51.54, -0.16);
INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind, to_service_id,
                       priority, status, received_at, clock_start, breach_date,
                       required_skill, earliest_date, max_travel_km)
    SELECT n, (100000000000 + n)::text, CASE WHEN n <= 3 THEN 1 ELSE 2 END, 'Dr A Smith', 'GP',
           CASE WHEN n = 4 THEN 2 ELSE 1 END,
           CASE n WHEN 5 THEN 'URGENT' ELSE 'ROUTINE' END,
           'ACCEPTED', now() - interval '30 days', now() - interval '30 days',
           current_date + 90, CASE WHEN n = 1 THEN 'ECHO' END,
           CASE WHEN n = 2 THEN current_date + 20 END, CASE WHEN n = 3 THEN 5 END
    FROM generate_series(1, 6) n;
"""
REFERRALS = range(1, 7)
SLOTS = range(1, 11)
CLERK = Actor("clerk", Role.SCHEDULER)
CANDIDATES = """{ referrals(first: 20) { nodes { id
  candidateSlots(first: 50) { nodes { id } } } } }"""


@dataclass(frozen=True)
class Rows:
    """The raw rows the rules are read from, and the database's clock."""

    now: datetime
    referrals: dict[int, asyncpg.Record]
    slots: dict[int, asyncpg.Record]
    homes: dict[int, tuple[float, float]]  # patient -> (latitude, longitude)
    sites: dict[int, tuple[float, float]]
    skills: set[tuple[int, str]]  # (staff, skill)
    appointments: list[asyncpg.Record]

    def live_hold(self, slot: int) -> bool:
        row = self.slots[slot]
        return bool(row["status"] == "busy-tentative" and row["hold_expires_at"] > self.now)

    def awaits_answer(self, referral: int) -> bool:
        return any(
            self.live_hold(slot) and row["held_for_referral_id"] == referral
            for slot, row in self.slots.items()
        )

    def slot_rules_hold(self, referral: int, slot: int) -> bool:
        """Every rule but "the referral waits": what the rules say in Python."""
        r, s = self.referrals[referral], self.slots[slot]
        held_here = s["status"] == "busy-tentative" and (
            s["hold_expires_at"] <= self.now or s["held_for_referral_id"] == referral
        )
        earliest: date | None = r["earliest_date"]
        return bool(
            s["service_id"] == r["to_service_id"]
            and s["starts_at"] > self.now
            and (s["status"] == "free" or held_here)
            and (r["required_skill"] is None or (s["staff_id"], r["required_skill"]) in self.skills)
            and (
                earliest is None
                or s["starts_at"] >= datetime.combine(earliest, time(0), CLINICS).astimezone(UTC)
            )
            and (
                r["max_travel_km"] is None
                or great_circle_km(self.homes[r["patient_id"]], self.sites[s["site_id"]])
                <= r["max_travel_km"]
            )
        )

    def bookable(self, referral: int, slot: int) -> bool:
        return self.referrals[referral]["status"] == "ACCEPTED" and self.slot_rules_hold(
            referral, slot
        )

    def bookable_pairs(self) -> set[tuple[int, int]]:
        return {(r, s) for r in REFERRALS for s in SLOTS if self.bookable(r, s)}


def great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


async def read_rows(connection: asyncpg.Connection[Any]) -> Rows:
    return Rows(
        now=await connection.fetchval("SELECT now()"),
        referrals={row["id"]: row for row in await connection.fetch("SELECT * FROM referrals")},
        slots={row["id"]: row for row in await connection.fetch("SELECT * FROM slots")},
        homes={
            row["id"]: (row["latitude"], row["longitude"])
            for row in await connection.fetch("SELECT id, latitude, longitude FROM patients")
        },
        sites={
            row["id"]: (row["latitude"], row["longitude"])
            for row in await connection.fetch("SELECT id, latitude, longitude FROM sites")
        },
        skills={
            (row["staff_id"], row["skill_code"])
            for row in await connection.fetch("SELECT staff_id, skill_code FROM staff_skills")
        },
        appointments=await connection.fetch("SELECT * FROM appointments ORDER BY id"),
    )


def key_of(global_id: str) -> int:
    decoded = decode_global_id(global_id)
    assert decoded is not None
    return decoded[1]


class BookingPaths(RuleBasedStateMachine):
    """One fresh copy of the world per sequence; every step runs through the real domain
    services on a real connection, every read of candidates through the served API."""

    world_url = ""  # the world, made once; each sequence gets a copy
    factory: DatabaseFactory

    def __init__(self) -> None:
        super().__init__()
        self.url = self.factory.copy(self.world_url)
        self.loop = asyncio.new_event_loop()
        self.db: asyncpg.Connection[Any] = self.run(connect(self.url))
        self.client_context = asgi_client(
            self.url, headers=bearer(Role.SCHEDULER, "reader"), sweep_seconds=0
        )
        self.client: httpx.AsyncClient = self.run(self.client_context.__aenter__())

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def teardown(self) -> None:
        self.run(self.client_context.__aexit__(None, None, None))
        self.run(self.db.close())
        self.loop.close()

    def rows(self) -> Rows:
        rows: Rows = self.run(read_rows(self.db))
        return rows

    def attempt(self, work: Any) -> Any:
        """Run a write; None when the domain refused it (with a code: nothing else escapes)."""
        try:
            return self.run(work)
        except CareGraphError:
            return None

    # --- writes -----------------------------------------------------------------------------

    def pair(self, allowed_one: bool, pick: int) -> tuple[int, int]:
        """A pair the rules allow now (when there is one and ``allowed_one``), else any."""
        rows = self.rows()
        pairs = sorted(rows.bookable_pairs()) if allowed_one else []
        pairs = pairs or [(r, s) for r in REFERRALS for s in SLOTS]
        return pairs[pick % len(pairs)]

    def held_slots(self) -> list[int]:
        rows = self.rows()
        return [slot for slot in SLOTS if rows.slots[slot]["status"] == "busy-tentative"]

    @rule(allowed_one=st.booleans(), pick=st.integers(0, 1000))
    def hold(self, allowed_one: bool, pick: int) -> None:
        referral, slot = self.pair(allowed_one, pick)
        allowed = self.rows().bookable(referral, slot)
        done = self.attempt(hold_slot(self.db, referral_id=referral, slot_id=slot, actor=CLERK))
        assert (done is not None) == allowed
        if done is not None:
            assert self.rows().live_hold(slot)

    @rule(allowed_one=st.booleans(), pick=st.integers(0, 1000))
    def book(self, allowed_one: bool, pick: int) -> None:
        referral, slot = self.pair(allowed_one, pick)
        allowed = self.rows().bookable(referral, slot)
        done = self.attempt(
            book_appointment(self.db, referral_id=referral, slot_id=slot, actor=CLERK)
        )
        assert (done is not None) == allowed

    @precondition(lambda self: self.rows().appointments)
    @rule(referral=st.sampled_from(REFERRALS))
    def cancel(self, referral: int) -> None:
        booked = [
            row["id"]
            for row in self.rows().appointments
            if row["referral_id"] == referral and row["status"] == "booked"
        ]
        if booked:
            assert self.attempt(
                cancel_appointment(
                    self.db, appointment_id=booked[0], reason="PATIENT_ILL", actor=CLERK
                )
            )

    @rule(referral=st.sampled_from(REFERRALS), slot=st.sampled_from(SLOTS))
    def reschedule(self, referral: int, slot: int) -> None:
        before = self.rows()
        booked = [
            row
            for row in before.appointments
            if row["referral_id"] == referral and row["status"] == "booked"
        ]
        if not booked or booked[0]["slot_id"] == slot:
            return
        allowed = before.slot_rules_hold(referral, slot)  # it waits again once cancelled
        done = self.attempt(
            reschedule_appointment(
                self.db, appointment_id=booked[0]["id"], slot_id=slot, actor=CLERK
            )
        )
        assert (done is not None) == allowed

    @rule(slot=st.sampled_from(SLOTS))
    def offer(self, slot: int) -> None:
        before = self.rows()
        offered = self.run(offer_slots(self.db, [slot], CLERK))
        for offered_slot, referral in offered.items():
            assert before.bookable(referral, offered_slot)
            assert not before.awaits_answer(referral)
            assert not before.live_hold(offered_slot)

    def holder(self, pick: int) -> int:
        """Mostly a referral something is held for (live or lapsed); sometimes any."""
        rows = self.rows()
        holders = [rows.slots[slot]["held_for_referral_id"] for slot in self.held_slots()]
        return sorted(holders)[pick % len(holders)] if holders and pick % 4 else REFERRALS[pick % 6]

    @rule(pick=st.integers(0, 1000))
    def accept(self, pick: int) -> None:
        referral = self.holder(pick)
        before = self.rows()
        held = [s for s in SLOTS if before.slots[s]["held_for_referral_id"] == referral]
        allowed = any(before.live_hold(s) and before.bookable(referral, s) for s in held)
        done = self.attempt(accept_offer(self.db, referral_id=referral, actor=CLERK))
        assert (done is not None) == allowed

    @rule(pick=st.integers(0, 1000))
    def decline(self, pick: int) -> None:
        referral = self.holder(pick)
        allowed = self.rows().awaits_answer(referral)
        done = self.attempt(
            decline_offer(self.db, referral_id=referral, reason="cannot make it", actor=CLERK)
        )
        assert (done is not None) == allowed

    @precondition(lambda self: self.held_slots())
    @rule(pick=st.integers(0, 1000))
    def lapse(self, pick: int) -> None:
        """Time passes for one hold: its expiry is now behind us."""
        held = self.held_slots()
        slot = held[pick % len(held)]
        self.run(
            self.db.execute(
                "UPDATE slots SET hold_expires_at = now() - interval '1 second'"
                " WHERE id = $1 AND status = 'busy-tentative'",
                slot,
            )
        )

    @rule()
    def sweep(self) -> None:
        self.run(sweep_lapsed_holds(self.db))

    @rule()
    def plan_and_commit(self) -> None:
        before = self.rows()
        plan = self.run(propose(self.db, Scope()))
        pairs = pairs_of(plan)
        for referral, slot in pairs:
            assert before.bookable(referral, slot)
            assert not before.awaits_answer(referral)
            assert not before.live_hold(slot)
        committed = self.run(commit_plan(OneConnection(self.db), CLERK, pairs))
        assert {(r, s) for _, r, s in committed.booked} == set(pairs)  # nothing changed between

    # --- what every path says ------------------------------------------------------------

    @invariant()
    def every_path_agrees_on_every_pair(self) -> None:
        rows = self.rows()
        expected = rows.bookable_pairs()
        checked = {
            (r, s)
            for r in REFERRALS
            for s in SLOTS
            if not self.run(booking_store.broken_rules(self.db, r, s))
        }
        assert checked == expected
        listed = self.listed_candidates()
        assert listed == {(r, s) for r in REFERRALS for s in SLOTS if rows.slot_rules_hold(r, s)}
        assert {pair for pair in listed if rows.referrals[pair[0]]["status"] == "ACCEPTED"} == (
            checked
        )
        matched = self.run(feasible_pairs(self.db, Scope()))
        assert matched == {
            (r, s) for r, s in checked if not rows.awaits_answer(r) and not rows.live_hold(s)
        }

    @invariant()
    def nothing_is_used_twice(self) -> None:
        rows = self.rows()
        booked = [row for row in rows.appointments if row["status"] == "booked"]
        assert len({row["slot_id"] for row in booked}) == len(booked)
        assert len({row["referral_id"] for row in booked}) == len(booked)
        booked_referrals = {row["referral_id"] for row in booked}
        booked_slots = {row["slot_id"] for row in booked}
        for referral, row in rows.referrals.items():
            assert (row["status"] == "BOOKED") == (referral in booked_referrals)
        live_holds: list[int] = []
        for slot, row in rows.slots.items():
            assert (row["status"] == "busy") == (slot in booked_slots)
            held = row["status"] == "busy-tentative"
            assert held == (row["held_for_referral_id"] is not None)
            assert held == (row["hold_expires_at"] is not None)
            if rows.live_hold(slot):
                live_holds.append(row["held_for_referral_id"])
        assert len(live_holds) == len(set(live_holds))  # one live hold per referral

    def listed_candidates(self) -> set[tuple[int, int]]:
        response = self.run(self.client.post("/graphql", json={"query": CANDIDATES}))
        body = response.json()
        assert "errors" not in body, body
        return {
            (key_of(node["id"]), key_of(slot["id"]))
            for node in body["data"]["referrals"]["nodes"]
            for slot in node["candidateSlots"]["nodes"]
        }


def test_every_path_agrees_whatever_happened_before(
    databases: DatabaseFactory, request: pytest.FixtureRequest
) -> None:
    BookingPaths.world_url = databases.create(sql=WORLD)
    BookingPaths.factory = databases
    long = request.config.getoption("hypothesis_profile", None) == "long"
    run_state_machine_as_test(
        BookingPaths,
        settings=settings(
            max_examples=300 if long else 25,
            stateful_step_count=40 if long else 25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
