"""Seeding: generate the `region` scale and load it with COPY, against a bare-COPY baseline.

The target is the region scale (~100,000 open referrals, ~500,000 slots) in under 60 s on a
2-core machine. The baseline, in the same run, COPYs the same rows into copies of the tables
without indexes, constraints or triggers: the ratio is what care_graph's invariants cost.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from care_graph.db.pool import connect
from care_graph.seed.generate import DemoData, generate
from care_graph.seed.load import load, table_records
from care_graph.seed.scales import SCALES
from care_graph.testing import ANCHOR, DatabaseFactory


async def _bare_copy(url: str, data: DemoData) -> float:
    """Seconds to COPY the same rows into constraint-free, index-free copies of the tables."""
    connection = await connect(url)
    try:
        await connection.execute("CREATE SCHEMA IF NOT EXISTS bare")
        for table in data.tables:
            await connection.execute(
                f"DROP TABLE IF EXISTS bare.{table.name};"
                f" CREATE TABLE bare.{table.name} (LIKE public.{table.name}"
                " INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING IDENTITY)"
            )
        started = time.perf_counter()
        async with connection.transaction():
            for table in data.tables:
                await connection.copy_records_to_table(
                    table.name,
                    schema_name="bare",
                    records=table_records(table),
                    columns=list(table.columns),
                )
        return time.perf_counter() - started
    finally:
        await connection.close()


async def _generate_and_load(url: str, scale_name: str) -> dict[str, Any]:
    started = time.perf_counter()
    data = generate(SCALES[scale_name], seed=0, anchor=ANCHOR)
    generated = time.perf_counter()
    connection = await connect(url)
    try:
        await load(connection, data, replace=True)
    finally:
        await connection.close()
    loaded = time.perf_counter()
    return {"data": data, "generate_s": generated - started, "load_s": loaded - generated}


@pytest.mark.parametrize("scale_name", ["region"])
def test_seed_region_scale(
    benchmark: BenchmarkFixture,
    databases: DatabaseFactory,
    smoke: bool,
    report: list[str],
    scale_name: str,
) -> None:
    scale_name = "tiny" if smoke else scale_name
    url = databases.create()
    timings: list[dict[str, Any]] = []

    def run() -> None:
        timings.append(asyncio.run(_generate_and_load(url, scale_name)))

    benchmark.pedantic(run, rounds=1 if smoke else 2, iterations=1)
    best = min(timings, key=lambda t: t["generate_s"] + t["load_s"])
    bare = asyncio.run(_bare_copy(url, best["data"]))
    counts = best["data"].counts()
    total = best["generate_s"] + best["load_s"]
    benchmark.extra_info.update(
        generate_s=best["generate_s"],
        load_s=best["load_s"],
        bare_copy_s=bare,
        referrals=counts["referrals"],
        slots=counts["slots"],
    )
    report.append(
        f"seed {scale_name}: {counts['referrals']:,} referrals, {counts['slots']:,} slots,"
        f" {sum(counts.values()):,} rows: generate {best['generate_s']:.1f} s + load"
        f" {best['load_s']:.1f} s = {total:.1f} s (target 60 s: {total / 60:.2f}x of budget);"
        f" load / bare COPY = {best['load_s'] / bare:.2f}x"
    )
    assert counts["referrals"] == SCALES[scale_name].referrals
