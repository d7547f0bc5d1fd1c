"""The `care-graph` command, run as a real process against the test server."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import asyncpg
import httpx
import pytest

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role, TokenSettings, verify
from care_graph.db.pool import connect
from care_graph.nhs import check_digit
from care_graph.testing import DatabaseFactory, free_port

COMMANDS = [
    [],
    ["serve"],
    ["db"],
    ["db", "migrate"],
    ["db", "seed"],
    ["db", "url"],
    ["db", "reset"],
    ["db", "stop"],
    ["db", "replica"],
    ["match"],
    ["simulate"],
    ["outlook"],
    ["recommend"],
    ["roster"],
    ["roster", "publish"],
    ["schema"],
    ["token"],
    ["documents"],
    ["documents", "add"],
    ["documents", "list"],
]


def care_graph(
    *args: str, database_url: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "care_graph", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "top")
def test_every_command_has_help(command: list[str]) -> None:
    result = care_graph(*command, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: ")


def test_seed_into_a_fresh_database(databases: DatabaseFactory) -> None:
    url = databases.create(migrated=False)
    result = care_graph(
        "db",
        "seed",
        "--scale",
        "tiny",
        "--referrals",
        "123",
        "--seed",
        "4",
        "--anchor",
        "2026-11-24",
        database_url=url,
    )
    assert result.returncode == 0, result.stderr
    assert "applied 0001_core" in result.stderr
    assert "[load] slots" in result.stderr
    assert "seeded 123 referrals" in result.stderr
    again = care_graph("db", "seed", "--scale", "tiny", database_url=url)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        "[migrate] schema is up to date",
        "care-graph: error: the database already holds data; pass --replace to empty it first"
        " (INVALID_ARGUMENT)",
    ]


def test_migrate_twice_is_a_no_op(databases: DatabaseFactory) -> None:
    url = databases.create(migrated=False)
    assert "applied 0001_core" in care_graph("db", "migrate", database_url=url).stderr
    assert "schema is up to date" in care_graph("db", "migrate", database_url=url).stderr


def test_reset_needs_confirmation_without_a_terminal(databases: DatabaseFactory) -> None:
    result = care_graph("db", "reset", database_url=databases.create())
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "care-graph: aborted"


def test_unreachable_database_is_one_clear_line() -> None:
    result = care_graph(
        "db", "migrate", database_url="postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("care-graph: error: cannot connect to the database:")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["db", "bogus"], "care-graph: error: No such command 'bogus'."),
        (["db", "seed", "--scale", "galaxy"], "care-graph: error: Invalid value for '--scale'"),
        (["db", "seed", "--weeks", "0"], "care-graph: error: Invalid value for '--weeks'"),
    ],
)
def test_usage_errors_are_one_clear_line(args: list[str], message: str) -> None:
    result = care_graph(*args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(message), lines


def serve_process(port: int, env: dict[str, str], *options: str) -> subprocess.Popen[str]:
    """`care-graph serve` with the tiny demo on ``port``, as a process of its own; its output
    (stdout and stderr together) is read by ``communicate`` once it has stopped."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "care_graph",
            "serve",
            "--port",
            str(port),
            "--demo-scale",
            "tiny",
            *options,
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_serve_migrates_seeds_and_answers_health(databases: DatabaseFactory) -> None:
    url = databases.create(migrated=False)
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url}
    server = serve_process(port, env)
    try:
        deadline = time.monotonic() + 60
        health = None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert health is not None, "server did not answer within 60 s"
        assert health.json() == {"status": "ok"}
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
        assert ready.json()["ready"] is True
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    assert "[load] referrals" in output
    assert "Application shutdown complete." in output
    assert output.rstrip().endswith("care_graph stopped")
    assert server.returncode == 0, output


def test_match_proposes_a_plan_then_commits_that_plan_once(databases: DatabaseFactory) -> None:
    url = databases.create(seeded=True, anchor=date.today())
    proposed = care_graph("match", database_url=url)
    assert proposed.returncode == 0, proposed.stderr
    [matched_text] = re.findall(r"matched ([\d,]+) of", proposed.stdout)
    [key] = re.findall(r"--plan (plan:\w+)", proposed.stdout)
    matched = int(matched_text.replace(",", ""))
    assert matched > 0

    for _ in range(2):  # the second run books nothing more and reports the same
        committed = care_graph("match", "--plan", key, database_url=url)
        assert committed.returncode == 0, committed.stderr
        assert f"committed: {matched:,} booked, 0 skipped" in committed.stdout

    async def plan_bookings_and_reads() -> tuple[int, int]:
        connection = await asyncpg.connect(url)
        try:
            count: int = await connection.fetchval(
                "SELECT count(*) FROM appointments WHERE booked_by = 'care-graph match'"
            )
            read: int = await connection.fetchval(
                "SELECT count(*) FROM audit_events WHERE operation = 'READ'"
                " AND detail->>'purpose' = 'matching' AND detail->>'plan' = $1",
                key,
            )
            return count, read
        finally:
            await connection.close()

    # proposing read the patients' homes and said so, once; committing read nothing new
    assert asyncio.run(plan_bookings_and_reads()) == (matched, 1)
    refused = care_graph("match", "--plan", key, "--compare", database_url=url)
    assert refused.returncode == 2
    assert "--plan commits a kept plan" in refused.stderr


