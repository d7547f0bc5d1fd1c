"""The cost model's configuration: names and points checked, defaults kept, and the server
weighing plans with what it was configured with."""

from __future__ import annotations

import pytest

from care_graph.auth import Role
from care_graph.matching.cost import CostModel
from care_graph.testing import DatabaseFactory, asgi_client, bearer
from tests.test_matching_plan import WORLD


def test_weights_override_only_what_they_name() -> None:
    model = CostModel.parse(" per_km=30, preferred_site_bonus=1000,")
    assert model == CostModel(per_km=30, preferred_site_bonus=1000)
    assert CostModel.parse("") == CostModel()


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("per_mile=3", "unknown matching weight 'per_mile'"),
        ("per_km=-1", "per_km must be a whole number from 0 to 100,000, got '-1'"),
        ("per_km", "per_km must be a whole number from 0 to 100,000, got ''"),
        ("per_km=1099511627776", "per_km must be a whole number from 0 to 100,000"),
    ],
)
def test_bad_weights_are_refused_by_name(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        CostModel.parse(text)


@pytest.fixture
def world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


async def test_the_server_weighs_plans_with_its_configured_model(world_url: str) -> None:
    query = """mutation { runMatching(scope: {}) { assignments { breakdown { travel delay } } } }"""
    async with asgi_client(
        world_url, headers=bearer(Role.SCHEDULER), cost_model=CostModel(per_km=0, per_day_until=1)
    ) as client:
        body = (await client.post("/graphql", json={"query": query})).json()
    breakdowns = [item["breakdown"] for item in body["data"]["runMatching"]["assignments"]]
    assert len(breakdowns) == 3
    assert {item["travel"] for item in breakdowns} == {0}
    assert sorted(item["delay"] for item in breakdowns) == [-5, -4, -3]  # days 3, 4 and 5
