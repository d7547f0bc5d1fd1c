"""One definition of bookable (db/bookable.py), through real requests: manual booking keeps
every rule the matcher keeps, an administrator overrides them only with a reason, lapsed
holds are free at once to every reader and writer, a referral holds one slot at a time, offers
can be seen, accepted and declined, and every path agrees on every (referral, slot) pair."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from care_graph.api.ids import decode_global_id, encode_global_id
from care_graph.auth import Role
from care_graph.db import booking_store
from care_graph.db.pool import connect
from care_graph.domain.offers import sweep_lapsed_holds
from care_graph.matching.plan import Scope, feasible_pairs
from care_graph.testing import DatabaseFactory, asgi_client, bearer

# Two clinicians at Camden (one also echocardiography), one at Croydon (about 16 km from the
# patients); ten slots each in three days, and five more of the first in thirty days.
# Referral 1 needs echocardiography, 2 may not be seen before day 20, 3 travels at most 5 km;
# referrals 4-7 (patient 2) need nothing special; 5 is urgent and 6 a suspected cancer.
WORLD = """
INSERT INTO regions VALUES ('LONDON', 'London');
INSERT INTO skills VALUES ('CARDIOLOGY', 'Cardiology'), ('ECHO', 'Echocardiography');
INSERT INTO services (id, code, name, kind, slot_minutes)
    VALUES (1, 'CARDIOLOGY', 'Cardiology', 'SPECIALTY', 20);
INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude) VALUES
    (1, 'S1', 'Camden General', 'LONDON', 'Camden', 'NW1 1AA', 51.53, -0.14),
    (2, 'S2', 'Croydon University', 'LONDON', 'Croydon', 'CR7 7YE', 51.39, -0.10);
INSERT INTO site_services VALUES (1, 1), (2, 1);
INSERT INTO staff (id, given_name, family_name, role, base_site_id) VALUES
    (1, 'Ada', 'Jones', 'CONSULTANT', 1), (2, 'Bea', 'Lee', 'CONSULTANT', 1),
    (3, 'Cy', 'Ode', 'CONSULTANT', 2);
INSERT INTO staff_skills VALUES (1, 'CARDIOLOGY'), (1, 'ECHO'), (2, 'CARDIOLOGY'),
    (3, 'CARDIOLOGY');
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at)
    SELECT (staff - 1) * 10 + n, 1, CASE WHEN staff = 3 THEN 2 ELSE 1 END, staff,
           date_trunc('day', now()) + interval '3 days 8 hours' + n * interval '20 minutes',
           date_trunc('day', now()) + interval '3 days 8 hours' + (n + 1) * interval '20 minutes'
    FROM generate_series(1, 3) staff, generate_series(1, 10) n;
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at)
    SELECT 30 + n, 1, 1, 1,
           date_trunc('day', now()) + interval '30 days 8 hours' + n * interval '20 minutes',
           date_trunc('day', now()) + interval '30 days 8 hours' + (n + 1) * interval '20 minutes'
    FROM generate_series(1, 5) n;
INSERT INTO patients (id, nhs_number, given_name, family_name, date_of_birth, postcode,
                      region_code, latitude, longitude) VALUES
    (1, '9434765919', 'Sam', 'Khan', '1970-05-04', 'NW1 2BB', 'LONDON', 51.53, -0.15),
    (2, '4010232137', 'Ivy', 'Shaw', '1981-02-11', 'NW1 3CC', 'LONDON', 51.54, -0.16);
INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind, to_service_id,
                       priority, status, received_at, clock_start, breach_date,
                       required_skill, earliest_date, max_travel_km)
    SELECT n, (100000000000 + n)::text, CASE WHEN n <= 3 THEN 1 ELSE 2 END, 'Dr A Smith', 'GP',
           1, CASE n WHEN 5 THEN 'URGENT' WHEN 6 THEN 'TWO_WEEK_WAIT' ELSE 'ROUTINE' END,
           'ACCEPTED', now() - interval '30 days', now() - interval '30 days',
           current_date + 90, CASE WHEN n = 1 THEN 'ECHO' END,
           CASE WHEN n = 2 THEN current_date + 20 END, CASE WHEN n = 3 THEN 5 END
    FROM generate_series(1, 7) n;
