"""The examples in examples/ work against today's API: every operation validates against the
served schema, and each journey script runs, as a user would run it, against a live server
on the demo data with a token minted the way the README says."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest
from graphql import parse, validate

from care_graph.api.ids import decode_global_id
from care_graph.api.schema import build_schema
from care_graph.auth import Role
from care_graph.testing import DatabaseFactory, bearer, live_server

EXAMPLES = Path(__file__).parent.parent / "examples"
OPERATIONS = sorted((EXAMPLES / "operations").glob("*.graphql"))
# a patient whose waiting referral has slots near them to book and to move to
PATIENTS_WHO_CAN_BOOK = """{ referrals(first: 50, filter: {status: [ACCEPTED]}) { nodes {
  patient { id } candidateSlots(first: 2) { nodes { id } } } } }"""


@pytest.mark.parametrize("path", OPERATIONS, ids=[path.stem for path in OPERATIONS])
def test_every_example_operation_is_valid_against_the_schema(path: Path) -> None:
    assert validate(build_schema()._schema, parse(path.read_text())) == []


@pytest.fixture(scope="module")
def demo_url(databases: DatabaseFactory) -> str:
    return databases.create(seeded=True, anchor=date.today())


async def run_example(
    script: str, address: str, token: str, *args: str, status: int = 0
) -> tuple[str, str]:
    """Run an example as its reader would; what it printed, to stdout and to stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        "--url",
        f"http://{address}/graphql",
        *args,
        env={**os.environ, "CARE_GRAPH_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == status, err.decode()
    return out.decode(), err.decode()


async def patient_who_can_book(address: str) -> int:
    async with httpx.AsyncClient(headers=bearer(Role.SCHEDULER)) as http:
        body = (
            await http.post(f"http://{address}/graphql", json={"query": PATIENTS_WHO_CAN_BOOK})
        ).json()
    for node in body["data"]["referrals"]["nodes"]:
        decoded = decode_global_id(node["patient"]["id"])
        if len(node["candidateSlots"]["nodes"]) == 2 and decoded is not None:
            return decoded[1]
    raise AssertionError("the demo data has no patient with two slots to choose from")


async def test_the_patient_journey_example_runs(demo_url: str) -> None:
    async with live_server(demo_url, sweep_seconds=0) as address:
        patient = await patient_who_can_book(address)
        token = bearer(Role.PATIENT, "app-user-1", patient)["Authorization"].split()[1]
        printed, _ = await run_example("patient_books_and_reschedules.py", address, token)
    steps = [line.split()[0] for line in printed.splitlines() if not line.startswith(" ")]
    assert steps == ["my", "held", "booked", "moved", "cancelled:"], printed
    assert "cancelled: CANCELLED" in printed


async def test_the_scheduler_example_plans_and_commits_once(demo_url: str) -> None:
    token = bearer(Role.SCHEDULER, "clerk-1")["Authorization"].split()[1]
    async with live_server(demo_url, sweep_seconds=0) as address:
        printed, _ = await run_example(
            "scheduler_plans_and_commits.py", address, token, "--region", "LONDON"
        )
    lines = printed.splitlines()
    assert lines[0].startswith("plan plan:")
    booked = int(lines[1].split()[1])
    assert booked > 0
    assert lines[2] == f"committed again: {booked} booked (the same answer, nothing new)"


async def test_the_clinic_example_triages_and_books(demo_url: str) -> None:
    token = bearer(Role.CLINICIAN, "dr-okafor")["Authorization"].split()[1]
    async with live_server(demo_url, sweep_seconds=0) as address:
        printed, _ = await run_example("clinic_triages_and_books.py", address, token)
    lines = printed.splitlines()
    assert lines[0].startswith("triaging ")
    assert "  accepted: ACCEPTED, breach date " in printed
    assert lines[-1].startswith("booked "), printed


async def test_the_subscriber_example_hears_an_offer(demo_url: str) -> None:
    token = bearer(Role.SCHEDULER, "clerk-2")["Authorization"].split()[1]
    async with live_server(demo_url, sweep_seconds=0) as address:
        printed, _ = await run_example("subscriber_hears_an_offer.py", address, token)
    lines = printed.splitlines()
    assert lines[0] == "subscribed to slotOffered"
    assert lines[1].startswith("cancelled ")
    assert lines[-1].startswith("heard: "), printed


async def test_an_example_reports_a_refusal_by_its_code(demo_url: str) -> None:
    async with live_server(demo_url, sweep_seconds=0) as address:
        _, err = await run_example(
            "scheduler_plans_and_commits.py",
            address,
            "not-a-token",
            "--region",
            "LONDON",
            status=1,
        )
    assert err.startswith("refused: UNAUTHENTICATED: "), err


WEB = Path(__file__).parent.parent / "web"


def node_tool(name: str) -> tuple[str, dict[str, str]]:
    """A Node.js command (``node``, ``npx``): the machine's, or the one scripts/dev setup put
    beside this Python; and the environment to run it in, which finds it too."""
    path = f"{os.environ.get('PATH', '')}{os.pathsep}{Path(sys.executable).parent}"
    found = shutil.which(name, path=path)
    assert found is not None, "scripts/dev setup installs Node.js and web/: run it"
    return found, {**os.environ, "PATH": path}


def test_typescript_types_generate_from_the_schema_and_compile() -> None:
    """What a frontend team does first with schema.graphql: GraphQL Code Generator's types for
    the schema and the example operations, then the TypeScript compiler, strict, over them."""
    npx, env = node_tool("npx")
    assert (WEB / "node_modules" / ".bin" / "graphql-codegen").exists(), "run scripts/dev setup"

    def npx_run(*args: str) -> None:
        done = subprocess.run(
            [npx, "--no-install", *args],
            cwd=WEB,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    npx_run("graphql-codegen", "--config", "codegen.yml")
    types = (WEB / "generated" / "care-graph.ts").read_text()
    for name in ("Referral", "Slot", "MyReferralsQuery", "BookAppointmentMutation"):
        assert f"export type {name} = " in types, name
    npx_run("tsc", "-p", "tsconfig.json")
