"""Bookings through a proxy that cuts the app's PostgreSQL connections at random moments —
before, during and after COMMIT, and anywhere else — for real sockets and a real server.

What must hold: no half-written booking; every booking answered OK is in the database; every
other answer is coded, and either changed nothing or, sent again with the same idempotency
key once the network is calm, is answered as it was committed, never booked twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from care_graph.auth import Role
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory, bearer, live_server
from tests.bookings_under_fault import (
    REFUSED,
    SUBJECT,
    Attempt,
    assert_nothing_lost,
    attempts_for,
    book_concurrently,
    claimed,
    last_appointment,
    pairs,
    server_settings,
    settle,
    stored_appointment,
)
from tests.fault_proxy import Cut, FaultProxy

pytestmark = pytest.mark.slow

BOOKINGS = 240
CLIENTS = 8


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


async def test_cut_connections_never_lose_or_double_a_booking(
    world_url: str, proxy: FaultProxy
) -> None:
    attempts = attempts_for(await pairs(world_url, BOOKINGS), "cut")
    assert len(attempts) >= 200, len(attempts)
    before = await last_appointment(world_url)
    headers = bearer(Role.SCHEDULER, SUBJECT)
    async with (
        live_server(proxy.url(world_url), **server_settings(CLIENTS)) as address,
        httpx.AsyncClient(base_url=f"http://{address}", headers=headers, timeout=60) as client,
    ):
        proxy.commit_cut_rate, proxy.stream_cut_rate = 0.3, 0.005

        async def nothing_written_unless_begun(attempt: Attempt) -> None:
            if attempt.first in REFUSED or attempt.first == "SERVICE_UNAVAILABLE":
                # refused or never begun: nothing of it was written
                assert not await claimed(world_url, attempt.key), attempt

        await book_concurrently(client, attempts, CLIENTS, nothing_written_unless_begun)
        proxy.calm()
        committed_unanswered: dict[str, int] = {}  # key: the appointment its commit made
        for attempt in attempts:
            if attempt.first == "OUTCOME_UNKNOWN":
                stored = await stored_appointment(world_url, attempt.key)
                if stored is not None:
                    committed_unanswered[attempt.key] = stored
        await settle(client, attempts)

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
    await assert_nothing_lost(world_url, attempts, before)
