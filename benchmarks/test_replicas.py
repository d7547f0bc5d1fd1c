"""Read throughput with one hot standby against the primary alone, in the same run: the same
server twice (one uvicorn worker each, the second with CARE_GRAPH_REPLICA_URLS), the same
reads from the same clients, interleaved round by round. On one machine the standby shares the
cores with the primary, so this measures what routing costs and gains here; on a standby of
its own the gain is the reads it takes off the primary (reported as the share it served)."""

from __future__ import annotations

import asyncio
import os
import re
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from benchmarks.served import start_app, stop, until_ready
from care_graph.auth import Role
from care_graph.db.embedded import EmbeddedPostgres
from care_graph.db.standby import EmbeddedStandby
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory, bearer, with_database

# list reads that return no patient (a patient's read writes its audit: the primary's)
READS = (
    """query Slots { slots(first: 50, orderBy: STARTS_AT) { nodes { id startsAt status
      site { name } staff { familyName } service { name } } } }""",
    """query Waiting { referrals(first: 50, filter: {status: [ACCEPTED]}, orderBy: BREACH_DATE) {
      nodes { id ubrn priority breachDate toService { name }
      candidateSlots(first: 5) { nodes { id startsAt site { name } } } } } }""",
)
CLIENTS = 16


@pytest.fixture
def cluster(tmp_path: Path, smoke: bool) -> Iterator[tuple[str, str]]:
    if os.environ.get("DATABASE_URL"):
        pytest.skip("a standby is made of the embedded server; DATABASE_URL is set")
    primary = EmbeddedPostgres(tmp_path / "p")
    factory = DatabaseFactory(primary.start())
    standby = EmbeddedStandby(primary, tmp_path / "s")
    try:
        url = factory.create(seeded=True, scale=SCALES["tiny" if smoke else "demo"])
        name = urlsplit(url).path.lstrip("/")
        yield url, with_database(standby.start(), name)
    finally:
        standby.stop()
        primary.stop()


def serve(url: str, replicas: str | None) -> tuple[int, subprocess.Popen[bytes]]:
    settings = {"CARE_GRAPH_POOL_MAX": str(CLIENTS)}
    if replicas:
        settings["CARE_GRAPH_REPLICA_URLS"] = replicas
    return start_app(url, settings)


async def load(port: int, seconds: float) -> float:
    """Reads answered per second by ``CLIENTS`` clients, each sending the next at once."""
    headers = bearer(Role.SCHEDULER, "bench-reader")
    answered = 0
    deadline = time.perf_counter() + seconds
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=60
    ) as client:

        async def one(turn: int) -> None:
            nonlocal answered
            while time.perf_counter() < deadline:
                response = await client.post("/graphql", json={"query": READS[turn % 2]})
                assert response.status_code == 200
                assert "errors" not in response.json(), response.text[:300]
                answered += 1
                turn += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(CLIENTS)))
        return answered / (time.perf_counter() - started)


def test_read_throughput_with_a_standby(
    cluster: tuple[str, str], smoke: bool, report: list[str]
) -> None:
    primary_url, standby_url = cluster
    seconds, rounds = (1.0, 1) if smoke else (10.0, 3)
    alone, routed = serve(primary_url, None), serve(primary_url, standby_url)
    try:

        async def measure() -> tuple[list[float], list[float], str]:
            await until_ready(*alone)
            await until_ready(*routed)
            without, with_standby = [], []
            for _ in range(rounds):
                without.append(await load(alone[0], seconds))
                with_standby.append(await load(routed[0], seconds))
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{routed[0]}") as client:
                exposition = (await client.get("/metrics")).text
            return without, with_standby, exposition

        without, with_standby, exposition = asyncio.run(measure())
    finally:
        for _, process in (alone, routed):
            stop(process)
    went = dict(re.findall(r'care_graph_read_routes_total\{to="(\w+)"\} (\S+)', exposition))
    standby_share = float(went.get("standby", 0)) / max(1.0, sum(map(float, went.values())))
    ratio = statistics.median(with_standby) / statistics.median(without)
    report.append(
        f"reads with one standby: {statistics.median(with_standby):.0f} req/s against"
        f" {statistics.median(without):.0f} on the primary alone = {ratio:.2f}x"
        f" ({standby_share:.0%} served by the standby; {CLIENTS} clients, {rounds} x"
        f" {seconds:.0f} s interleaved; primary and standby share this machine's cores)"
    )
    assert standby_share > 0
