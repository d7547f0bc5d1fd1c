"""Metrics seen from outside: /metrics scraped after real requests through the real app."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from care_graph.api.ids import encode_global_id
from care_graph.testing import DatabaseFactory, asgi_client, bearer
from tests.test_cut_connections import BOOK, pairs


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, keyed by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(
    scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        value
        for (sample, keys), value in scraped.items()
        if sample == name and set(labels.items()) <= set(keys)
    )


@pytest.fixture
def url(databases: DatabaseFactory) -> str:
    """A seeded database of this module's own, so that its bookings disturb no other test."""
    return databases.create(seeded=True)


async def test_metrics_count_operations_by_name_and_code(url: str) -> None:
    [(referral, slot), *_] = await pairs(url)
    async with asgi_client(url, headers=bearer()) as client:
        before = samples((await client.get("/metrics")).text)
        read = await client.post("/graphql", json={"query": "query Sites { __typename }"})
        assert read.status_code == 200
        variables = {
            "i": {
                "referralId": encode_global_id("Referral", referral),
                "slotId": encode_global_id("Slot", slot),
                "idempotencyKey": str(uuid.uuid4()),
            }
        }
        booked = await client.post("/graphql", json={"query": BOOK, "variables": variables})
        assert "errors" not in booked.json(), booked.text
        variables["i"]["idempotencyKey"] = str(uuid.uuid4())  # the same slot again: refused
        refused = await client.post("/graphql", json={"query": BOOK, "variables": variables})
        [error] = refused.json()["errors"]
        code = error["extensions"]["code"]
        scrape = await client.get("/metrics")
    assert scrape.status_code == 200
    after = samples(scrape.text)
    delta = {
        key: total(after, "care_graph_requests_total", **dict(key))
        - total(before, "care_graph_requests_total", **dict(key))
        for key in [
            (("operation", "Sites"), ("code", "OK")),
            (("type", "mutation"), ("code", "OK")),
            (("type", "mutation"), ("code", code)),
        ]
    }
    assert list(delta.values()) == [1, 1, 1], delta
    assert total(after, "care_graph_request_seconds_count", type="mutation") >= 2
    assert total(after, "care_graph_pool_waiting") == 0
    assert total(after, "care_graph_pool_size") >= 1
    assert total(after, "care_graph_pool_in_use") == 0
    for secret in (variables["i"]["idempotencyKey"], variables["i"]["referralId"]):
        assert secret not in scrape.text  # no variable ever reaches a label
