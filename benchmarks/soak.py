"""Soak a live care_graph server: mixed reads, bookings, cancellations and subscriptions for a
bounded time (10 minutes unless told), watching for what grows when nothing should.

It seeds a database of its own (the embedded PostgreSQL unless DATABASE_URL is set), starts
the app under uvicorn as a separate process, and drives it over real HTTP and WebSocket
connections. Every window it prints the requests answered, their p99, the server's resident
memory and its PostgreSQL backends; at the end, a one-screen summary against the goals for an
hour: resident memory +<10 %, p99 drift <20 %, no connection left open, no uncoded error.

    .venv/bin/python -m benchmarks.soak                 # 10 minutes at the demo scale
    .venv/bin/python -m benchmarks.soak --minutes 60    # the hour the goals are set for

Exit status 1 when a connection was left open or an answer was uncoded (whatever the length),
or when a drift goal is missed on a run of 10 minutes or more (shorter runs are too short to
judge drift by).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import psutil
from websockets.asyncio.client import connect as websocket_connect
from websockets.exceptions import WebSocketException

from benchmarks.served import start_app, stop, until_ready
from care_graph.api.ids import encode_global_id
from care_graph.auth import Role, TokenSettings, mint_token
from care_graph.db.bookable import bookable, referral_waits
from care_graph.progress import Progress
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory, database_server, fetch_one

WORKLIST = """query SoakWorklist { referrals(first: 20, filter: {status: [ACCEPTED]},
  orderBy: BREACH_DATE) { nodes { id priority breachDate patient { id familyName }
  candidateSlots(first: 3) { nodes { id startsAt site { name } } } } } }"""
SLOT = "query SoakSlot($id: ID!) { node(id: $id) { ... on Slot { id status startsAt } } }"
BOOK = """mutation SoakBook($i: BookAppointmentInput!) { bookAppointment(input: $i) {
  appointment { id status } } }"""
CANCEL = """mutation SoakCancel($i: CancelAppointmentInput!) { cancelAppointment(input: $i) {
  appointment { status } } }"""
WATCH = "subscription SoakWatch { appointmentChanged { status } }"
UNCODED = "UNCODED"  # an answer without a stable code: a plain 500, a reset, a timeout
KEPT_UNCODED = 10  # described in the summary
SUBSCRIPTION_SECONDS = 20.0  # each subscriber holds its subscription this long, then again
GOALS = {"rss": 0.10, "p99": 0.20}
JUDGED_FROM_S = 600  # drift goals bind on runs at least this long


@dataclass(frozen=True)
class Options:
    """One soak run's shape."""

    seconds: float
    scale: str = "demo"
    clients: int = 8
    subscribers: int = 4
    workers: int = 1


@dataclass
class Window:
    """What one stretch of the run measured."""

    ended_s: float
    requests: int
    p50_ms: float
    p99_ms: float
    rss_mib: float
    backends: int


@dataclass
class Tally:
    """Answers as they come, drained into a ``Window`` at each window's end."""

    latencies: list[float] = field(default_factory=list)
    codes: Counter[str] = field(default_factory=Counter)
    events: int = 0
    subscriptions: int = 0
    uncoded: list[str] = field(default_factory=list)  # what the first few were

    def answered(self, started: float, code: str, what: str = "") -> None:
        self.latencies.append(time.perf_counter() - started)
        self.codes[code] += 1
        if code == UNCODED:
            self.saw_uncoded(what)

    def saw_uncoded(self, what: str) -> None:
        if len(self.uncoded) < KEPT_UNCODED:
            self.uncoded.append(what[:200])


