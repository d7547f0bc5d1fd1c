"""PostgreSQL restarted (``pg_ctl restart -m fast``) under bookings and a live subscription, on
a server of this module's own: bookings succeed again within 10 s, nothing answered OK is lost,
nothing is doubled, the subscriber is told to resynchronise and one that subscribes again hears
a booking within 5 s of PostgreSQL coming back; and stopping leaves no PostgreSQL running."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from care_graph.auth import Role
from care_graph.db.embedded import EmbeddedPostgres
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory, bearer, live_server
from tests.bookings_under_fault import (
    SUBJECT,
    UNKNOWN,
    Attempt,
    assert_nothing_lost,
    attempts_for,
    book_concurrently,
    last_appointment,
    pairs,
    send,
    server_settings,
    settle,
)
from tests.test_live import open_subscription

pytestmark = pytest.mark.slow

BOOKINGS = 240
CLIENTS = 8
RESTART_AFTER = 60  # bookings answered before PostgreSQL is restarted
WATCH = "subscription { appointmentChanged { status } }"


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[tuple[EmbeddedPostgres, str]]:
    """A PostgreSQL of this test's own, whatever DATABASE_URL says, for it is restarted;
    and a database on it holding the tiny demo with more referrals."""
    server = EmbeddedPostgres(tmp_path)
    factory = DatabaseFactory(server.start())
    try:
        yield (
            server,
            factory.create(seeded=True, scale=SCALES["tiny"].with_overrides(referrals=1200)),
        )
    finally:
        server.stop()


def running(pid: int) -> bool:
    """Whether a process with this pid exists and has not exited (a zombie has)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def gone(pid: int, within_s: float = 5) -> bool:
    """Whether the process exits within ``within_s`` seconds (its last moments after the
    pid file is removed)."""
    deadline = time.monotonic() + within_s
    while running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def postmaster_pid(server: EmbeddedPostgres) -> int | None:
    """The pid in postmaster.pid while that process runs."""
    found = server.pgdata / "postmaster.pid"
    if not found.exists():
        return None
    pid = int(found.read_text().splitlines()[0])
    return pid if running(pid) else None


async def test_bookings_and_live_events_survive_a_postgres_restart(
    own_server: tuple[EmbeddedPostgres, str],
) -> None:
    server, world_url = own_server
    attempts = attempts_for(await pairs(world_url, BOOKINGS), "restart")
    assert len(attempts) >= 200, len(attempts)
    wanted = Counter(attempt.slot for attempt in attempts)
    afterwards = next(attempt for attempt in attempts if wanted[attempt.slot] == 1)
    under_load = [attempt for attempt in attempts if attempt is not afterwards]
    before = await last_appointment(world_url)
    first_postmaster = postmaster_pid(server)
    ok_times: list[float] = []
    answered = asyncio.Event()
    async with (
        live_server(world_url, **server_settings(CLIENTS)) as address,
        httpx.AsyncClient(
            base_url=f"http://{address}", headers=bearer(Role.SCHEDULER, SUBJECT), timeout=60
        ) as client,
    ):
        watcher = await open_subscription(address, bearer(Role.SCHEDULER, "watcher"), WATCH)

        async def steady(attempt: Attempt) -> None:
            if attempt.first == "OK":
                ok_times.append(time.monotonic())
            if len(ok_times) >= RESTART_AFTER:
                answered.set()
            await asyncio.sleep(0.01)  # a steady load that lasts through the restart

        async def restart() -> tuple[float, float]:
            await answered.wait()
            down = time.monotonic()
            await asyncio.to_thread(server.restart)
            return down, time.monotonic()

        restarting = asyncio.create_task(restart())
        await book_concurrently(client, under_load, CLIENTS, steady)
        down, back = await restarting
        # the subscriber heard bookings, then is told it may have missed events
        told = json.loads(await asyncio.wait_for(watcher.recv(), timeout=10))
        while told["type"] == "next":
            told = json.loads(await asyncio.wait_for(watcher.recv(), timeout=10))
        await watcher.close()
        assert told["type"] == "error", told
        assert told["payload"][0]["extensions"]["code"] == "LIVE_EVENTS_INTERRUPTED"
        again = await open_subscription(address, bearer(Role.SCHEDULER, "watcher"), WATCH)
        afterwards.first, afterwards.appointment = await send(client, afterwards)
        assert afterwards.first == "OK", afterwards  # a slot nobody else wanted
        heard = json.loads(await asyncio.wait_for(again.recv(), timeout=10))
        heard_at = time.monotonic()
        await again.close()
        await settle(client, attempts, tries=50)

    assert heard["type"] == "next", heard
    assert heard["payload"]["data"] == {"appointmentChanged": {"status": "BOOKED"}}
    assert heard_at - back < 5, heard_at - back
    later = [at for at in ok_times if at > down]
    assert later, "no booking succeeded after the restart"
    assert min(later) - down < 10, min(later) - down  # recovery
    firsts = [attempt.first for attempt in attempts]
    assert any(first in UNKNOWN for first in firsts), firsts  # the restart was felt
    await assert_nothing_lost(world_url, attempts, before)

    restarted_postmaster = postmaster_pid(server)
    assert restarted_postmaster is not None
    assert restarted_postmaster != first_postmaster
    server.stop()
    assert postmaster_pid(server) is None, "the restarted PostgreSQL was left running"
    assert gone(restarted_postmaster)