def test_a_token_names_its_patient_and_sites_as_the_api_shows_them(seeded_url: str) -> None:
    settings = TokenSettings.from_environment(development=True)
    nhs_number = care_graph_patient_number(seeded_url)
    by_number = care_graph(
        "token",
        "--role",
        "patient",
        "--subject",
        "p-1",
        "--patient",
        nhs_number,
        database_url=seeded_url,
    )
    assert by_number.returncode == 0, by_number.stderr
    viewer = verify(by_number.stdout.strip(), settings)
    assert viewer.role is Role.PATIENT
    patient_id = encode_global_id("Patient", viewer.patient_id or 0)
    assert f"patient {patient_id}" in by_number.stderr
    assert "role patient" in by_number.stderr
    assert "expires 20" in by_number.stderr
    by_id = care_graph("token", "--role", "patient", "--subject", "p-1", "--patient", patient_id)
    assert verify(by_id.stdout.strip(), settings).patient_id == viewer.patient_id
    site = encode_global_id("Site", 3)
    clerk = care_graph("token", "--role", "scheduler", "--subject", "c", "--site", site)
    assert verify(clerk.stdout.strip(), settings).site_ids == (3,)


def test_a_token_for_someone_who_is_not_there_is_refused(seeded_url: str) -> None:
    wrong_type = care_graph(
        "token", "--role", "patient", "--subject", "p", "--patient", encode_global_id("Site", 1)
    )
    assert wrong_type.returncode == 2
    assert "is not a Patient id" in wrong_type.stderr
    nobody = unused_nhs_number(seeded_url)
    spaced = f"{nobody[:3]} {nobody[3:6]} {nobody[6:]}"
    unknown = care_graph(
        "token",
        "--role",
        "patient",
        "--subject",
        "p",
        "--patient",
        spaced,
        database_url=seeded_url,
    )
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == (
        f"care-graph: error: no patient has NHS number {nobody} (NOT_FOUND)"
    )


def care_graph_patient_number(url: str) -> str:
    async def first() -> str:
        connection = await connect(url)
        try:
            return str(await connection.fetchval("SELECT nhs_number FROM patients ORDER BY id"))
        finally:
            await connection.close()

    return asyncio.run(first())


def unused_nhs_number(url: str) -> str:
    async def taken() -> set[str]:
        connection = await connect(url)
        try:
            return {row[0] for row in await connection.fetch("SELECT nhs_number FROM patients")}
        finally:
            await connection.close()

    numbers = (
        f"{first_nine}{digit}"
        for first_nine in (str(900_000_000 + n) for n in range(1000))
        if (digit := check_digit(first_nine)) is not None
    )
    used = asyncio.run(taken())
    return next(number for number in numbers if number not in used)


def test_simulate_prints_a_table_for_each_policy_and_refuses_a_bad_scenario(
    seeded_url: str, tmp_path: Path
) -> None:
    scenario = tmp_path / "wider.json"
    scenario.write_text('{"name": "wider", "travel_factor": 1.5}')
    done = care_graph(
        "simulate", "--region", "NORTH_WEST", "--weeks", "3", "--replications", "2",
        "--scenario", str(scenario), database_url=seeded_url,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for policy in ("fcfs", "priority", "care_graph"):
        assert f"| baseline | {policy} |" in done.stdout
        assert f"| wider | {policy} |" in done.stdout
    assert "| wider - baseline | care_graph |" in done.stdout
    assert "| care_graph - fcfs (baseline) | care_graph |" in done.stdout
    assert "[simulate] baseline care_graph #2" in done.stderr  # progress, then the summary
    as_json = care_graph(
        "simulate", "--region", "NORTH_WEST", "--weeks", "2", "--replications", "1",
        "--policy", "care_graph", "--json", database_url=seeded_url,
    )  # fmt: skip
    assert as_json.returncode == 0, as_json.stderr
    runs = json.loads(as_json.stdout)["runs"]
    assert [(run["scenario"], run["policy"]) for run in runs] == [("baseline", "care_graph")]
    assert runs[0]["outcomes"][0]["horizon_days"] == 14
    scenario.write_text('{"name": "wider", "travel_factor": -1}')
    refused = care_graph(
        "simulate", "--region", "NORTH_WEST", "--scenario", str(scenario),
        database_url=seeded_url,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "travel_factor must be above 0" in refused.stderr
    assert "Traceback" not in refused.stderr
    unknown = care_graph("simulate", "--region", "ATLANTIS", database_url=seeded_url)
    assert unknown.returncode == 1
    assert "unknown region 'ATLANTIS' (INVALID_ARGUMENT)" in unknown.stderr
