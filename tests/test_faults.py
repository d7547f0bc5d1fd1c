"""Faults injected for real, answered with a code: a pool saturated by statements waiting on a
lock, and the API's database backends terminated under it. A request never waits unbounded
for a connection, never gets a plain 500, and /healthz never depends on the pool."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role
from care_graph.testing import DatabaseFactory, bearer, fetch_one, live_server
from tests.test_auth import WORLD

BOOK = """mutation($r: ID!, $s: ID!) { bookAppointment(input: {referralId: $r, slotId: $s}) {
  appointment { id } } }"""
READ = {"query": "{ services(first: 1) { nodes { code } } }"}


@pytest.fixture
def world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


@pytest.fixture
async def server(world_url: str) -> AsyncIterator[str]:
    async with live_server(
        world_url, pool_min_size=1, pool_max_size=2, pool_acquire_timeout_s=0.5
    ) as address:
        yield address


async def test_a_saturated_pool_answers_503_fast_and_healthz_stays_quick(
    server: str, world_url: str
) -> None:
    """The finding: 64 slow statements against a pool of 10 made /healthz and a cheap query
    wait up to 30 s. Here two bookings wait on a slot's row lock held by another session,
    which holds both of the pool's connections."""
    holder = await asyncpg.connect(world_url)
    clerk = bearer(Role.SCHEDULER, "clerk")
    async with httpx.AsyncClient(base_url=f"http://{server}", headers=clerk, timeout=30) as client:
        try:
            async with holder.transaction():
                await holder.execute("SELECT 1 FROM slots WHERE id = 4 FOR UPDATE")
                waiting = [
                    asyncio.create_task(
                        client.post(
                            "/graphql",
                            json={
                                "query": BOOK,
                                "variables": {
                                    "r": encode_global_id("Referral", referral),
                                    "s": encode_global_id("Slot", 4),
                                },
                            },
                        )
                    )
                    for referral in (1, 2)
                ]
                await asyncio.sleep(0.5)  # both bookings now hold a connection, waiting
                started = time.perf_counter()
                health = await client.get("/healthz")
                healthz_wait = time.perf_counter() - started
                started = time.perf_counter()
                refused = await client.post("/graphql", json=READ)
                refused_wait = time.perf_counter() - started
            booked = [await task for task in waiting]
        finally:
            await holder.close()
        assert health.status_code == 200
        assert healthz_wait < 0.5, healthz_wait
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
        assert refused_wait < 3, refused_wait  # the 0.5 s acquire timeout, not 30 s
        assert all(response.status_code == 200 for response in booked)
        assert (await client.post("/graphql", json=READ)).status_code == 200  # and after


async def test_terminated_backends_are_answered_with_a_code_then_recovered(
    server: str, world_url: str
) -> None:
    """Every connection of the API's pool is killed at the server; each request after gets
    an answer with a code (200, or 503 SERVICE_UNAVAILABLE), none a 500, and within a few
    requests the pool has replaced its connections."""
    clerk = bearer(Role.SCHEDULER, "clerk")
    answers: list[tuple[int, Any]] = []
    async with httpx.AsyncClient(base_url=f"http://{server}", headers=clerk, timeout=30) as client:
        assert (await client.post("/graphql", json=READ)).status_code == 200
        [killed] = await fetch_one(
            world_url,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name = 'care_graph' AND datname = current_database()"
            " AND pid <> pg_backend_pid()",
        )
        assert killed >= 1
        for _ in range(6):
            response = await client.post("/graphql", json=READ)
            body = response.json()
            answers.append((response.status_code, body.get("errors")))
    for status, errors in answers:
        assert status in (200, 503), answers
        if status == 503:
            assert errors[0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
    assert answers[-1] == (200, None), answers


async def test_a_mutation_that_lost_its_connection_says_so_and_its_retry_is_safe(
    server: str, world_url: str
) -> None:
    """A booking's backend is terminated while the booking waits on a row lock, inside its
    transaction: the answer is OUTCOME_UNKNOWN (503), and sending it again with the same
    idempotency key books it exactly once."""
    holder = await asyncpg.connect(world_url)
    clerk = bearer(Role.SCHEDULER, "clerk")
    book = {
        "query": """mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) {
            appointment { id status } } }""",
        "variables": {
            "i": {
                "referralId": encode_global_id("Referral", 1),
                "slotId": encode_global_id("Slot", 4),
                "idempotencyKey": "retry-after-a-lost-connection",
            }
        },
    }
    async with httpx.AsyncClient(base_url=f"http://{server}", headers=clerk, timeout=30) as client:
        try:
            async with holder.transaction():
                await holder.execute("SELECT 1 FROM slots WHERE id = 4 FOR UPDATE")
                booking = asyncio.create_task(client.post("/graphql", json=book))
                waiting = None
                for _ in range(50):  # until the booking waits on the lock
                    waiting = await holder.fetchval(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
                    )
                    if waiting is not None:
                        break
                    await asyncio.sleep(0.1)
                assert waiting is not None
                await holder.execute("SELECT pg_terminate_backend($1)", waiting)
                lost = await booking
        finally:
            await holder.close()
        assert lost.status_code == 503
        assert lost.json()["errors"][0]["extensions"]["code"] == "OUTCOME_UNKNOWN"
        first = (await client.post("/graphql", json=book)).json()
        again = (await client.post("/graphql", json=book)).json()
    assert first["data"]["bookAppointment"]["appointment"]["status"] == "BOOKED"
    assert again == first
    [booked] = await fetch_one(
        world_url, "SELECT count(*) FROM appointments WHERE slot_id = 4 AND status = 'booked'"
    )
    assert booked == 1
