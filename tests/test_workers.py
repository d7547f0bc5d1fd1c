"""Two uvicorn workers behind one `care-graph serve --workers 2`, told apart by which process
accepted a connection (read from the operating system, not from anything the app says): a
subscriber on one hears a booking made through the other; what one books the other reads at
once; a document trusted while both serve runs on both; cancellations on both at once never
offer one referral two slots; a scrape of either counts both; SIGTERM stops both cleanly."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role
from care_graph.db.embedded import EmbeddedPostgres
from care_graph.testing import bearer, fetch_one, free_port
from tests.bookings_under_fault import BOOK, SUBJECT, pairs
from tests.test_cli import care_graph
from tests.test_live import open_subscription
from tests.test_restart import gone
from tests.test_shutdown import close_code, serving, until_healthy

pytestmark = pytest.mark.slow

WORKERS = 2
WIRES_PER_WORKER = 4
CANCELLATIONS = 16
WATCH = "subscription { appointmentChanged { status } }"
CANCEL = """mutation($i: CancelAppointmentInput!) { cancelAppointment(input: $i) {
  appointment { status } } }"""
SLOT_STATUS = "query SlotStatus($id: ID!) { node(id: $id) { ... on Slot { status } } }"
TRUSTED_LATER = "query Later($id: ID!) { node(id: $id) { id } }"
CLERK = bearer(Role.SCHEDULER, SUBJECT)


def worker_of(server: int, local_port: int) -> int | None:
    """The worker process (a child of ``server``) holding the connection from ``local_port``."""
    for child in psutil.Process(server).children(recursive=True):
        try:
            connections = child.net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(c.raddr and c.raddr.port == local_port for c in connections):
            return child.pid
    return None


async def accepted_by(server: int, local_port: int) -> int:
    """The worker that accepted the connection, once one has."""
    for _ in range(200):
        found = worker_of(server, local_port)
        if found is not None:
            return found
        await asyncio.sleep(0.01)
    pytest.fail(f"no worker accepted the connection from port {local_port}")


@dataclass
class Wire:
    """One keep-alive HTTP/1.1 connection of the test's own, so that it knows which worker
    accepted it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    worker: int

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        """Send one request and read its whole answer: (status, body)."""
        head = [f"{method} {path} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in (headers or {}).items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        status_line, *lines = (await self.reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        fields = dict(line.lower().split(": ", 1) for line in lines if line)
        answer = await self.reader.readexactly(int(fields["content-length"]))
        return int(status_line.split()[1]), answer

    async def graphql(self, query: str, headers: dict[str, str], **variables: Any) -> Any:
        """POST a GraphQL request and return its decoded answer."""
        body = orjson.dumps({"query": query, "variables": variables})
        _, answer = await self.request(
            "POST", "/graphql", body, {**headers, "Content-Type": "application/json"}
        )
        return orjson.loads(answer)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def wires_on_each_worker(server: int, port: int, each: int) -> dict[int, list[Wire]]:
    """Open connections until every worker has accepted ``each`` of them; spare ones closed."""
    wires: dict[int, list[Wire]] = {}
    for _ in range(20 * each * WORKERS):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        worker = await accepted_by(server, writer.get_extra_info("sockname")[1])
        wire = Wire(reader, writer, worker)
        if len(wires.setdefault(worker, [])) < each:
            wires[worker].append(wire)
        else:
            await wire.close()
        if len(wires) == WORKERS and all(len(found) == each for found in wires.values()):
            return wires
    pytest.fail(f"connections did not reach {WORKERS} workers: {Counter(wires)}")


def booking_of(referral: int, slot: int, key: str) -> dict[str, Any]:
    return {
        "referralId": encode_global_id("Referral", referral),
        "slotId": encode_global_id("Slot", slot),
        "idempotencyKey": key,
    }


def sample(exposition: str, name: str) -> float:
    """One sample's value from a Prometheus text exposition."""
    found = re.search(rf"^{re.escape(name)} (\S+)$", exposition, re.MULTILINE)
    assert found is not None, name
    return float(found.group(1))


async def held_twice(url: str) -> list[int]:
    """Referrals holding more than one offered slot: what serialised offers rule out."""
    [found] = await fetch_one(
        url,
        "SELECT coalesce(json_agg(held_for_referral_id), '[]')::text FROM ("
        " SELECT held_for_referral_id FROM slots WHERE held_for_referral_id IS NOT NULL"
        " GROUP BY held_for_referral_id HAVING count(*) > 1) twice",
    )
    return list(orjson.loads(found))


async def one_service_pairs(url: str, limit: int) -> list[tuple[int, int]]:
    """Bookable (referral, slot) pairs, as many as possible of one service, so that their
    cancellations all offer to the same waiting list at once."""
    found = await pairs(url, 2000)
    [services] = await fetch_one(
        url,
        "SELECT json_object_agg(id, service_id)::text FROM slots WHERE id = ANY($1::bigint[])",
        [slot for _, slot in found],
    )
    service_of = {int(slot): service for slot, service in orjson.loads(services).items()}
    once = {slot: referral for referral, slot in reversed(found)}  # each slot wanted once
    busiest, _ = Counter(service_of[slot] for slot in once).most_common(1)[0]
    return [(referral, slot) for slot, referral in once.items() if service_of[slot] == busiest][
        :limit
    ]


def trust(url: str, folder: Path, *documents: str) -> None:
    """`care-graph documents add` each document, from files, as an operator would."""
    files = []
    for index, document in enumerate(documents):
        files.append(folder / f"document-{index}.graphql")
        files[-1].write_text(document)
    added = care_graph("documents", "add", *map(str, files), database_url=url)
    assert added.returncode == 0, added.stderr


async def test_two_workers_serve_as_one(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with serving(
        tmp_path, port, "--workers", str(WORKERS), CARE_GRAPH_DOCUMENTS="trusted"
    ) as server:
        await until_healthy(base, server, within_s=120)
        running = EmbeddedPostgres(tmp_path).running()
        assert running is not None
        postmaster, url = running
        trust(url, tmp_path, BOOK, CANCEL, WATCH, SLOT_STATUS)
        wires = await wires_on_each_worker(server.pid, port, WIRES_PER_WORKER)
        chosen = await one_service_pairs(url, CANCELLATIONS + 2)
        assert len(chosen) == CANCELLATIONS + 2, len(chosen)

        watcher = await open_subscription(f"127.0.0.1:{port}", bearer(Role.SCHEDULER, "w"), WATCH)
        near = await accepted_by(server.pid, watcher.local_address[1])
        [far] = [worker for worker in wires if worker != near]
        on_near, on_far = wires[near][0], wires[far][0]

        # a subscriber on one worker hears a booking made through the other
        (referral, slot), *rest = chosen
        booked = await on_far.graphql(BOOK, CLERK, i=booking_of(referral, slot, "workers-first"))
        assert "errors" not in booked, booked
        heard = json.loads(await asyncio.wait_for(watcher.recv(), timeout=5))
        assert heard["payload"]["data"] == {"appointmentChanged": {"status": "BOOKED"}}

        # what one worker books the other reads at once, with its plan for the query cached
        (referral, slot), *rest = rest
        slot_id = encode_global_id("Slot", slot)
        before = await on_near.graphql(SLOT_STATUS, CLERK, id=slot_id)
        booked = await on_far.graphql(BOOK, CLERK, i=booking_of(referral, slot, "workers-second"))
        assert "errors" not in booked, booked
        after = await on_near.graphql(SLOT_STATUS, CLERK, id=slot_id)
        assert (before["data"]["node"]["status"], after["data"]["node"]["status"]) == (
            "FREE",
            "BUSY",
        )

        # a document trusted while both serve runs on both; each refused it before
        for wire in (on_near, on_far):
            refused = await wire.graphql(TRUSTED_LATER, CLERK, id=slot_id)
            assert refused["errors"][0]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
        trust(url, tmp_path, TRUSTED_LATER)
        for wire in (on_near, on_far):
            assert (await wire.graphql(TRUSTED_LATER, CLERK, id=slot_id))["data"]["node"]

        # cancellations through both workers at once each offer the freed slot; serialised
        # offers never hold two slots for one referral
        everyone = [wire for found in wires.values() for wire in found]
        appointments = []
        for index, (referral, slot) in enumerate(rest):
            wire = everyone[index % len(everyone)]
            booking = booking_of(referral, slot, f"workers-{index:03d}")
            answer = await wire.graphql(BOOK, CLERK, i=booking)
            appointments.append(answer["data"]["bookAppointment"]["appointment"]["id"])

        async def cancel_on(wire: Wire, mine: list[str]) -> None:
            for appointment in mine:
                answer = await wire.graphql(
                    CANCEL, CLERK, i={"appointmentId": appointment, "reason": "PATIENT_ILL"}
                )
                assert answer["data"]["cancelAppointment"]["appointment"]["status"] == "CANCELLED"

        await asyncio.gather(
            *(
                cancel_on(wire, appointments[index :: len(everyone)])
                for index, wire in enumerate(everyone)
            )
        )
        assert await held_twice(url) == []
        [offered] = await fetch_one(
            url,
            "SELECT count(*) FROM slots WHERE id = ANY($1::bigint[])"
            " AND held_for_referral_id IS NOT NULL",
            [slot for _, slot in rest],
        )
        assert offered > 0  # the waiting list was offered the freed slots

        # a scrape of either worker counts both
        booked_ok = 2 + len(rest)
        for wire in (on_near, on_far):
            _, exposition = await wire.request("GET", "/metrics")
            text = exposition.decode()
            assert sample(text, 'care_graph_bookings_total{code="OK"}') == booked_ok
            assert sample(text, "care_graph_offers_total") == offered
            assert sample(text, "care_graph_live_subscriptions") == 1
            assert sample(text, "care_graph_listener_connected") == 1
            assert sample(text, "care_graph_pool_size") >= 2 * WORKERS

        for wire in everyone:
            await wire.close()
        server.send_signal(signal.SIGTERM)
        assert await close_code(watcher) == 1001  # after what it heard of the cancellations
        output = server.communicate(timeout=30)[0]
    assert server.returncode == 0, output
    assert output.rstrip().endswith("care_graph stopped"), output
    assert gone(postmaster), "the embedded PostgreSQL outlived the server"
