"""SIGTERM to a real `care-graph serve` that started its own PostgreSQL: subscribers hear 1001
first, then the server takes no new connections, a booking in flight still finishes and is
answered OK, and the server exits having stopped its PostgreSQL, the booking kept."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from subprocess import Popen

import asyncpg
import httpx
import psutil
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from care_graph.auth import Role
from care_graph.db.embedded import EmbeddedPostgres
from care_graph.testing import bearer, fetch_one, free_port
from tests.bookings_under_fault import SUBJECT, Attempt, pairs, send, stored_appointment
from tests.test_cli import serve_process
from tests.test_live import open_subscription
from tests.test_restart import gone

pytestmark = pytest.mark.slow

WATCH = "subscription { appointmentChanged { status } }"


@contextmanager
def serving(data_dir: Path, port: int, *options: str, **settings: str) -> Iterator[Popen[str]]:
    """`care-graph serve` on its own embedded PostgreSQL in ``data_dir``, with the tiny demo;
    ``settings`` are more environment variables. A test that fails midway leaves no worker
    or PostgreSQL behind."""
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env |= {"CARE_GRAPH_DATA_DIR": str(data_dir), "CARE_GRAPH_SWEEP_SECONDS": "0", **settings}
    server = serve_process(port, env, *options)
    try:
        yield server
    finally:
        if server.poll() is None:
            for child in psutil.Process(server.pid).children(recursive=True):
                child.kill()
            server.kill()
            server.communicate()
        EmbeddedPostgres(data_dir).stop_running()


async def until_healthy(base: str, server: Popen[str], within_s: float) -> None:
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                await asyncio.sleep(0.2)
    output = server.communicate(timeout=10)[0] if server.poll() is not None else ""
    pytest.fail(f"the server did not become healthy within {within_s} s: {output}")


async def until_waiting_on_a_lock(url: str) -> None:
    """Return once some backend waits for a row lock: the booking is in flight."""
    for _ in range(500):
        [waiting] = await fetch_one(
            url, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    pytest.fail("the booking never waited for the slot's lock")


async def close_code(socket_: ClientConnection, within_s: float = 5) -> int | None:
    """The code the server closes the socket with, after whatever it still had to send."""
    try:
        async with asyncio.timeout(within_s):
            while True:
                await socket_.recv()
    except ConnectionClosed as closed:
        return None if closed.rcvd is None else closed.rcvd.code


async def refused(base: str, within_s: float) -> bool:
    """Whether a new connection is refused within ``within_s``: the server stopped listening."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            async with httpx.AsyncClient(base_url=base, timeout=1) as client:
                await client.get("/healthz")
        except httpx.ConnectError:
            return True
        except (httpx.RemoteProtocolError, httpx.ReadError):
            # Accepted into the backlog just before the listener closed, then dropped
            # unanswered: not a refusal yet, so the next attempt tells.
            pass
        await asyncio.sleep(0.05)
    return False


async def test_sigterm_says_goodbye_drains_and_stops_its_postgres(tmp_path: Path) -> None:
    port = free_port()
    base, address = f"http://127.0.0.1:{port}", f"127.0.0.1:{port}"
    with serving(tmp_path, port) as server:
        await until_healthy(base, server, within_s=120)
        running = EmbeddedPostgres(tmp_path).running()
        assert running is not None
        postmaster, url = running
        [(referral, slot)] = await pairs(url, 1)
        attempt = Attempt("drained-booking", referral, slot)
        watcher = await open_subscription(address, bearer(Role.SCHEDULER, "watcher"), WATCH)
        holder = await asyncpg.connect(url)
        lock = holder.transaction()
        await lock.start()
        await holder.execute("SELECT FROM slots WHERE id = $1 FOR UPDATE", slot)
        async with httpx.AsyncClient(
            base_url=base, headers=bearer(Role.SCHEDULER, SUBJECT), timeout=30
        ) as client:
            booking = asyncio.create_task(send(client, attempt))
            await until_waiting_on_a_lock(url)
            server.send_signal(signal.SIGTERM)
            assert await close_code(watcher) == 1001
            assert await refused(base, within_s=5), "still taking connections after SIGTERM"
            assert not booking.done()  # held by the lock all along
            await lock.rollback()
            await holder.close()
            answer, appointment = await asyncio.wait_for(booking, timeout=10)
        assert answer == "OK"
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
    assert "Application shutdown complete." in output
    assert output.rstrip().endswith("care_graph stopped"), output
    assert gone(postmaster), "the embedded PostgreSQL outlived the server"
    # the drained booking was committed and kept
    again = EmbeddedPostgres(tmp_path)
    try:
        assert await stored_appointment(again.start(), attempt.key) == appointment
    finally:
        again.stop()