@dataclass
class Result:
    """The run as a whole: its windows and what was left behind."""

    options: Options
    windows: list[Window]
    codes: Counter[str]
    events: int
    subscriptions: int
    client_connections_left: int
    backends_left: int
    backends_expected: int
    uncoded: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(self.codes.values())

    def drift(self, metric: str) -> float:
        """Relative change of ``rss`` or ``p99`` from the start of the run to its end: the
        median of the first few windows after the warm-up one against the last few."""
        values = [window.rss_mib if metric == "rss" else window.p99_ms for window in self.windows]
        measured = values[1:] if len(values) > 2 else values
        span = max(1, min(5, len(measured) // 3))
        first, last = statistics.median(measured[:span]), statistics.median(measured[-span:])
        return (last - first) / first if first else 0.0

    @property
    def leaked(self) -> int:
        """Client connections the server still holds, and backends beyond its pool and
        listeners, once every client has gone."""
        return self.client_connections_left + max(0, self.backends_left - self.backends_expected)

    def misses(self) -> list[str]:
        """The goals this run missed; drift goals only on a run long enough to judge."""
        missed = []
        if self.leaked:
            missed.append("connections left open")
        if self.codes[UNCODED]:
            missed.append("uncoded answers")
        if self.options.seconds >= JUDGED_FROM_S:
            missed += [
                f"{metric} drift" for metric, goal in GOALS.items() if self.drift(metric) >= goal
            ]
        return missed


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to load (10)")
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo")
    parser.add_argument("--clients", type=int, default=8, help="HTTP clients at once (8)")
    parser.add_argument("--subscribers", type=int, default=4, help="live subscribers (4)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (1)")
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.clients < 1 or args.subscribers < 0 or args.workers < 1:
        parser.error("--minutes must be > 0, --clients and --workers ≥ 1, --subscribers ≥ 0")
    return Options(args.minutes * 60, args.scale, args.clients, args.subscribers, args.workers)


@contextmanager
def served(url: str, options: Options, log: Path) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """The app under uvicorn, as a process of its own on a free port; stopped on exit."""
    settings = {"CARE_GRAPH_POOL_MAX": str(max(4, options.clients))}
    with log.open("wb") as output:
        port, server = start_app(url, settings, output, workers=options.workers)
        try:
            yield port, server
        finally:
            stop(server)


class Pairs:
    """Referrals and slots they may book, refilled from the database as they are used."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.waiting: list[tuple[int, int]] = []
        self.refilling = asyncio.Lock()

    async def take(self) -> tuple[int, int] | None:
        async with self.refilling:
            if not self.waiting:
                self.waiting = await self._fetch()
            return self.waiting.pop() if self.waiting else None

    async def _fetch(self) -> list[tuple[int, int]]:
        [found] = await fetch_one(
            self.url,
            "SELECT coalesce(json_agg(json_build_array(id, slot)), '[]')::text FROM ("
            " SELECT r.id, (SELECT s.id FROM slots s"
            f" WHERE {bookable('r', 's')} ORDER BY random() LIMIT 1) AS slot"
            f" FROM referrals r WHERE {referral_waits('r')} ORDER BY random() LIMIT 200) found"
            " WHERE slot IS NOT NULL",
        )
        return [(referral, slot) for referral, slot in json.loads(found)]


def code_of(response: httpx.Response) -> str:
    """``OK`` or the answer's stable code; ``UNCODED`` for anything without one."""
    try:
        body = response.json()
    except ValueError:
        return UNCODED
    if not isinstance(body, dict):
        return UNCODED
    errors = body.get("errors")
    if not errors:
        return "OK" if response.status_code == 200 else UNCODED
    code = errors[0].get("extensions", {}).get("code")
    return code if isinstance(code, str) and code.isupper() else UNCODED


async def one_client(
    base: str, headers: dict[str, str], pairs: Pairs, tally: Tally, deadline: float, serial: int
) -> None:
    """Half reads (the worklist, a slot), half a booking followed by its cancellation."""
    turn = 0
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:

        async def ask(query: str, **variables: Any) -> Any:
            started = time.perf_counter()
            try:
                response = await client.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
            except httpx.HTTPError as error:
                tally.answered(started, UNCODED, f"HTTP {type(error).__name__}: {error}")
                return None
            code = code_of(response)
            tally.answered(started, code, f"HTTP {response.status_code}: {response.text[:120]}")
            return response.json() if code == "OK" else None

        while time.perf_counter() < deadline:
            turn += 1
            if turn % 2:
                answer = await ask(WORKLIST)
                nodes = (answer or {}).get("data", {}).get("referrals", {}).get("nodes", [])
                slots = [slot["id"] for node in nodes for slot in node["candidateSlots"]["nodes"]]
                if slots:
                    await ask(SLOT, id=slots[turn % len(slots)])
                continue
            pair = await pairs.take()
            if pair is None:
                await asyncio.sleep(0.1)
                continue
            referral, slot = pair
            booking = {
                "referralId": encode_global_id("Referral", referral),
                "slotId": encode_global_id("Slot", slot),
                "idempotencyKey": f"soak-{serial}-{turn}-{referral}-{slot}",
            }
            booked = await ask(BOOK, i=booking)
            if booked is not None:
                appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
                await ask(CANCEL, i={"appointmentId": appointment, "reason": "PATIENT_ILL"})


async def one_subscriber(port: int, headers: dict[str, str], tally: Tally, deadline: float) -> None:
    """Subscribe, listen for a while, leave, and again until the run ends: a subscription's
    whole life, many times over."""
    while time.perf_counter() < deadline:
        until = min(deadline, time.perf_counter() + SUBSCRIPTION_SECONDS)
        try:
            async with websocket_connect(
                f"ws://127.0.0.1:{port}/graphql",
                subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
            ) as socket_:
                await socket_.send(json.dumps({"type": "connection_init", "payload": headers}))
                await socket_.recv()
                await socket_.send(
                    json.dumps({"id": "1", "type": "subscribe", "payload": {"query": WATCH}})
                )
                tally.subscriptions += 1
                while (left := until - time.perf_counter()) > 0:
                    try:
                        await asyncio.wait_for(socket_.recv(), timeout=left)
                        tally.events += 1
                    except TimeoutError:
                        break
        except (OSError, WebSocketException) as error:
            tally.codes[UNCODED] += 1
            tally.saw_uncoded(f"subscription {type(error).__name__}: {error}")
            await asyncio.sleep(1)


def resident_mib(server: subprocess.Popen[bytes]) -> float:
    """Resident memory of the server and its workers together."""
    process = psutil.Process(server.pid)
    total = 0
    for part in [process, *process.children(recursive=True)]:
        try:
            total += part.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def client_connections(server: subprocess.Popen[bytes], port: int) -> int:
    """Connections from clients that the server (or a worker) still holds open."""
    process = psutil.Process(server.pid)
    held = 0
    for part in [process, *process.children(recursive=True)]:
        try:
            connections = part.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        held += sum(1 for c in connections if c.laddr.port == port and c.raddr)
    return held


async def app_backends(url: str) -> int:
    """PostgreSQL backends the app holds (its pool and its listener)."""
    [found] = await fetch_one(
        url,
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'care_graph' AND pid <> pg_backend_pid()",  # not this one
    )
    return int(found)


async def expected_backends(base: str, workers: int) -> int:
    """What the app says it holds: its pools' connections (summed over workers by /metrics)
    and one listener per worker."""
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:
        exposition = (await client.get("/metrics")).text
    found = re.search(r"^care_graph_pool_size (\S+)$", exposition, re.MULTILINE)
    return int(float(found.group(1)) if found else 0) + workers


async def settled_backends(url: str, base: str, workers: int) -> tuple[int, int]:
    """The app's backends and what it says it holds, once they agree (a connection opening or
    closing as they are read differs for a moment), or the closest of ten readings a second
    apart: a leak is what stays."""
    readings = []
    for _ in range(10):
        held, expected = await app_backends(url), await expected_backends(base, workers)
        readings.append((held, expected))
        if held <= expected:
            break
        await asyncio.sleep(1)
    return min(readings, key=lambda reading: reading[0] - reading[1])


async def soak(url: str, options: Options, progress: Progress, log: Path) -> Result:
    """Load the server for ``options.seconds``, reporting each window, and return the run."""
    settings = TokenSettings.from_environment(development=True)
    ttl = int(options.seconds) + 3600
    clerk = {
        "Authorization": "Bearer "
        + mint_token(settings, role=Role.SCHEDULER, subject="soak", ttl_seconds=ttl)
    }
    watcher = {
        "Authorization": "Bearer "
        + mint_token(settings, role=Role.SCHEDULER, subject="soak-watch", ttl_seconds=ttl)
    }
    window_s = max(2.0, min(60.0, options.seconds / 10))
    with served(url, options, log) as (port, server):
        base = f"http://127.0.0.1:{port}"
        await until_ready(port, server)
        tally, windows, codes = Tally(), [], Counter[str]()
        started = time.perf_counter()
        window_began = started
        deadline = started + options.seconds
        pairs = Pairs(url)
        load = asyncio.gather(
            *(one_client(base, clerk, pairs, tally, deadline, n) for n in range(options.clients)),
            *(one_subscriber(port, watcher, tally, deadline) for _ in range(options.subscribers)),
        )
        while (left := deadline - time.perf_counter()) > 0.05:
            await asyncio.wait([load], timeout=min(window_s, left))
            now = time.perf_counter()
            length, window_began = now - window_began, now
            latencies, tally.latencies = sorted(tally.latencies), []
            codes += tally.codes
            tally.codes = Counter()
            if not latencies:
                continue
            window = Window(
                ended_s=now - started,
                requests=len(latencies),
                p50_ms=1000 * latencies[len(latencies) // 2],
                p99_ms=1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
                rss_mib=resident_mib(server),
                backends=await app_backends(url),
            )
            windows.append(window)
            errors = sum(count for code, count in codes.items() if code != "OK")
            progress.note(
                f"{window.ended_s / 60:5.1f}/{options.seconds / 60:.1f} min"
                f"  {window.requests / length:7.0f} req/s  p50 {window.p50_ms:6.1f} ms"
                f"  p99 {window.p99_ms:6.1f} ms  rss {window.rss_mib:6.1f} MiB"
                f"  backends {window.backends:3d}  errors {errors:,}"
            )
        await load
        codes += tally.codes  # the last answers, after the last window
        await asyncio.sleep(2)  # let the server notice every client has gone
        backends_left, backends_expected = await settled_backends(url, base, options.workers)
        return Result(
            options=options,
            windows=windows,
            codes=codes,
            events=tally.events,
            subscriptions=tally.subscriptions,
            client_connections_left=client_connections(server, port),
            backends_left=backends_left,
            backends_expected=backends_expected,
            uncoded=tally.uncoded,
        )


def summary(result: Result) -> str:
    """The one-screen summary of a run."""
    options, windows = result.options, result.windows
    first, last = windows[0], windows[-1]
    misses = result.misses()
    answers = ", ".join(f"{code} {count:,}" for code, count in result.codes.most_common())
    verdict = "" if options.seconds >= JUDGED_FROM_S else ", not judged: too short"
    lines = [
        f"soak: {options.seconds / 60:.1f} min, scale {options.scale}, {options.clients} clients,"
        f" {options.subscribers} subscribers, {options.workers} worker(s)",
        f"  requests       {result.requests:,} ({result.requests / options.seconds:,.0f}/s)",
        f"  answers        {answers}",
        f"  subscriptions  {result.subscriptions:,} opened and closed,"
        f" {result.events:,} events heard",
        f"  p99            {first.p99_ms:.1f} ms → {last.p99_ms:.1f} ms"
        f" (drift {result.drift('p99'):+.1%}, goal <{GOALS['p99']:.0%}{verdict})",
        f"  resident       {first.rss_mib:.1f} MiB → {last.rss_mib:.1f} MiB"
        f" (drift {result.drift('rss'):+.1%}, goal <{GOALS['rss']:.0%}{verdict})",
        f"  left open      {result.client_connections_left} client connections;"
        f" {result.backends_left} PostgreSQL backends for {result.backends_expected} expected"
        " (pool + listeners)",
        f"  uncoded        {result.codes[UNCODED]:,}",
        *(f"    {what}" for what in result.uncoded[:5]),
        "  goals          " + ("all met" if not misses else "missed: " + ", ".join(misses)),
    ]
    return "\n".join(lines)


def run(options: Options, factory: DatabaseFactory, scratch: Path) -> Result:
    """Seed a database with ``factory``, soak a server on it, and return the run; the
    server's log is kept in ``scratch``."""
    progress = Progress("soak")
    url = factory.create(seeded=True, anchor=date.today(), scale=SCALES[options.scale])
    progress.note(f"seeded at scale {options.scale}; soaking for {options.seconds / 60:.1f} min")
    return asyncio.run(soak(url, options, progress, scratch / "server.log"))


def main(argv: list[str] | None = None) -> None:
    options = parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="care-graph-soak-"))
    with database_server(scratch) as server_url:
        factory = DatabaseFactory(server_url)
        try:
            result = run(options, factory, scratch)
        finally:
            factory.drop_all()
    print(summary(result), flush=True)
    raise SystemExit(1 if result.misses() else 0)


if __name__ == "__main__":
    main()
