"""Booking through the GraphQL endpoint, over real ASGI requests against the real database:
no double booking under concurrency, idempotent retries, holds, cancellation, audit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import httpx
import pytest

from care_graph.api.ids import encode_global_id
from care_graph.config import Limits
from care_graph.db.pool import connect
from care_graph.testing import DatabaseFactory, asgi_client, bearer

SLOTS = 100
REFERRALS = 1000

WORLD = f"""
INSERT INTO regions VALUES ('LONDON', 'London');
INSERT INTO skills VALUES ('CARDIOLOGY', 'Cardiology'), ('DERMATOLOGY', 'Dermatology');
INSERT INTO services (id, code, name, kind, slot_minutes) VALUES
    (1, 'CARDIOLOGY', 'Cardiology', 'SPECIALTY', 20),
    (2, 'DERMATOLOGY', 'Dermatology', 'SPECIALTY', 15);
INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude)
    VALUES (1, 'S1', 'Camden General', 'LONDON', 'Camden', 'NW1 1AA', 51.53, -0.14);
INSERT INTO site_services VALUES (1, 1), (1, 2);
INSERT INTO staff (id, given_name, family_name, role, base_site_id)
    SELECT n, 'Ada', 'Jones ' || n, 'CONSULTANT', 1 FROM generate_series(1, {SLOTS}) n;
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at)
    SELECT n, 1, 1, n, date_trunc('day', now()) + interval '3 days 9 hours',
           date_trunc('day', now()) + interval '3 days 9 hours 20 minutes'
    FROM generate_series(1, {SLOTS}) n;
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at)
    VALUES ({SLOTS + 1}, 2, 1, 1, date_trunc('day', now()) + interval '4 days 9 hours',
            date_trunc('day', now()) + interval '4 days 9 hours 15 minutes');
INSERT INTO patients (id, nhs_number, given_name, family_name, date_of_birth, postcode,
                      region_code, latitude, longitude)
    VALUES (1, '9434765919', 'Sam', 'Khan', '1970-05-04', 'NW1 2BB', 'LONDON', 51.53, -0.15);
INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind, to_service_id,
                       priority, status, received_at, clock_start, breach_date)
    SELECT n, (100000000000 + n)::text, 1, 'Dr A Smith', 'GP', 1, 'ROUTINE', 'ACCEPTED',
           now() - interval '30 days', now() - interval '30 days', current_date + 90
    FROM generate_series(1, {REFERRALS}) n;
