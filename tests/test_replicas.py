"""Reads on a hot standby made from the embedded server (``pg_basebackup -R -X stream``):
queries go to the standby once it has replayed up to their arrival, so a caller always reads
their own booking; a standby held back, or stopped, leaves reads to the primary; reads that
write their audit event, and mutations, stay on the primary."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role
from care_graph.db.embedded import EmbeddedPostgres
from care_graph.db.standby import EmbeddedStandby
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory, bearer, fetch_one, live_server, with_database
from tests.bookings_under_fault import SUBJECT, attempts_for, pairs, send, server_settings

pytestmark = pytest.mark.slow

# a list read (a node read may name a patient, whose read writes its audit: never a standby's)
SLOT_STATUS = """query SlotAt($f: SlotFilter!) { slots(first: 5, filter: $f) {
  nodes { id status } } }"""
PATIENT = "query OnePatient($id: ID!) { node(id: $id) { ... on Patient { familyName } } }"


class Cluster:
    """A primary with the tiny demo, and its standby."""

    def __init__(self, primary_url: str, standby_url: str, standby: EmbeddedStandby) -> None:
        self.primary_url, self.standby_url, self.standby = primary_url, standby_url, standby


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    primary = EmbeddedPostgres(tmp_path / "p")
    factory = DatabaseFactory(primary.start())
    standby = EmbeddedStandby(primary, tmp_path / "s")
    try:
        url = factory.create(seeded=True, scale=SCALES["tiny"])
        name = urlsplit(url).path.lstrip("/")
        yield Cluster(url, with_database(standby.start(), name), standby)
    finally:
        standby.stop()
        primary.stop()


@pytest.fixture
async def client(cluster: Cluster) -> AsyncIterator[httpx.AsyncClient]:
    settings = server_settings(4) | {"replica_urls": (cluster.standby_url,)}
    async with (
        live_server(cluster.primary_url, **settings) as address,
        httpx.AsyncClient(
            base_url=f"http://{address}", headers=bearer(Role.SCHEDULER, SUBJECT), timeout=30
        ) as found,
    ):
        yield found


async def routes(client: httpx.AsyncClient) -> dict[str, float]:
    exposition = (await client.get("/metrics")).text
    return {
        to: float(value)
        for to, value in re.findall(
            r'^care_graph_read_routes_total\{to="(\w+)"\} (\S+)$', exposition, re.MULTILINE
        )
    }


async def status_of(client: httpx.AsyncClient, url: str, slot: int) -> str:
    """The slot's status as a list of slots at its site and time reads it."""
    [service, site, starts] = await fetch_one(
        url,
        "SELECT sv.code, s.site_id, s.starts_at FROM slots s JOIN services sv"
        " ON sv.id = s.service_id WHERE s.id = $1",
        slot,
    )
    window = {
        "serviceCode": service,
        "siteId": encode_global_id("Site", site),
        "startsAfter": starts.isoformat(),
        "startsBefore": (starts + timedelta(seconds=1)).isoformat(),
    }
    answer = await client.post("/graphql", json={"query": SLOT_STATUS, "variables": {"f": window}})
    wanted = encode_global_id("Slot", slot)
    [status] = [n["status"] for n in answer.json()["data"]["slots"]["nodes"] if n["id"] == wanted]
    return str(status)


async def test_the_standby_follows_and_serves_reads(cluster: Cluster) -> None:
    [on_primary] = await fetch_one(cluster.primary_url, "SELECT count(*) FROM referrals")
    [on_standby, recovering] = await fetch_one(
        cluster.standby_url, "SELECT count(*), pg_is_in_recovery() FROM referrals"
    )
    assert (on_standby, recovering) == (on_primary, True)


async def test_a_caller_always_reads_their_own_booking(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    attempts = attempts_for(await pairs(cluster.primary_url, 30), "replica")
    before = await routes(client)
    booked = 0
    for attempt in attempts:
        answer, _ = await send(client, attempt)
        if answer == "OK":
            booked += 1
            assert (
                await status_of(client, cluster.primary_url, attempt.slot) == "BUSY"
            )  # at once, every time
    after = await routes(client)
    assert booked >= 20
    assert after.get("standby", 0) > before.get("standby", 0)  # the standby did serve


async def test_a_standby_held_back_leaves_reads_to_the_primary(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    [attempt] = attempts_for(await pairs(cluster.primary_url, 1), "paused")
    standby = await asyncpg.connect(cluster.standby_url)
    try:
        await standby.execute("SELECT pg_wal_replay_pause()")
        before = await routes(client)
        assert (await send(client, attempt))[0] == "OK"
        assert await status_of(client, cluster.primary_url, attempt.slot) == "BUSY"
        after = await routes(client)
        assert after["primary"] == before.get("primary", 0) + 1
        assert after.get("standby", 0) == before.get("standby", 0)
    finally:
        await standby.execute("SELECT pg_wal_replay_resume()")
        await standby.close()


async def test_audited_reads_stay_on_the_primary_and_a_stopped_standby_is_no_outage(
    cluster: Cluster, client: httpx.AsyncClient
) -> None:
    [patient] = await fetch_one(cluster.primary_url, "SELECT min(id) FROM patients")
    before = await routes(client)
    answer = await client.post(
        "/graphql",
        json={"query": PATIENT, "variables": {"id": encode_global_id("Patient", patient)}},
    )
    assert answer.json()["data"]["node"]["familyName"]
    assert await routes(client) == before  # never offered to a standby: it writes its audit
    [slot] = await fetch_one(cluster.primary_url, "SELECT min(id) FROM slots")
    await asyncio.to_thread(cluster.standby.stop)
    for _ in range(3):
        assert await status_of(client, cluster.primary_url, slot) in (
            "FREE",
            "BUSY",
            "BUSY_TENTATIVE",
            "BUSY_UNAVAILABLE",
        )
    after = await routes(client)
    assert after["primary"] >= before.get("primary", 0) + 3
