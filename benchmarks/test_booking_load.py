"""Booking under load through the real app (ASGI, real database, 16 requests in flight):
throughput and latency when every attempt has a slot of its own, and when ten attempts fight
over each slot — the contended run reported as a ratio to the uncontended one, same process."""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import replace
from typing import Any

import httpx

from care_graph.api.ids import encode_global_id
from care_graph.app import create_app
from care_graph.auth import Role
from care_graph.config import Limits, Settings
from care_graph.testing import DatabaseFactory, bearer

IN_FLIGHT = 16
BOOK = """mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) {
  appointment { id } } }"""


def world(attempts: int, slots: int) -> str:
    """Slots with a clinician each, one patient, and one waiting referral per attempt."""
    return f"""
INSERT INTO regions VALUES ('LONDON', 'London');
INSERT INTO skills VALUES ('CARDIOLOGY', 'Cardiology');
INSERT INTO services (id, code, name, kind, slot_minutes)
    VALUES (1, 'CARDIOLOGY', 'Cardiology', 'SPECIALTY', 20);
INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude)
    VALUES (1, 'S1', 'Camden General', 'LONDON', 'Camden', 'NW1 1AA', 51.53, -0.14);
INSERT INTO site_services VALUES (1, 1);
INSERT INTO staff (id, given_name, family_name, role, base_site_id)
    SELECT n, 'Ada', 'Jones', 'CONSULTANT', 1 FROM generate_series(1, {slots}) n;
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at)
    SELECT n, 1, 1, n, now() + interval '3 days', now() + interval '3 days 20 minutes'
    FROM generate_series(1, {slots}) n;
INSERT INTO patients (id, nhs_number, given_name, family_name, date_of_birth, postcode,
                      region_code, latitude, longitude)
    VALUES (1, '9434765919', 'Sam', 'Khan', '1970-05-04', 'NW1 2BB', 'LONDON', 51.53, -0.15);
INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind, to_service_id,
                       priority, status, received_at, clock_start, breach_date)
    SELECT n, (100000000000 + n)::text, 1, 'Dr A Smith', 'GP', 1, 'ROUTINE', 'ACCEPTED',
           now(), now(), current_date + 90 FROM generate_series(1, {attempts}) n;
"""


async def _load(url: str, attempts: int, slots: int) -> tuple[float, list[float], int]:
    """Seconds for all attempts, each attempt's latency, and how many booked."""
    # one clerk books as fast as the server answers: the limiter still counts, never refuses
    limits = replace(Limits(), request_burst=10**9)
    app = create_app(
        replace(Settings.from_environment(), database_url=url, pool_max_size=10, limits=limits)
    )
    latencies: list[float] = []
    booked = 0
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", headers=bearer(Role.SCHEDULER), timeout=60
        ) as client:

            async def attempt(n: int) -> None:
                nonlocal booked
                body = {
                    "query": BOOK,
                    "variables": {
                        "i": {
                            "referralId": encode_global_id("Referral", n),
                            "slotId": encode_global_id("Slot", (n - 1) % slots + 1),
                        }
                    },
                }
                async with gate:
                    started = time.perf_counter()
                    response = await client.post("/graphql", json=body)
                    latencies.append(time.perf_counter() - started)
                answer: dict[str, Any] = response.json()
                assert response.status_code == 200
                if answer.get("data"):
                    booked += 1
                else:
                    assert answer["errors"][0]["extensions"]["code"] == "SLOT_UNAVAILABLE"

            started = time.perf_counter()
            await asyncio.gather(*(attempt(n) for n in range(1, attempts + 1)))
            return time.perf_counter() - started, latencies, booked


def test_booking_throughput_and_latency(
    databases: DatabaseFactory, smoke: bool, report: list[str]
) -> None:
    attempts = 100 if smoke else 2000
    lines = []
    rates = {}
    for label, slots in (("uncontended", attempts), ("10 per slot", attempts // 10)):
        url = databases.create(sql=world(attempts, slots))
        seconds, latencies, booked = asyncio.run(_load(url, attempts, slots))
        assert booked == slots
        rates[label] = attempts / seconds
        p50 = 1000 * statistics.median(latencies)
        p99 = 1000 * sorted(latencies)[int(0.99 * (len(latencies) - 1))]
        lines.append(
            f"{label}: {rates[label]:.0f} attempts/s, p50 {p50:.1f} ms,"
            f" p99 {p99:.1f} ms, {booked} booked"
        )
    ratio = rates["10 per slot"] / rates["uncontended"]
    report.append(
        f"booking ({attempts} attempts, {IN_FLIGHT} in flight): "
        + "; ".join(lines)
        + f"; contended / uncontended throughput {ratio:.2f}"
    )