UPDATE referrals SET status = 'SUBMITTED' WHERE id = {REFERRALS};
"""

BOOK = """mutation Book($input: BookAppointmentInput!) {
  bookAppointment(input: $input) { appointment { id status slot { id status } } } }"""
HOLD = """mutation Hold($input: HoldSlotInput!) {
  holdSlot(input: $input) { slot { id status holdExpiresAt } } }"""
ACCEPT = """mutation Accept($input: AcceptOfferInput!) {
  acceptOffer(input: $input) { appointment { id status slot { id status } } } }"""
CANCEL = """mutation Cancel($input: CancelAppointmentInput!) {
  cancelAppointment(input: $input) { appointment { id status slot { status } } } }"""


def referral(n: int) -> str:
    return encode_global_id("Referral", n)


def slot(n: int) -> str:
    return encode_global_id("Slot", n)


@pytest.fixture
def world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


@pytest.fixture
async def client(world_url: str) -> AsyncIterator[httpx.AsyncClient]:
    # a thousand attempts at once from one clerk: double booking is tested here, not the rate
    # limit nor the bounded wait for a connection (each would refuse some on purpose)
    limits = replace(Limits(), request_burst=100_000)
    async with asgi_client(
        world_url,
        headers=bearer(),
        pool_max_size=20,
        pool_acquire_timeout_s=120,
        limits=limits,
    ) as client:
        yield client


@pytest.fixture
async def db(world_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection = await connect(world_url)
    try:
        yield connection
    finally:
        await connection.close()


async def call(client: httpx.AsyncClient, query: str, **input_: Any) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": query, "variables": {"input": input_}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def code_of(body: dict[str, Any]) -> str:
    assert body["data"] is None, body
    [error] = body["errors"]
    code: str = error["extensions"]["code"]
    return code


async def test_a_thousand_concurrent_attempts_on_a_hundred_slots(
    client: httpx.AsyncClient,
    db: asyncpg.Connection[Any],
) -> None:
    attempts = [
        call(client, BOOK, referralId=referral(n), slotId=slot(n % SLOTS + 1))
        for n in range(1, REFERRALS)
    ]
    results = await asyncio.gather(*attempts)
    booked = [r for r in results if r.get("data")]
    refused = [code_of(r) for r in results if not r.get("data")]
    assert len(booked) == SLOTS
    assert set(refused) == {"SLOT_UNAVAILABLE"}
    assert len(refused) == REFERRALS - 1 - SLOTS
    double = await db.fetchval("""SELECT count(*) FROM (SELECT slot_id FROM appointments
        WHERE status = 'booked' GROUP BY slot_id HAVING count(*) > 1) d""")
    overlaps = await db.fetchval("""SELECT count(*) FROM slots a JOIN slots b
        ON a.staff_id = b.staff_id AND a.id < b.id AND a.during && b.during""")
    assert (double, overlaps) == (0, 0)
    assert await db.fetchval("SELECT count(*) FROM slots WHERE status = 'busy'") == SLOTS
    assert await db.fetchval("SELECT count(*) FROM referrals WHERE status = 'BOOKED'") == SLOTS
    assert await db.fetchval("SELECT count(*) FROM audit_events WHERE operation = 'BOOK'") == SLOTS


async def test_one_key_sent_fifty_times_books_once(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    results = await asyncio.gather(
        *(
            call(client, BOOK, referralId=referral(7), slotId=slot(7), idempotencyKey="key-7-7-abc")
            for _ in range(50)
        )
    )
    assert all(result == results[0] for result in results)
    assert results[0]["data"]["bookAppointment"]["appointment"]["status"] == "BOOKED"
    assert await db.fetchval("SELECT count(*) FROM appointments") == 1


async def test_a_key_reused_for_other_input_is_refused(client: httpx.AsyncClient) -> None:
    first = await call(
        client, BOOK, referralId=referral(1), slotId=slot(1), idempotencyKey="key-reused-1"
    )
    assert first["data"] is not None
    second = await call(
        client, BOOK, referralId=referral(2), slotId=slot(2), idempotencyKey="key-reused-1"
    )
    assert code_of(second) == "IDEMPOTENCY_KEY_REUSED"


async def test_a_failed_booking_leaves_nothing(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    assert (await call(client, BOOK, referralId=referral(1), slotId=slot(1)))["data"]
    before = await db.fetch(
        "SELECT count(*) FROM appointments UNION ALL"
        " SELECT count(*) FROM audit_events UNION ALL"
        " SELECT count(*) FROM idempotency_keys"
    )
    refused = await call(
        client, BOOK, referralId=referral(2), slotId=slot(1), idempotencyKey="key-fails-1"
    )
    assert code_of(refused) == "SLOT_UNAVAILABLE"
    after = await db.fetch(
        "SELECT count(*) FROM appointments UNION ALL"
        " SELECT count(*) FROM audit_events UNION ALL"
        " SELECT count(*) FROM idempotency_keys"
    )
    assert before == after
    assert await db.fetchval("SELECT status FROM referrals WHERE id = 2") == "ACCEPTED"


async def test_wrong_service_and_wrong_state_and_unknown_ids(client: httpx.AsyncClient) -> None:
    mismatch = await call(client, BOOK, referralId=referral(1), slotId=slot(SLOTS + 1))
    assert code_of(mismatch) == "SLOT_SERVICE_MISMATCH"
    submitted = await call(client, BOOK, referralId=referral(REFERRALS), slotId=slot(1))
    assert code_of(submitted) == "INVALID_TRANSITION"
    assert submitted["errors"][0]["message"] == "a referral that is SUBMITTED cannot become BOOKED"
    unknown = await call(client, BOOK, referralId=referral(99_999), slotId=slot(1))
    assert code_of(unknown) == "NOT_FOUND"
    junk = await call(client, BOOK, referralId="junk", slotId=slot(1))
    assert code_of(junk) == "NOT_FOUND"


async def test_hold_then_book(client: httpx.AsyncClient, db: asyncpg.Connection[Any]) -> None:
    held = await call(client, HOLD, referralId=referral(3), slotId=slot(3), minutes=5)
    assert held["data"]["holdSlot"]["slot"]["status"] == "BUSY_TENTATIVE"
    other = await call(client, BOOK, referralId=referral(4), slotId=slot(3))
    assert code_of(other) == "SLOT_UNAVAILABLE"
    mine = await call(client, BOOK, referralId=referral(3), slotId=slot(3))
    assert mine["data"]["bookAppointment"]["appointment"]["slot"]["status"] == "BUSY"
    assert await db.fetchval("SELECT hold_expires_at FROM slots WHERE id = 3") is None


async def test_a_lapsed_hold_is_free_to_everyone(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    await call(client, HOLD, referralId=referral(5), slotId=slot(5), minutes=5)
    await call(client, HOLD, referralId=referral(7), slotId=slot(7), minutes=5)
    await db.execute(
        "UPDATE slots SET hold_expires_at = now() - interval '1 minute' WHERE id IN (5, 7)"
    )
    lapsed = await call(client, ACCEPT, referralId=referral(5))
    assert code_of(lapsed) == "HOLD_EXPIRED"  # an offer is answered while it is live
    taken = await call(client, BOOK, referralId=referral(6), slotId=slot(5))
    assert taken["data"] is not None  # a lapsed hold does not block anyone else
    own = await call(client, BOOK, referralId=referral(7), slotId=slot(7))
    assert own["data"] is not None  # nor its own referral, as a plan would book it


async def test_cancel_offers_the_slot_to_the_best_waiting_referral(
    client: httpx.AsyncClient,
    db: asyncpg.Connection[Any],
) -> None:
    booked = await call(client, BOOK, referralId=referral(8), slotId=slot(8))
    appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
    cancelled = await call(client, CANCEL, appointmentId=appointment, reason="PATIENT_ILL")
    assert cancelled["data"]["cancelAppointment"]["appointment"] == {
        "id": appointment,
        "status": "CANCELLED",
        "slot": {"status": "BUSY_TENTATIVE"},  # freed, and at once held for someone waiting
    }
    assert await db.fetchval("SELECT status FROM referrals WHERE id = 8") == "ACCEPTED"
    holder = await db.fetchval("SELECT held_for_referral_id FROM slots WHERE id = 8")
    assert holder is not None
    assert holder != 8  # not offered back to the referral that gave it up
    again = await call(client, CANCEL, appointmentId=appointment, reason="PATIENT_ILL")
    assert code_of(again) == "INVALID_TRANSITION"
    bad_reason = await call(client, CANCEL, appointmentId=appointment, reason="BORED")
    assert code_of(bad_reason) == "INVALID_ARGUMENT"
    someone_else = 9 if holder != 9 else 10
    refused = await call(client, BOOK, referralId=referral(someone_else), slotId=slot(8))
    assert code_of(refused) == "SLOT_UNAVAILABLE"
    taken = await call(client, BOOK, referralId=referral(holder), slotId=slot(8))
    assert taken["data"] is not None
    assert await db.fetchval("SELECT array_agg(operation ORDER BY id) FROM audit_events") == [
        "BOOK",
        "CANCEL",
        "OFFER",
        "BOOK",
    ]


async def test_a_cancellation_whose_offer_fails_changes_nothing(
    client: httpx.AsyncClient,
    db: asyncpg.Connection[Any],
) -> None:
    booked = await call(client, BOOK, referralId=referral(8), slotId=slot(8))
    appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
    # the cancellation itself succeeds; holding the freed slot for someone else then fails
    await db.execute(
        """
        CREATE FUNCTION refuse_holds() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'holds are refused here'; END $$;
        CREATE TRIGGER refuse_holds BEFORE UPDATE ON slots FOR EACH ROW
        WHEN (NEW.status = 'busy-tentative') EXECUTE FUNCTION refuse_holds();
        """
    )
    failed = await call(client, CANCEL, appointmentId=appointment, reason="PATIENT_ILL")
    assert code_of(failed) == "INTERNAL_SERVER_ERROR"
    assert "holds are refused" not in str(failed)
    assert await db.fetchval("SELECT status FROM appointments") == "booked"
    assert await db.fetchval("SELECT status FROM slots WHERE id = 8") == "busy"
    assert await db.fetchval("SELECT status FROM referrals WHERE id = 8") == "BOOKED"
    assert await db.fetchval("SELECT count(*) FROM audit_events WHERE operation = 'CANCEL'") == 0
    await db.execute("DROP TRIGGER refuse_holds ON slots")
    retried = await call(client, CANCEL, appointmentId=appointment, reason="PATIENT_ILL")
    assert retried["data"]["cancelAppointment"]["appointment"]["status"] == "CANCELLED"