"""

CLERK = bearer(Role.SCHEDULER, "clerk")
ADMIN = bearer(Role.ADMIN, "admin")
PATIENT_2 = bearer(Role.PATIENT, "patient-2", 2)

BOOK = """mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) {
  appointment { id isOverride slot { id status } } } }"""
HOLD = """mutation($i: HoldSlotInput!) { holdSlot(input: $i) { slot { id status } } }"""
CANCEL = """mutation($i: CancelAppointmentInput!) { cancelAppointment(input: $i) {
  appointment { status } } }"""
ACCEPT = """mutation($i: AcceptOfferInput!) { acceptOffer(input: $i) {
  appointment { id status slot { id status } } } }"""
DECLINE = """mutation($i: DeclineOfferInput!) { declineOffer(input: $i) {
  referral { offer { id } } } }"""
ATTENDANCE = """mutation($i: RecordAttendanceInput!) { recordAttendance(input: $i) {
  appointment { status } } }"""
CANDIDATES = """query($r: ID!) { node(id: $r) { ... on Referral {
  candidateSlots(first: 100) { nodes { id } } } } }"""
SLOT = """query($s: ID!) { node(id: $s) { ... on Slot { status holdExpiresAt } } }"""
FREE_SLOTS = """{ slots(first: 100, filter: {status: [FREE]}) { nodes { id } } }"""
OFFER = """query($r: ID!) { node(id: $r) { ... on Referral { offer { id holdExpiresAt } } } }"""


def referral(n: int) -> str:
    return encode_global_id("Referral", n)


def slot(n: int) -> str:
    return encode_global_id("Slot", n)


def key_of(global_id: str) -> int:
    decoded = decode_global_id(global_id)
    assert decoded is not None
    return decoded[1]


@pytest.fixture
def world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


@pytest.fixture
async def client(world_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(world_url) as client:
        yield client


@pytest.fixture
async def db(world_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection = await connect(world_url)
    try:
        yield connection
    finally:
        await connection.close()


async def gql(
    client: httpx.AsyncClient, query: str, headers: dict[str, str], **variables: Any
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def code(body: dict[str, Any]) -> str:
    assert body["data"] is None, body
    value: str = body["errors"][0]["extensions"]["code"]
    return value


async def candidates(client: httpx.AsyncClient, referral_key: int) -> set[int]:
    body = await gql(client, CANDIDATES, CLERK, r=referral(referral_key))
    return {key_of(n["id"]) for n in body["data"]["node"]["candidateSlots"]["nodes"]}


async def test_every_path_agrees_on_every_pair(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    """candidateSlots (compiled read), the single booking's rule check and the matcher's
    candidate builder name the same pairs; and they are the pairs the rules mean."""
    slots = range(1, 36)
    listed = {(r, s) for r in range(1, 8) for s in await candidates(client, r)}
    checked = {
        (r, s) for r in range(1, 8) for s in slots if not await booking_store.broken_rules(db, r, s)
    }
    matched = await feasible_pairs(db, Scope())
    assert listed == checked == matched
    assert {s for r, s in listed if r == 1} == set(range(1, 11)) | set(range(31, 36))  # echo
    assert {s for r, s in listed if r == 2} == set(range(31, 36))  # day 20 on
    assert {s for r, s in listed if r == 3} == set(range(1, 21)) | set(range(31, 36))  # 5 km
    assert {s for r, s in listed if r == 4} == set(slots)


async def test_manual_booking_keeps_the_rules_and_an_override_says_why(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    for referral_key, slot_key, expected in [
        (1, 11, "SLOT_SKILL_MISMATCH"),
        (2, 1, "SLOT_BEFORE_EARLIEST_DATE"),
        (3, 21, "SLOT_BEYOND_MAX_TRAVEL"),
    ]:
        refused = await gql(
            client, BOOK, CLERK, i={"referralId": referral(referral_key), "slotId": slot(slot_key)}
        )
        assert code(refused) == expected
    wanted = {"referralId": referral(1), "slotId": slot(11), "override": {"reason": "clinic ok"}}
    assert code(await gql(client, BOOK, CLERK, i=wanted)) == "FORBIDDEN"
    blank = {**wanted, "override": {"reason": "  "}}
    assert code(await gql(client, BOOK, ADMIN, i=blank)) == "INVALID_ARGUMENT"
    assert await db.fetchval("SELECT count(*) FROM appointments") == 0
    booked = await gql(client, BOOK, ADMIN, i=wanted)
    assert booked["data"]["bookAppointment"]["appointment"]["isOverride"] is True
    shown = await gql(
        client,
        '{ auditEvents(filter: {operation: "OVERRIDE_BOOK"}) { nodes { actor detail } } }',
        ADMIN,
    )
    [event] = shown["data"]["auditEvents"]["nodes"]
    assert event["actor"] == "admin"
    assert orjson.loads(event["detail"])["reason"] == "clinic ok"


async def test_a_lapsed_hold_reads_free_everywhere_at_once(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    await gql(client, HOLD, CLERK, i={"referralId": referral(4), "slotId": slot(12)})
    assert (await gql(client, SLOT, CLERK, s=slot(12)))["data"]["node"]["status"] == (
        "BUSY_TENTATIVE"
    )
    assert 12 not in await candidates(client, 7)
    free = await gql(client, FREE_SLOTS, CLERK)
    assert slot(12) not in {n["id"] for n in free["data"]["slots"]["nodes"]}
    await db.execute("UPDATE slots SET hold_expires_at = now() - interval '1 second' WHERE id = 12")
    assert (await gql(client, SLOT, CLERK, s=slot(12)))["data"]["node"] == {
        "status": "FREE",
        "holdExpiresAt": None,
    }
    free = await gql(client, FREE_SLOTS, CLERK)
    assert slot(12) in {n["id"] for n in free["data"]["slots"]["nodes"]}
    assert 12 in await candidates(client, 7)
    assert (4, 12) in await feasible_pairs(db, Scope())  # and referral 4 waits for matching
    assert (await gql(client, OFFER, CLERK, r=referral(4)))["data"]["node"]["offer"] is None
    booked = await gql(client, BOOK, CLERK, i={"referralId": referral(7), "slotId": slot(12)})
    assert booked["data"]["bookAppointment"]["appointment"]["slot"]["status"] == "BUSY"


async def test_a_referral_holds_one_slot_at_a_time(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    for held in (12, 13, 14):
        answer = await gql(
            client, HOLD, PATIENT_2, i={"referralId": referral(4), "slotId": slot(held)}
        )
        assert answer["data"]["holdSlot"]["slot"]["status"] == "BUSY_TENTATIVE"
    holds = await db.fetch("SELECT id FROM slots WHERE held_for_referral_id = 4")
    assert [row["id"] for row in holds] == [14]
    offer = await gql(client, OFFER, PATIENT_2, r=referral(4))
    assert offer["data"]["node"]["offer"]["id"] == slot(14)
    # the slots it let go are on offer again, to whoever gains most (never lost)
    for released in (12, 13):
        status = await db.fetchval("SELECT status FROM slots WHERE id = $1", released)
        holder = await db.fetchval("SELECT held_for_referral_id FROM slots WHERE id = $1", released)
        assert status in ("free", "busy-tentative")
        assert holder != 4


async def test_an_offer_is_seen_declined_and_accepted(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    booked = await gql(client, BOOK, CLERK, i={"referralId": referral(4), "slotId": slot(15)})
    appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
    await gql(client, CANCEL, CLERK, i={"appointmentId": appointment, "reason": "PATIENT_ILL"})
    # the urgent referral is offered the freed slot, and its patient's app can see it
    offer = await gql(client, OFFER, PATIENT_2, r=referral(5))
    assert offer["data"]["node"]["offer"]["id"] == slot(15)
    assert offer["data"]["node"]["offer"]["holdExpiresAt"] is not None
    refused = await gql(client, DECLINE, PATIENT_2, i={"referralId": referral(5), "reason": ""})
    assert code(refused) == "INVALID_ARGUMENT"
    declined = await gql(
        client, DECLINE, PATIENT_2, i={"referralId": referral(5), "reason": "away that week"}
    )
    assert declined["data"]["declineOffer"]["referral"]["offer"] is None
    # at once offered to the next: the suspected cancer
    assert await db.fetchval("SELECT held_for_referral_id FROM slots WHERE id = 15") == 6
    assert code(await gql(client, ACCEPT, PATIENT_2, i={"referralId": referral(5)})) == (
        "NOT_FOUND"
    )
    accept = {"referralId": referral(6), "idempotencyKey": "accept-6-0001"}
    first = await gql(client, ACCEPT, PATIENT_2, i=accept)
    again = await gql(client, ACCEPT, PATIENT_2, i=accept)
    assert first["data"]["acceptOffer"]["appointment"]["slot"] == {"id": slot(15), "status": "BUSY"}
    assert again == first
    assert await db.fetchval("SELECT count(*) FROM appointments WHERE referral_id = 6") == 1
    operations = await db.fetch("SELECT operation FROM audit_events ORDER BY id")
    assert [row["operation"] for row in operations] == [
        "BOOK",
        "CANCEL",
        "OFFER",
        "DECLINE_OFFER",
        "OFFER",
        "BOOK",
    ]


async def test_a_lapsed_offer_goes_to_the_next_waiting_referral(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    booked = await gql(client, BOOK, CLERK, i={"referralId": referral(4), "slotId": slot(15)})
    appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
    await gql(client, CANCEL, CLERK, i={"appointmentId": appointment, "reason": "PATIENT_ILL"})
    assert await db.fetchval("SELECT held_for_referral_id FROM slots WHERE id = 15") == 5
    assert (await sweep_lapsed_holds(db)).lapsed == {}  # nothing has lapsed yet
    await db.execute("UPDATE slots SET hold_expires_at = now() - interval '1 second' WHERE id = 15")
    assert code(await gql(client, ACCEPT, PATIENT_2, i={"referralId": referral(5)})) == (
        "HOLD_EXPIRED"
    )
    swept = await sweep_lapsed_holds(db)
    assert swept.lapsed == {15: 5}
    assert swept.offered == {15: 6}
    assert await db.fetchval("SELECT held_for_referral_id FROM slots WHERE id = 15") == 6
    assert (await sweep_lapsed_holds(db)).lapsed == {}


async def test_the_served_app_sweeps_lapsed_holds_by_itself(
    world_url: str, db: asyncpg.Connection[Any]
) -> None:
    async with asgi_client(world_url, sweep_seconds=0.2) as client:
        await gql(client, HOLD, CLERK, i={"referralId": referral(4), "slotId": slot(16)})
        await db.execute(
            "UPDATE slots SET hold_expires_at = now() - interval '1 second' WHERE id = 16"
        )
        for _ in range(100):
            holder = await db.fetchval("SELECT held_for_referral_id FROM slots WHERE id = 16")
            if holder not in (None, 4):
                break
            await asyncio.sleep(0.05)
        assert holder == 5  # the urgent referral, offered the slot the lapsed hold let go


async def test_idempotency_keys_belong_to_their_actor(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    mine = {"referralId": referral(7), "slotId": slot(17), "idempotencyKey": "clerk-1-0001"}
    assert (await gql(client, BOOK, PATIENT_2, i=mine))["data"] is not None
    theirs = {"referralId": referral(4), "slotId": slot(18), "idempotencyKey": "clerk-1-0001"}
    assert (await gql(client, BOOK, CLERK, i=theirs))["data"] is not None
    # another actor's replay of the same input is no replay: it is a booking of its own
    replay = await gql(client, BOOK, ADMIN, i=mine)
    assert code(replay) == "INVALID_TRANSITION"
    short = {"referralId": referral(6), "slotId": slot(19), "idempotencyKey": "short"}
    assert code(await gql(client, BOOK, CLERK, i=short)) == "INVALID_ARGUMENT"
    assert await db.fetchval("SELECT count(*) FROM appointments") == 2


async def test_attendance_is_recorded_at_ones_own_sites_once_due(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    booked = await gql(client, BOOK, CLERK, i={"referralId": referral(4), "slotId": slot(21)})
    appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
    await db.execute(
        "UPDATE slots SET starts_at = now() - interval '2 hours',"
        " ends_at = now() - interval '100 minutes' WHERE id = 21"
    )
    camden = bearer(Role.CLINICIAN, "dr-camden", site_ids=(1,))
    attended = {"appointmentId": appointment, "attended": True}
    assert code(await gql(client, ATTENDANCE, camden, i=attended)) == "FORBIDDEN"
    croydon = bearer(Role.CLINICIAN, "dr-croydon", site_ids=(2,))
    seen = await gql(client, ATTENDANCE, croydon, i=attended)
    assert seen["data"]["recordAttendance"]["appointment"]["status"] == "FULFILLED"


ME = """{ me { nhsNumber referrals(first: 10) { nodes { id status
  offer { id } appointments { nodes { id status } } } } } }"""
NEAR = """query($r: ID!) { node(id: $r) { ... on Referral { candidateSlots(first: 3) {
  nodes { id startsAt site { name distanceKm(latitude: 51.54, longitude: -0.16) } } } } } }"""
RESCHEDULE = """mutation($i: RescheduleAppointmentInput!) { rescheduleAppointment(input: $i) {
  appointment { id status slot { id } rebookedFrom { status } } } }"""


async def offers_seen_by(client: httpx.AsyncClient, headers: dict[str, str]) -> dict[int, str]:
    """The live offers on the caller's own referrals, as the app sees them through ``me``."""
    me = (await gql(client, ME, headers))["data"]["me"]
    return {
        key_of(node["id"]): node["offer"]["id"]
        for node in me["referrals"]["nodes"]
        if node["offer"] is not None
    }


