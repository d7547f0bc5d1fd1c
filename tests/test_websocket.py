"""The WebSocket path holds every rule of the HTTP path: limits, cost, masking, introspection
policy and token expiry, each over a real socket to a real uvicorn server; and the
graphql-transport-ws protocol's close codes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role, TokenSettings, mint_token
from care_graph.config import Limits
from care_graph.testing import DatabaseFactory, bearer, live_server
from tests.test_auth import WORLD


@pytest.fixture
def world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


@pytest.fixture
async def server(world_url: str) -> AsyncIterator[str]:
    async with live_server(world_url, introspection=False) as address:
        yield address


async def socket_to(address: str, headers: dict[str, str] | None = None) -> ClientConnection:
    """A socket past the handshake (``headers`` None: before connection_init)."""
    socket_ = await connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
    if headers is not None:
        await send(socket_, {"type": "connection_init", "payload": headers})
        assert await receive(socket_) == {"type": "connection_ack"}
    return socket_


async def send(socket_: ClientConnection, message: dict[str, Any]) -> None:
    await socket_.send(orjson.dumps(message).decode())


async def receive(socket_: ClientConnection) -> dict[str, Any]:
    message: dict[str, Any] = orjson.loads(await asyncio.wait_for(socket_.recv(), timeout=15))
    return message


async def operate(
    socket_: ClientConnection, query: str, variables: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Send one operation and return the first message answering it."""
    await send(
        socket_,
        {"id": "op", "type": "subscribe", "payload": {"query": query, "variables": variables}},
    )
    return await receive(socket_)


async def closed_with(socket_: ClientConnection) -> tuple[int, str]:
    with pytest.raises(ConnectionClosed) as closed:  # noqa: PT012 - messages may come first
        for _ in range(10):
            await asyncio.wait_for(socket_.recv(), timeout=15)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def codes(message: dict[str, Any]) -> list[str]:
    assert message["type"] == "error", message
    return [error["extensions"]["code"] for error in message["payload"]]


async def test_a_query_over_the_socket_runs_as_over_http(server: str) -> None:
    socket_ = await socket_to(server, bearer(Role.PATIENT, "patient-1", 1))
    try:
        answer = await operate(socket_, "{ me { id } }")
        assert answer == {
            "id": "op",
            "type": "next",
            "payload": {"data": {"me": {"id": encode_global_id("Patient", 1)}}},
        }
        assert await receive(socket_) == {"id": "op", "type": "complete"}
    finally:
        await socket_.close()


async def test_an_alias_flood_of_introspection_is_refused_before_it_runs(server: str) -> None:
    """The finding: 1,000 aliased __schema over the socket ran 6.6 s and answered 15.7 MB."""
    query = "{ " + " ".join(f"a{n}: __schema {{ types {{ name }} }}" for n in range(1000)) + " }"
    socket_ = await socket_to(server, bearer(Role.PATIENT, "patient-1", 1))
    try:
        started = time.perf_counter()
        answer = await operate(socket_, query)
        elapsed = time.perf_counter() - started
        assert codes(answer) == ["GRAPHQL_PARSE_FAILED"]  # over the token limit
        assert len(orjson.dumps(answer)) < 10_000
        assert elapsed < 2.0, elapsed
    finally:
        await socket_.close()


async def test_introspection_follows_the_servers_policy(server: str) -> None:
    socket_ = await socket_to(server, bearer(Role.SCHEDULER, "clerk"))
    try:
        answer = await operate(socket_, "{ __schema { queryType { name } } }")
        assert set(codes(answer)) == {"GRAPHQL_VALIDATION_FAILED"}
        assert "introspection" in answer["payload"][0]["message"]
    finally:
        await socket_.close()


async def test_depth_aliases_and_cost_are_checked_on_the_socket(server: str) -> None:
    socket_ = await socket_to(server, bearer(Role.SCHEDULER, "clerk"))
    try:
        aliases = "{ " + " ".join(f"a{n}: __typename" for n in range(51)) + " }"
        assert codes(await operate(socket_, aliases)) == ["QUERY_TOO_COMPLEX"]
        costly = (
            "{ "
            + " ".join(
                f"s{n}: slots(first: 100) {{ nodes {{ site {{ slots(first: 100)"
                " { nodes { id } } } } }"
                for n in range(5)
            )
            + " }"
        )
        answer = await operate(socket_, costly)
        assert codes(answer) == ["QUERY_TOO_COMPLEX"]
        extensions = answer["payload"][0]["extensions"]
        assert extensions["limit"] == 50_000
        assert extensions["cost"] > 50_000
    finally:
        await socket_.close()


