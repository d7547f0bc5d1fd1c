"""The read path in one process: the compiled path against the resolver path on the worklist
query, Python CPU per request, and compile time with and without the plan cache.

Throughput against PostGraphile over HTTP is measured separately (see benchmarks/README.md);
these figures need no other server and run everywhere, as ratios within the same run.
"""

from __future__ import annotations

import asyncio
import time
from datetime import date
from typing import Any

import orjson
import pytest
from graphql import get_operation_ast
from graphql.execution.values import get_variable_values
from pytest_benchmark.fixture import BenchmarkFixture

from care_graph.api.args import RequestValues
from care_graph.api.policy import policy_for
from care_graph.api.schema import build_schema
from care_graph.api.service import GraphQLService
from care_graph.auth import Role, Viewer
from care_graph.db.pool import OneConnection, connect
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory

WORKLIST = """
query Worklist($first: Int!) {
  referrals(first: $first, filter: {status: [ACCEPTED]}, orderBy: BREACH_DATE) {
    nodes {
      id ubrn priority breachDate daysToBreach
      patient { id nhsNumber givenName familyName }
      toService { code name }
      candidateSlots(first: 5) {
        nodes { id startsAt site { name } staff { givenName familyName } }
      }
    }
  }
}
"""
VARIABLES = {"first": 50}
VIEWER = Viewer("bench", Role.SCHEDULER)


@pytest.fixture(scope="module")
def worklist_url(databases: DatabaseFactory, smoke: bool) -> str:
    return databases.create(
        seeded=True, anchor=date.today(), scale=SCALES["tiny" if smoke else "demo"]
    )


async def _time_path(url: str, compiled: bool, requests: int) -> tuple[float, float, int]:
    """Wall seconds, Python CPU seconds and response bytes for ``requests`` worklist queries."""
    service = GraphQLService(build_schema())
    connection = await connect(url)
    try:

        async def run() -> bytes:
            if compiled:
                answer = await service.execute(
                    OneConnection(connection), WORKLIST, VARIABLES, None, VIEWER
                )
            else:
                answer = await service.execute_resolved(
                    connection, WORKLIST, VARIABLES, None, VIEWER
                )
            return answer.body

        body = await run()  # warm caches and prepared statements
        assert b'"errors"' not in body, body[:500]
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(requests):
            await run()
        return time.perf_counter() - wall, time.process_time() - cpu, len(body)
    finally:
        await connection.close()


def test_compiled_against_resolver_path(worklist_url: str, smoke: bool, report: list[str]) -> None:
    requests = 3 if smoke else 60
    compiled_wall, compiled_cpu, size = asyncio.run(_time_path(worklist_url, True, requests))
    resolved_wall, resolved_cpu, _ = asyncio.run(_time_path(worklist_url, False, requests))
    report.append(
        f"worklist ({size:,} bytes), {requests} requests on one connection:"
        f" compiled {1000 * compiled_wall / requests:.1f} ms/request"
        f" ({1000 * compiled_cpu / requests:.2f} ms Python CPU),"
        f" resolver path {1000 * resolved_wall / requests:.1f} ms/request"
        f" ({1000 * resolved_cpu / requests:.2f} ms Python CPU);"
        f" compiled is {resolved_wall / compiled_wall:.1f}x faster,"
        f" {resolved_cpu / compiled_cpu:.0f}x less Python CPU"
    )
    assert compiled_cpu < resolved_cpu


def _compile_once(service: GraphQLService) -> Any:
    prepared = service.prepare(WORKLIST)
    assert prepared.document is not None
    operation = get_operation_ast(prepared.document)
    assert operation is not None
    variables = get_variable_values(
        service.graphql_schema, operation.variable_definitions or (), VARIABLES
    )
    assert not isinstance(variables, list)
    return service.compiler.compile(prepared.document, operation, variables, policy_for(VIEWER))


def test_compile_uncached(benchmark: BenchmarkFixture, report: list[str]) -> None:
    schema = build_schema()

    def fresh() -> Any:
        return _compile_once(GraphQLService(schema, cache_size=1))

    plan = benchmark(fresh)
    assert plan.sql.startswith("SELECT json_build_object('referrals'")
    if benchmark.stats:
        report.append(
            f"compile worklist, uncached (parse+validate+compile):"
            f" {1e6 * benchmark.stats.stats.median:.0f} us"
        )


def test_compile_cached(benchmark: BenchmarkFixture, report: list[str]) -> None:
    service = GraphQLService(build_schema())
    prepared = service.prepare(WORKLIST)
    assert prepared.document is not None
    operation = get_operation_ast(prepared.document)
    assert operation is not None

    def cached() -> Any:
        # what a request costs in Python before the SQL: cache lookups, variables, parameters
        document = service.prepare(WORKLIST).document
        assert document is not None
        variables = get_variable_values(
            service.graphql_schema,
            operation.variable_definitions or (),
            orjson.loads(orjson.dumps(VARIABLES)),
        )
        assert not isinstance(variables, list)
        key = (WORKLIST, None, ())
        plan = service._plans.get(key)
        if plan is None:
            plan = service.compiler.compile(document, operation, variables, policy_for(VIEWER))
            service._plans.put(key, plan)
        return plan.values(RequestValues(variables, VIEWER))

    values = benchmark(cached)
    assert 50 in values
    if benchmark.stats:
        report.append(
            f"compile worklist, cached (lookup+variables+parameters):"
            f" {1e6 * benchmark.stats.stats.median:.0f} us"
        )
