"""Metrics seen from outside: /metrics scraped after real requests through the real app."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from care_graph.api.ids import encode_global_id
from care_graph.testing import DatabaseFactory, asgi_client, bearer
from tests.bookings_under_fault import BOOK, pairs
from tests.test_live import CANCEL

FAMILIES = (
    "care_graph_requests",
    "care_graph_request_seconds",
    "care_graph_pool_in_use",
    "care_graph_pool_waiting",
    "care_graph_statement_seconds",
    "care_graph_bookings",
    "care_graph_offers",
    "care_graph_offers_lapsed",
    "care_graph_matcher_solve_seconds",
    "care_graph_live_subscriptions",
    "care_graph_listener_connected",
)


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
    [(referral, slot)] = await pairs(url, 1)
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
        appointment = booked.json()["data"]["bookAppointment"]["appointment"]["id"]
        cancelled = await client.post(
            "/graphql", json={"query": CANCEL, "variables": {"a": appointment}}
        )
        assert "errors" not in cancelled.json(), cancelled.text  # the freed slot is offered on
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
    assert list(delta.values()) == [1, 2, 1], delta  # booked and cancelled; refused
    assert total(after, "care_graph_request_seconds_count", type="mutation") >= 3
    families = {family.name for family in text_string_to_metric_families(scrape.text)}
    assert set(FAMILIES) <= families, set(FAMILIES) - families
    bookings = {
        outcome: total(after, "care_graph_bookings_total", code=outcome)
        - total(before, "care_graph_bookings_total", code=outcome)
        for outcome in ("OK", code)
    }
    assert bookings == {"OK": 1, code: 1}
    assert total(after, "care_graph_statement_seconds_count") > total(
        before, "care_graph_statement_seconds_count"
    )
    solves = total(after, "care_graph_matcher_solve_seconds_count") - total(
        before, "care_graph_matcher_solve_seconds_count"
    )
    assert solves == 1  # the cancelled slot was matched once
    assert total(after, "care_graph_listener_connected") == 1
    assert total(after, "care_graph_live_subscriptions") == 0
    assert total(after, "care_graph_pool_waiting") == 0
    assert total(after, "care_graph_pool_size") >= 1
    assert total(after, "care_graph_pool_in_use") == 0
    for secret in (variables["i"]["idempotencyKey"], variables["i"]["referralId"]):
        assert secret not in scrape.text  # no variable ever reaches a label