async def test_errors_on_the_socket_are_coded_and_masked(server: str) -> None:
    socket_ = await socket_to(server, bearer(Role.PATIENT, "patient-1", 1))
    try:
        answer = await operate(
            socket_,
            "mutation($s: ID!) { holdSlot(input: {referralId: $s, slotId: $s}) { slot { id } } }",
            {"s": "not an id"},
        )
        assert answer["type"] == "next", answer
        text = orjson.dumps(answer).decode()
        for leak in ("Traceback", "LiveContext", "loaders", ".py"):
            assert leak not in text
        assert answer["payload"]["errors"][0]["extensions"]["code"] in {
            "INVALID_ID",
            "BAD_USER_INPUT",
            "NOT_FOUND",
        }
    finally:
        await socket_.close()


async def test_a_socket_is_closed_when_its_token_expires(server: str, world_url: str) -> None:
    """The finding: events still arrived after the token had expired."""
    token = mint_token(
        TokenSettings.from_environment(development=True),
        role=Role.SCHEDULER,
        subject="clerk",
        ttl_seconds=2,
    )
    socket_ = await socket_to(server, {"Authorization": f"Bearer {token}"})
    await send(
        socket_,
        {
            "id": "live",
            "type": "subscribe",
            "payload": {"query": "subscription { appointmentChanged { status } }"},
        },
    )
    started = time.monotonic()
    code, reason = await closed_with(socket_)
    assert code == 4403
    assert "expired" in reason
    assert time.monotonic() - started < 10


async def test_a_token_lapsed_before_the_handshake_is_refused(server: str) -> None:
    token = mint_token(
        TokenSettings.from_environment(development=True),
        role=Role.SCHEDULER,
        subject="clerk",
        ttl_seconds=-1,
    )
    socket_ = await socket_to(server)
    await send(
        socket_, {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
    )
    assert (await closed_with(socket_))[0] == 4403


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        ([{"id": "1", "type": "subscribe", "payload": {"query": "{ __typename }"}}], 4401),
        ([{"type": "connection_init"}], 4403),
        ([{"type": "nonsense"}], 4400),
        (["not json"], 4400),
    ],
)
async def test_the_protocols_close_codes(server: str, messages: list[Any], code: int) -> None:
    socket_ = await socket_to(server)
    for message in messages:
        if isinstance(message, str):
            await socket_.send(message)
        else:
            await send(socket_, message)
    assert (await closed_with(socket_))[0] == code


async def test_a_second_handshake_and_a_reused_id_close_the_socket(server: str) -> None:
    socket_ = await socket_to(server, bearer(Role.SCHEDULER, "clerk"))
    await send(socket_, {"type": "connection_init", "payload": bearer(Role.SCHEDULER, "clerk")})
    assert (await closed_with(socket_))[0] == 4429
    socket_ = await socket_to(server, bearer(Role.SCHEDULER, "clerk"))
    subscribe = {
        "id": "same",
        "type": "subscribe",
        "payload": {"query": "subscription { appointmentChanged { status } }"},
    }
    await send(socket_, subscribe)
    await send(socket_, subscribe)
    assert (await closed_with(socket_))[0] == 4409


async def test_a_message_over_the_limit_closes_the_socket(world_url: str) -> None:
    limits = replace(Limits(), max_message_bytes=10_000)
    async with live_server(world_url, limits=limits) as address:
        socket_ = await socket_to(address, bearer(Role.SCHEDULER, "clerk"))
        await operate_raw(socket_, "{ __typename }" + " " * 20_000)
        assert (await closed_with(socket_))[0] == 1009


async def test_ping_is_answered_and_healthz_stays_quick(server: str) -> None:
    socket_ = await socket_to(server, bearer(Role.SCHEDULER, "clerk"))
    try:
        await send(socket_, {"type": "ping"})
        assert await receive(socket_) == {"type": "pong"}
        async with httpx.AsyncClient(base_url=f"http://{server}") as client:
            flood = "{ " + " ".join(f"a{n}: __schema {{ types {{ name }} }}" for n in range(1000))
            await send(socket_, {"id": "x", "type": "subscribe", "payload": {"query": flood}})
            started = time.perf_counter()
            health = await client.get("/healthz")
            waited = time.perf_counter() - started
        assert health.status_code == 200
        assert waited < 0.5, waited
    finally:
        await socket_.close()


async def operate_raw(socket_: ClientConnection, query: str) -> None:
    await send(socket_, {"id": "op", "type": "subscribe", "payload": {"query": query}})
