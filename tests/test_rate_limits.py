"""Rate limits through real requests: a bucket per token subject, one per client address for
requests without a good token, 429 with Retry-After before any work; shared by every worker
when the buckets live in PostgreSQL."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from websockets.asyncio.client import connect

from care_graph.api.rate_limits import Bucket
from care_graph.auth import Role
from care_graph.config import Limits, RateStore
from care_graph.testing import DatabaseFactory, asgi_client, bearer, live_server
from tests.test_auth import WORLD
from tests.test_websocket import receive, send

TIGHT = replace(Limits(), request_burst=3, requests_per_minute=60, anonymous_requests_per_minute=8)
QUERY = {"query": "{ __typename }"}


@pytest.fixture(scope="module")
def world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


async def test_a_subject_over_its_burst_waits_and_others_do_not(world_url: str) -> None:
    async with asgi_client(world_url, limits=TIGHT) as client:
        clerk, other = bearer(Role.SCHEDULER, "clerk"), bearer(Role.SCHEDULER, "other")
        statuses = [
            (await client.post("/graphql", json=QUERY, headers=clerk)).status_code for _ in range(3)
        ]
        assert statuses == [200, 200, 200]
        refused = await client.post("/graphql", json=QUERY, headers=clerk)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["errors"][0]["extensions"]["code"] == "RATE_LIMITED"
        assert (await client.post("/graphql", json=QUERY, headers=other)).status_code == 200
        await asyncio.sleep(1.1)  # one request a second refills
        assert (await client.post("/graphql", json=QUERY, headers=clerk)).status_code == 200


async def test_requests_without_a_good_token_are_counted_by_address(world_url: str) -> None:
    async with asgi_client(world_url, limits=TIGHT, anonymous_role=None) as client:
        bad = {"Authorization": "Bearer nonsense"}
        statuses = [
            (await client.post("/graphql", json=QUERY, headers=bad)).status_code for _ in range(3)
        ]
        assert statuses == [401, 401, 429]  # a burst of 8 // 4 = 2 per address
        assert (
            await client.post("/graphql", json=QUERY, headers=bearer(Role.PATIENT, "p", 1))
        ).status_code == 200


async def test_workers_sharing_postgres_count_in_one_bucket(world_url: str) -> None:
    clerk = bearer(Role.SCHEDULER, "shared-clerk")
    async with (
        asgi_client(world_url, limits=TIGHT, rate_store=RateStore.POSTGRES) as first,
        asgi_client(world_url, limits=TIGHT, rate_store=RateStore.POSTGRES) as second,
    ):
        statuses = [
            (await worker.post("/graphql", json=QUERY, headers=clerk)).status_code
            for worker in (first, second, first, second)
        ]
    assert statuses == [200, 200, 200, 429]


async def test_operations_on_a_socket_count_too(world_url: str) -> None:
    async with live_server(world_url, limits=TIGHT) as address:
        socket_ = await connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
        try:
            await send(
                socket_, {"type": "connection_init", "payload": bearer(Role.SCHEDULER, "ws")}
            )
            assert await receive(socket_) == {"type": "connection_ack"}
            kinds = []
            for n in range(4):
                await send(socket_, {"id": str(n), "type": "subscribe", "payload": QUERY})
                answer = await receive(socket_)
                kinds.append(answer["type"])
                if answer["type"] == "next":
                    assert (await receive(socket_))["type"] == "complete"
                else:
                    assert answer["payload"][0]["extensions"]["code"] == "RATE_LIMITED"
            assert kinds == ["next", "next", "next", "error"]
        finally:
            await socket_.close()


def test_retry_after_is_the_whole_seconds_until_a_token() -> None:
    bucket = Bucket(per_second=0.5, burst=10)
    assert bucket.retry_after(0.0) == 2
    assert bucket.retry_after(0.9) == 1
    assert Bucket(per_second=100, burst=10).retry_after(0.5) == 1