async def test_a_patients_booking_journey_through_the_app(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    """Find my referrals, see slots near me, hold, book, reschedule, cancel; then an offer
    arrives, is declined, another arrives and is accepted — all with the patient's token."""
    me = (await gql(client, ME, PATIENT_2))["data"]["me"]
    assert me["nhsNumber"] == "4010232137"
    mine = [node["id"] for node in me["referrals"]["nodes"]]
    assert sorted(key_of(one) for one in mine) == [4, 5, 6, 7]
    assert (await gql(client, ME, CLERK))["data"]["me"] is None
    near = await gql(client, NEAR, PATIENT_2, r=referral(4))
    [first, second, third] = near["data"]["node"]["candidateSlots"]["nodes"]
    assert key_of(first["id"]) == 1  # soonest first, at the site nearest home
    assert first["site"]["distanceKm"] < 5
    held = await gql(client, HOLD, PATIENT_2, i={"referralId": referral(4), "slotId": first["id"]})
    assert held["data"]["holdSlot"]["slot"]["status"] == "BUSY_TENTATIVE"
    key = {"idempotencyKey": "app-2-booking-1"}
    wanted = {"referralId": referral(4), "slotId": first["id"], **key}
    booked = await gql(client, BOOK, PATIENT_2, i=wanted)
    appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
    moved = await gql(
        client, RESCHEDULE, PATIENT_2, i={"appointmentId": appointment, "slotId": second["id"]}
    )
    new = moved["data"]["rescheduleAppointment"]["appointment"]
    assert new["slot"]["id"] == second["id"]
    assert new["rebookedFrom"]["status"] == "CANCELLED"
    await gql(client, CANCEL, PATIENT_2, i={"appointmentId": new["id"], "reason": "PATIENT_ILL"})
    # each slot given up went at once, as an offer, to the most urgent referral waiting —
    # this patient's urgent one, then (that one awaiting its answer) the suspected cancer
    assert await offers_seen_by(client, PATIENT_2) == {5: first["id"], 6: second["id"]}
    await gql(client, DECLINE, PATIENT_2, i={"referralId": referral(5), "reason": "too soon"})
    after = await offers_seen_by(client, PATIENT_2)
    assert 5 not in after
    assert after[6] == second["id"]
    taker = await db.fetchval("SELECT held_for_referral_id FROM slots WHERE id = $1", 1)
    assert taker not in (None, 5)  # declined, and offered on to someone else
    accepted = await gql(client, ACCEPT, PATIENT_2, i={"referralId": referral(6)})
    assert accepted["data"]["acceptOffer"]["appointment"]["slot"]["id"] == second["id"]
    assert third["id"] != second["id"]
    other = bearer(Role.PATIENT, "patient-1", 1)
    assert code(await gql(client, ACCEPT, other, i={"referralId": referral(7)})) == "NOT_FOUND"
    statuses = await db.fetch("SELECT status FROM appointments ORDER BY id")
    assert [row["status"] for row in statuses] == ["cancelled", "cancelled", "booked"]
