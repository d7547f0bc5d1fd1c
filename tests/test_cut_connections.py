"""Bookings through a proxy that cuts the app's PostgreSQL connections at random moments —
before, during and after COMMIT, and anywhere else — for real sockets and a real server.

What must hold: no half-written booking; every booking answered OK is in the database; every
other answer is coded, and either changed nothing or, sent again with the same idempotency
key once the network is calm, is answered as it was committed, never booked twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import orjson
import pytest

from care_graph.api.ids import encode_global_id, key_of_type
from care_graph.auth import Role
from care_graph.config import Limits
from care_graph.db.bookable import bookable, referral_waits
from care_graph.domain.lifecycle import ReferralStatus
from care_graph.domain.statuses import AppointmentStatus, SlotStatus
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory, bearer, fetch_one, live_server
from tests.fault_proxy import Cut, FaultProxy

pytestmark = pytest.mark.slow

BOOKINGS = 240
CLIENTS = 8
SUBJECT = "proxy-clerk"
BOOK = """mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) {
  appointment { id status } } }"""
# a rule's answer: the booking was refused and nothing was written
REFUSED = {
    "SLOT_UNAVAILABLE",
    "INVALID_TRANSITION",
    "SLOT_BEYOND_MAX_TRAVEL",
    "SLOT_BEFORE_EARLIEST_DATE",
    "CONFLICT_RETRY_EXHAUSTED",
}
UNKNOWN = {"OUTCOME_UNKNOWN", "SERVICE_UNAVAILABLE"}  # send again with the same key


@dataclass
class Attempt:
    """One booking and what it was answered, first under faults, then when calm."""

    key: str
    referral: int
    slot: int
    first: str = ""  # "OK" or an error code
    final: str = ""
    appointment: int | None = None


@pytest.fixture
def world_url(databases: DatabaseFactory) -> str:
    # the tiny demo with more referrals, so that enough of them can be booked at once
    return databases.create(seeded=True, scale=SCALES["tiny"].with_overrides(referrals=1200))


@pytest.fixture
async def proxy(world_url: str) -> AsyncIterator[FaultProxy]:
    cutter = FaultProxy.to(world_url, seed=13)
    await cutter.start()
    try:
        yield cutter
    finally:
        await cutter.close()


async def pairs(url: str) -> list[tuple[int, int]]:
    """Waiting referrals, each with a slot it may take, most slots wanted once; every tenth
    booking wants a slot another wants too, so some lose a race and are refused by the
    rules (SLOT_UNAVAILABLE)."""
    sql = (
        "SELECT coalesce(json_agg(json_build_array(r.id, options.ids)), '[]')::text"
        " FROM referrals r CROSS JOIN LATERAL ("
        f"  SELECT array_agg(s.id ORDER BY s.starts_at, s.id) AS ids FROM slots s"
        f"  WHERE {bookable('r', 's')}"
        f") options WHERE {referral_waits('r')} AND options.ids IS NOT NULL"
    )
    [found] = await fetch_one(url, sql)
    taken: set[int] = set()
    chosen: list[tuple[int, int]] = []
    for referral, slots in orjson.loads(found):
        free = [slot for slot in slots if slot not in taken]
        contested = [slot for slot in slots if slot in taken]
        wanted = next(iter(contested if contested and len(chosen) % 10 == 9 else free), None)
        if wanted is not None:
            taken.add(wanted)
            chosen.append((referral, wanted))
    return chosen[:BOOKINGS]


def answer_of(response: httpx.Response) -> tuple[str, int | None]:
    """("OK", appointment) or (code, None); anything uncoded fails the test."""
    assert response.headers["content-type"].startswith("application/"), response.text
    body = response.json()
    if body.get("errors"):
        code = body["errors"][0]["extensions"]["code"]
        assert response.status_code in (200, 503), (response.status_code, body)
        return code, None
    assert response.status_code == 200, body
    appointment = body["data"]["bookAppointment"]["appointment"]
    assert appointment["status"] == "BOOKED"
    return "OK", key_of_type(appointment["id"], "Appointment")


async def send(client: httpx.AsyncClient, attempt: Attempt) -> tuple[str, int | None]:
    """Book once; a reset at the HTTP level would be a failure of ours, so none is caught."""
    variables: dict[str, Any] = {
        "i": {
            "referralId": encode_global_id("Referral", attempt.referral),
            "slotId": encode_global_id("Slot", attempt.slot),
            "idempotencyKey": attempt.key,
        }
    }
    return answer_of(await client.post("/graphql", json={"query": BOOK, "variables": variables}))


async def stored_appointment(url: str, key: str) -> int | None:
    """The appointment a booking's committed key answers with, or None if none committed."""
    row = await fetch_one(
        url,
        "SELECT (response->>'appointment_id')::bigint FROM idempotency_keys"
        " WHERE actor = $1 AND key = $2",
        SUBJECT,
        key,
    )
    return None if row is None else int(row[0])


