"""Bookings sent while parts fail, and the checks that nothing was lost, torn or doubled:
shared by the tests that cut connections and the one that restarts PostgreSQL.

An answer is ``OK``, a rule's refusal (nothing written), or one to send again with the same
idempotency key (``OUTCOME_UNKNOWN``, ``SERVICE_UNAVAILABLE``); anything uncoded fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import orjson

from care_graph.api.ids import encode_global_id, key_of_type
from care_graph.config import Limits
from care_graph.db.bookable import bookable, referral_waits
from care_graph.domain.lifecycle import ReferralStatus
from care_graph.domain.statuses import AppointmentStatus, SlotStatus
from care_graph.testing import fetch_one

SUBJECT = "fault-clerk"
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


def server_settings(clients: int) -> dict[str, Any]:
    """A live server's settings for ``clients`` booking at once: a connection each, no rate
    limit in the way, and no sweeper offering slots behind the test's back."""
    return {
        "pool_min_size": 2,
        "pool_max_size": clients,
        "pool_acquire_timeout_s": 2,
        "limits": replace(Limits(), request_burst=100_000),
        "sweep_seconds": 0,
    }


@dataclass
class Attempt:
    """One booking and what it was answered, first under faults, then when calm."""

    key: str
    referral: int
    slot: int
    first: str = ""  # "OK" or an error code
    final: str = ""
    appointment: int | None = None


async def pairs(url: str, limit: int) -> list[tuple[int, int]]:
    """Up to ``limit`` waiting referrals, each with a slot it may take, most slots wanted once;
    every tenth booking wants a slot another wants too, so some lose a race and are refused by
    the rules (SLOT_UNAVAILABLE)."""
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
    return chosen[:limit]


def attempts_for(found: list[tuple[int, int]], prefix: str) -> list[Attempt]:
    """One attempt per pair, each with its own idempotency key."""
    return [
        Attempt(f"{prefix}-{index:04d}-{referral}", referral, slot)
        for index, (referral, slot) in enumerate(found)
    ]


def answer_of(response: httpx.Response) -> tuple[str, int | None]:
    """("OK", appointment) or (code, None); anything uncoded fails the test."""
    assert response.headers["content-type"].startswith("application/"), response.text
    body = response.json()
    if body.get("errors"):
        code = body["errors"][0]["extensions"]["code"]
        assert response.status_code in (200, 503), (response.status_code, body)
        if response.status_code == 503:
            assert response.headers["retry-after"].isdigit()
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


async def book_concurrently(
    client: httpx.AsyncClient,
    attempts: list[Attempt],
    clients: int,
    then: Callable[[Attempt], Awaitable[None]],
) -> None:
    """Send every attempt once, ``clients`` at a time; ``then`` sees each as it is answered."""
    queue: asyncio.Queue[Attempt] = asyncio.Queue()
    for attempt in attempts:
        queue.put_nowait(attempt)

    async def one_client() -> None:
        while not queue.empty():
            attempt = queue.get_nowait()
            attempt.first, attempt.appointment = await send(client, attempt)
            await then(attempt)

    await asyncio.gather(*(one_client() for _ in range(clients)))


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
    """Whether anything of a booking's key was written."""
    row = await fetch_one(
        url, "SELECT 1 FROM idempotency_keys WHERE actor = $1 AND key = $2", SUBJECT, key
    )
    return row is not None


async def settle(client: httpx.AsyncClient, attempts: list[Attempt], tries: int = 5) -> None:
    """Once the faults are over, send each unknown booking again with its key until it is
    answered for good; a booking answered OK, sent again, must answer the same appointment."""
    for attempt in attempts:
        attempt.final = attempt.first
        for _ in range(tries):
            if attempt.final not in UNKNOWN:
                break
            attempt.final, attempt.appointment = await send(client, attempt)
            if attempt.final in UNKNOWN:
                await asyncio.sleep(0.2)
        if attempt.final == "OK":
            assert await send(client, attempt) == ("OK", attempt.appointment)


async def assert_nothing_lost(url: str, attempts: list[Attempt], after_appointment: int) -> None:
    """Every booking answered OK is in the database, nothing else was booked, none is torn
    (its referral and slot moved with it), and no key was left claimed without an answer."""
    for attempt in attempts:
        assert attempt.first == "OK" or attempt.first in REFUSED | UNKNOWN, attempt
        assert attempt.final == "OK" or attempt.final in REFUSED, attempt
    booked = {attempt.appointment for attempt in attempts if attempt.final == "OK"}
    [rows] = await fetch_one(
        url,
        "SELECT coalesce(json_agg(json_build_array(a.id, a.referral_id, a.slot_id)), '[]')::text"
        f" FROM appointments a WHERE a.id > $1 AND a.status = '{AppointmentStatus.BOOKED}'",
        after_appointment,
    )
    in_database = {
        appointment: (referral, slot) for appointment, referral, slot in orjson.loads(rows)
    }
    assert set(in_database) == booked
    for attempt in attempts:
        if attempt.final == "OK":
            assert in_database[attempt.appointment or 0] == (attempt.referral, attempt.slot)
    [torn] = await fetch_one(
        url,
        "SELECT count(*) FROM appointments a JOIN referrals r ON r.id = a.referral_id"
        " JOIN slots s ON s.id = a.slot_id"
        f" WHERE a.id > $1 AND a.status = '{AppointmentStatus.BOOKED}'"
        f" AND (r.status <> '{ReferralStatus.BOOKED}' OR s.status <> '{SlotStatus.BUSY}')",
        after_appointment,
    )
    assert torn == 0
    [orphans] = await fetch_one(
        url,
        "SELECT count(*) FROM idempotency_keys k WHERE k.actor = $1 AND k.response = 'null'",
        SUBJECT,
    )
    assert orphans == 0


async def last_appointment(url: str) -> int:
    """The highest appointment id so far, so that a test looks only at what it booked."""
    [found] = await fetch_one(url, "SELECT coalesce(max(id), 0) FROM appointments")
    return int(found)
