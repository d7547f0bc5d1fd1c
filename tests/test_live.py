"""Subscriptions over graphql-transport-ws against a real uvicorn server: a client hears the
changes another client makes, and only those it may see."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role
from care_graph.testing import DatabaseFactory, bearer, fetch_one, live_server
from tests.test_auth import WORLD

BOOK = """mutation($r: ID!, $s: ID!) { bookAppointment(input: {referralId: $r, slotId: $s}) {
  appointment { id } } }"""
CANCEL = """mutation($a: ID!) { cancelAppointment(input: {appointmentId: $a,
  reason: "PATIENT_ILL"}) { appointment { status } } }"""


@pytest.fixture
def world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


@pytest.fixture
async def server(world_url: str) -> AsyncIterator[str]:
    async with live_server(world_url) as address:
        yield address


async def open_subscription(
    address: str,
    headers: dict[str, str],
    query: str,
) -> ClientConnection:
    socket_ = await connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await socket_.send(json.dumps({"type": "connection_init", "payload": headers}))
    assert json.loads(await socket_.recv()) == {"type": "connection_ack"}
    await socket_.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
    await asyncio.sleep(0.3)  # let the server start listening before anything changes
    return socket_


async def next_event(socket_: ClientConnection) -> dict[str, Any]:
    message = json.loads(await asyncio.wait_for(socket_.recv(), timeout=10))
    assert message["type"] == "next", message
    data: dict[str, Any] = message["payload"]["data"]
    return data


async def mutate(
    address: str,
    query: str,
    headers: dict[str, str],
    **variables: Any,
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://{address}") as client:
        response = await client.post(
            "/graphql", json={"query": query, "variables": variables}, headers=headers
        )
    body: dict[str, Any] = response.json()
    return body


async def test_slot_availability_follows_booking_and_cancelling(server: str) -> None:
    watcher = await open_subscription(
        server,
        bearer(Role.PATIENT, "patient-2", 2),
        'subscription { slotAvailabilityChanged(serviceCode: "CARDIOLOGY", region: "LONDON") {'
        " slotId status } }",
    )
    try:
        clerk = bearer(Role.SCHEDULER, "clerk")
        booked = await mutate(
            server, BOOK, clerk, r=encode_global_id("Referral", 1), s=encode_global_id("Slot", 4)
        )
        appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
        assert await next_event(watcher) == {
            "slotAvailabilityChanged": {"slotId": encode_global_id("Slot", 4), "status": "BUSY"}
        }
        await mutate(server, CANCEL, clerk, a=appointment)
        assert await next_event(watcher) == {
            "slotAvailabilityChanged": {"slotId": encode_global_id("Slot", 4), "status": "FREE"}
        }
    finally:
        await watcher.close()


async def test_a_patient_hears_only_their_own_appointments(server: str) -> None:
    watcher = await open_subscription(
        server,
        bearer(Role.PATIENT, "patient-1", 1),
        "subscription { appointmentChanged { referralId status } }",
    )
    try:
        clerk = bearer(Role.SCHEDULER, "clerk")
        await mutate(
            server, BOOK, clerk, r=encode_global_id("Referral", 2), s=encode_global_id("Slot", 5)
        )
        await mutate(
            server, BOOK, clerk, r=encode_global_id("Referral", 1), s=encode_global_id("Slot", 6)
        )
        assert await next_event(watcher) == {
            "appointmentChanged": {
                "referralId": encode_global_id("Referral", 1),
                "status": "BOOKED",
            }
        }
    finally:
        await watcher.close()


async def test_a_bad_token_is_refused(server: str) -> None:
    socket_ = await connect(f"ws://{server}/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    await socket_.send(
        json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer nonsense"}})
    )
    with pytest.raises(ConnectionClosed) as closed:
        await socket_.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4403


async def test_a_freed_slot_is_offered_to_the_next_patient(server: str) -> None:
    watcher = await open_subscription(
        server,
        bearer(Role.PATIENT, "patient-2", 2),
        "subscription { slotOffered { slotId referralId } }",
    )
    try:
        clerk = bearer(Role.SCHEDULER, "clerk")
        booked = await mutate(
            server, BOOK, clerk, r=encode_global_id("Referral", 1), s=encode_global_id("Slot", 7)
        )
        appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
        await mutate(server, CANCEL, clerk, a=appointment)
        assert await next_event(watcher) == {
            "slotOffered": {
                "slotId": encode_global_id("Slot", 7),
                "referralId": encode_global_id("Referral", 2),
            }
        }
    finally:
        await watcher.close()


async def test_live_events_survive_a_killed_listener(server: str, world_url: str) -> None:
    """The finding: the LISTEN connection was never opened again, so after one killed backend
    nobody heard anything more. Now a subscriber is told it may have missed events
    (LIVE_EVENTS_INTERRUPTED), and one that subscribes again hears the next change."""
    watcher = await open_subscription(
        server, bearer(Role.SCHEDULER, "watcher"), "subscription { appointmentChanged { status } }"
    )
    [killed] = await fetch_one(
        world_url,
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    assert killed == 1
    try:
        told = json.loads(await asyncio.wait_for(watcher.recv(), timeout=5))
        assert told["type"] == "error", told
        assert told["payload"][0]["extensions"]["code"] == "LIVE_EVENTS_INTERRUPTED"
    finally:
        await watcher.close()
    again = await open_subscription(
        server, bearer(Role.SCHEDULER, "watcher"), "subscription { appointmentChanged { status } }"
    )
    try:
        clerk = bearer(Role.SCHEDULER, "clerk")
        await mutate(
            server, BOOK, clerk, r=encode_global_id("Referral", 1), s=encode_global_id("Slot", 4)
        )
        assert await next_event(again) == {"appointmentChanged": {"status": "BOOKED"}}
    finally:
        await again.close()