async def claimed(url: str, key: str) -> bool:
    row = await fetch_one(
        url, "SELECT 1 FROM idempotency_keys WHERE actor = $1 AND key = $2", SUBJECT, key
    )
    return row is not None


async def test_cut_connections_never_lose_or_double_a_booking(
    world_url: str, proxy: FaultProxy
) -> None:
    found = await pairs(world_url)
    assert len(found) >= 200, len(found)
    attempts = [
        Attempt(f"cut-{index:04d}-{referral}", referral, slot)
        for index, (referral, slot) in enumerate(found)
    ]
    [before] = await fetch_one(world_url, "SELECT coalesce(max(id), 0) FROM appointments")
    headers = bearer(Role.SCHEDULER, SUBJECT)
    async with (
        live_server(
            proxy.url(world_url),
            pool_min_size=2,
            pool_max_size=CLIENTS,
            pool_acquire_timeout_s=2,
            limits=replace(Limits(), request_burst=100_000),
            sweep_seconds=0,
        ) as address,
        httpx.AsyncClient(base_url=f"http://{address}", headers=headers, timeout=60) as client,
    ):
        proxy.commit_cut_rate, proxy.stream_cut_rate = 0.3, 0.005
        queue: asyncio.Queue[Attempt] = asyncio.Queue()
        for attempt in attempts:
            queue.put_nowait(attempt)

        async def book_under_faults() -> None:
            while not queue.empty():
                attempt = queue.get_nowait()
                attempt.first, attempt.appointment = await send(client, attempt)
                if attempt.first in REFUSED or attempt.first == "SERVICE_UNAVAILABLE":
                    # refused or never begun: nothing of it was written
                    assert not await claimed(world_url, attempt.key), attempt

        await asyncio.gather(*(book_under_faults() for _ in range(CLIENTS)))
        proxy.calm()
        committed_unanswered: dict[str, int] = {}  # key: the appointment its commit made
        for attempt in attempts:
            if attempt.first == "OUTCOME_UNKNOWN":
                stored = await stored_appointment(world_url, attempt.key)
                if stored is not None:
                    committed_unanswered[attempt.key] = stored
        for attempt in attempts:
            attempt.final = attempt.first
            for _ in range(5):
                if attempt.final not in UNKNOWN:
                    break
                attempt.final, attempt.appointment = await send(client, attempt)
                if attempt.final in UNKNOWN:
                    await asyncio.sleep(0.2)
            if attempt.final == "OK":  # the same key again: the same booking, not another
                assert await send(client, attempt) == ("OK", attempt.appointment)

    # some commits went through unanswered, and their retries answered what they had done
    assert len(committed_unanswered) >= 3, committed_unanswered
    for attempt in attempts:
        if attempt.key in committed_unanswered:
            assert attempt.appointment == committed_unanswered[attempt.key]
    # the faults were real and of every kind
    assert sum(proxy.cuts.values()) >= 40, proxy.cuts
    for cut in Cut:
        assert proxy.cuts[cut] >= 3, proxy.cuts
    firsts = [attempt.first for attempt in attempts]
    assert firsts.count("OUTCOME_UNKNOWN") >= 10, firsts
    for attempt in attempts:
        assert attempt.first == "OK" or attempt.first in REFUSED | UNKNOWN, attempt
        assert attempt.final == "OK" or attempt.final in REFUSED, attempt

    # every OK is durable, and nothing was booked that was not answered OK
    booked = {attempt.appointment for attempt in attempts if attempt.final == "OK"}
    [rows] = await fetch_one(
        world_url,
        "SELECT coalesce(json_agg(json_build_array(a.id, a.referral_id, a.slot_id)), '[]')::text"
        f" FROM appointments a WHERE a.id > $1 AND a.status = '{AppointmentStatus.BOOKED}'",
        before,
    )
    in_database = {
        appointment: (referral, slot) for appointment, referral, slot in orjson.loads(rows)
    }
    assert set(in_database) == booked
    for attempt in attempts:
        if attempt.final == "OK":
            assert in_database[attempt.appointment or 0] == (attempt.referral, attempt.slot)
    # and nothing half-written: each booking moved its referral and slot with it
    [torn] = await fetch_one(
        world_url,
        "SELECT count(*) FROM appointments a JOIN referrals r ON r.id = a.referral_id"
        " JOIN slots s ON s.id = a.slot_id"
        f" WHERE a.id > $1 AND a.status = '{AppointmentStatus.BOOKED}'"
        f" AND (r.status <> '{ReferralStatus.BOOKED}' OR s.status <> '{SlotStatus.BUSY}')",
        before,
    )
    assert torn == 0
    [orphans] = await fetch_one(
        world_url,
        "SELECT count(*) FROM idempotency_keys k WHERE k.actor = $1 AND k.response = 'null'",
        SUBJECT,
    )
    assert orphans == 0
