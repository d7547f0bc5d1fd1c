"""The read path in one process: the compiled path against the resolver path on the worklist
query, Python CPU per request, and compile time with and without the plan cache.

Throughput against PostGraphile over HTTP is measured separately (see benchmarks/README.md);
these figures need no other server and run everywhere, as ratios within the same run.
"""

from __future__ import annotations

import asyncio
import statistics
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
from care_graph.db.row_security import SESSION_SETTINGS
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
    connection = await connect(url, session=SESSION_SETTINGS)  # as the API connects
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


async def _row_security_rounds(url: str, rounds: int, per_round: int) -> dict[str, list[float]]:
    """Seconds per worklist request, round by round, three ways on the same plan: the path
    before row security (one statement, as the owner), the same request through the service
    as the owner (its transaction and settings, no policies), and the API as it runs (its
    role, under the policies). Rounds alternate, so drift in the machine hits all three."""
    service = GraphQLService(build_schema())
    owner = await connect(url)
    api = await connect(url, session=SESSION_SETTINGS)
    plan = _compile_once(service)
    values = plan.values(RequestValues(_coerced(service), VIEWER))

    async def before() -> None:
        await owner.fetchval(plan.sql, *values)

    async def owner_service() -> None:
        await service.execute(OneConnection(owner), WORKLIST, VARIABLES, None, VIEWER)

    async def as_api() -> None:
        answer = await service.execute(OneConnection(api), WORKLIST, VARIABLES, None, VIEWER)
        assert b'"errors"' not in answer.body, answer.body[:300]

    ways = {"before": before, "owner through the service": owner_service, "api role": as_api}
    times: dict[str, list[float]] = {name: [] for name in ways}
    try:
        for way in ways.values():  # warm plans and caches
            await way()
        for _ in range(rounds):
            for name, way in ways.items():
                started = time.perf_counter()
                for _ in range(per_round):
                    await way()
                times[name].append((time.perf_counter() - started) / per_round)
        return times
    finally:
        await owner.close()
        await api.close()


def test_row_security_costs_the_worklist_little(
    worklist_url: str, smoke: bool, report: list[str]
) -> None:
    """Goal: the worklist under row-level security within 10% of the path before it."""
    times = asyncio.run(_row_security_rounds(worklist_url, 3 if smoke else 15, 1 if smoke else 10))
    median = {name: statistics.median(values) for name, values in times.items()}
    ratio = median["api role"] / median["before"]
    report.append(
        "worklist under row-level security (median of rounds, same run): "
        + ", ".join(f"{name} {1000 * value:.2f} ms" for name, value in median.items())
        + f"; api role / before = {ratio:.3f},"
        f" of which policies {median['api role'] / median['owner through the service']:.3f}"
    )
    if not smoke:
        assert ratio <= 1.10, median


def _coerced(service: GraphQLService) -> Any:
    prepared = service.prepare(WORKLIST)
    assert prepared.document is not None
    operation = get_operation_ast(prepared.document)
    assert operation is not None
    coerced = get_variable_values(
        service.graphql_schema, operation.variable_definitions or (), VARIABLES
    )
    assert not isinstance(coerced, list)
    return coerced


def _compile_once(service: GraphQLService) -> Any:
    prepared = service.prepare(WORKLIST)
    assert prepared.document is not None
    operation = get_operation_ast(prepared.document)
    assert operation is not None
    return service.compiler.compile(
        prepared.document, operation, _coerced(service), policy_for(VIEWER)
    )


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
