"""Load-test care_graph's GraphQL server side by side with PostGraphile v5, in one run.

Both servers read the same database (demo data seeded for the run) and answer the same two
questions: the worklist (50 accepted referrals by breach date, each with its patient, its
service and 5 candidate slots with their site and staff) and ``{ __typename }``. PostGraphile
gets candidate slots from an SQL function built from care_graph's own declaration of the hard
constraints, so both run the same filter. The load itself is the peer harness's compare.py (wrk,
round-robin repetitions, medians, ratios to PostGraphile).

    python -m benchmarks.http.postgraphile --peers-dir DIR [--scale demo] [--duration 8]

DIR holds the peer harness: graphql/compare.py and graphql/start-postgraphile.sh.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

from care_graph.api.lists import CANDIDATE_SLOTS
from care_graph.db.pool import connect
from care_graph.progress import Progress
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory, database_server

OURS = """query Worklist {
  referrals(first: 50, filter: {status: [ACCEPTED]}, orderBy: BREACH_DATE) {
    nodes {
      ubrn priority breachDate
      patient { nhsNumber givenName familyName }
      toService { code name }
      candidateSlots(first: 5) {
        nodes { startsAt site { name } staff { givenName familyName } }
      }
    }
  }
}"""

THEIRS = """query Worklist {
  allReferrals(first: 50, condition: {status: "ACCEPTED"},
               orderBy: [BREACH_DATE_ASC, PRIMARY_KEY_ASC]) {
    nodes {
      ubrn priority breachDate
      patientByPatientId { nhsNumber givenName familyName }
      serviceByToServiceId { code name }
      candidateSlots(first: 5) {
        nodes { startsAt siteBySiteId { name } staffByStaffId { givenName familyName } }
      }
    }
  }
}"""

# PostGraphile exposes a function taking a table row as a computed field of that table.
PEER_FUNCTION = f"""
CREATE OR REPLACE FUNCTION referrals_candidate_slots(r referrals) RETURNS SETOF slots
LANGUAGE sql STABLE AS $$
    SELECT t.* FROM slots t WHERE {CANDIDATE_SLOTS.condition("t", "r")}
    ORDER BY t.starts_at, t.id
$$;
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def post(url: str, query: str) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:  # GraphQL over HTTP answers errors with 4xx
        return json.loads(error.read())


def wait_for(url: str, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            post(url, "{ __typename }")
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no answer from {url} within {seconds:.0f} s")


def same_answer(ours: Any, theirs: Any) -> bool:
    """Both servers returned the same referrals and the same candidate slots, in order."""

    def flatten(nodes: list[Any], patient: str, slots_key: str) -> list[Any]:
        return [
            (
                n["ubrn"],
                n[patient]["nhsNumber"],
                [s["startsAt"][:16] for s in n[slots_key]["nodes"]],
            )
            for n in nodes
        ]

    return flatten(ours["data"]["referrals"]["nodes"], "patient", "candidateSlots") == flatten(
        theirs["data"]["allReferrals"]["nodes"], "patientByPatientId", "candidateSlots"
    )


async def prepare(url: str) -> None:
    connection = await connect(url)
    try:
        await connection.execute(PEER_FUNCTION)
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--peers-dir",
        type=Path,
        required=True,
        help="the peer harness (graphql/compare.py, graphql/start-postgraphile.sh)",
    )
    parser.add_argument("--scale", choices=sorted(SCALES), default="demo")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--conns", default="16,64")
    args = parser.parse_args()
    progress = Progress("bench")
    scratch = Path(tempfile.mkdtemp(prefix="care-graph-bench-"))
    servers: list[subprocess.Popen[bytes] | int] = []
    with database_server(scratch) as server_url:
        factory = DatabaseFactory(server_url)
        try:
            url = factory.create(seeded=True, anchor=date.today(), scale=SCALES[args.scale])
            asyncio.run(prepare(url))
            progress.note(f"database seeded at scale {args.scale}")
            ours_port = free_port()
            ours = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "care_graph.app:create_app",
                    "--factory",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(ours_port),
                    "--workers",
                    "1",
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                env={
                    **os.environ,
                    "DATABASE_URL": url,
                    "CARE_GRAPH_POOL_MAX": "10",
                    # wrk sends no token: stand in a scheduler (development only)
                    "CARE_GRAPH_ANONYMOUS_ROLE": "scheduler",
                    # the load comes from one caller: the limiter counts, never refuses
                    "CARE_GRAPH_REQUEST_BURST": str(10**9),
                },
            )
            servers.append(ours)
            harness = args.peers_dir / "graphql"
            theirs_port = free_port()
            pid = int(
                subprocess.run(
                    ["bash", str(harness / "start-postgraphile.sh")],
                    check=True,
                    capture_output=True,
                    text=True,
                    env={
                        **os.environ,
                        "PGURI": url,
                        "PG_SCHEMAS": "public",
                        "PGL_PORT": str(theirs_port),
                    },
                ).stdout.split()[-1]
            )
            servers.append(pid)
            ours_url = f"http://127.0.0.1:{ours_port}/graphql"
            theirs_url = f"http://127.0.0.1:{theirs_port}/graphql"
            wait_for(ours_url)
            wait_for(theirs_url)
            progress.note("both servers answer")
            answer_ours, answer_theirs = post(ours_url, OURS), post(theirs_url, THEIRS)
            if (
                "errors" in answer_ours
                or "errors" in answer_theirs
                or not same_answer(answer_ours, answer_theirs)
            ):
                raise SystemExit(f"the servers disagree:\n{answer_ours}\n{answer_theirs}")
            progress.note("both servers give the same worklist")
            work = scratch / "load"
            work.mkdir()
            for name, text in [
                ("cg_worklist.json", OURS),
                ("pgl_worklist.json", THEIRS),
                ("typename.json", "{ __typename }"),
            ]:
                (work / name).write_text(json.dumps({"query": text}))
            (work / "targets.json").write_text(
                json.dumps(
                    [
                        {
                            "name": "postgraphile",
                            "url": theirs_url,
                            "pid": pid,
                            "queries": {
                                "worklist": "pgl_worklist.json",
                                "typename": "typename.json",
                            },
                        },
                        {
                            "name": "care_graph",
                            "url": ours_url,
                            "pid": ours.pid,
                            "queries": {
                                "worklist": "cg_worklist.json",
                                "typename": "typename.json",
                            },
                        },
                    ]
                )
            )
            subprocess.run(
                [
                    sys.executable,
                    str(harness / "compare.py"),
                    str(work / "targets.json"),
                    "--reps",
                    str(args.reps),
                    "--duration",
                    str(args.duration),
                    "--conns",
                    args.conns,
                    "--out",
                    str(work / "results.json"),
                ],
                check=True,
            )
        finally:
            for process in servers:
                if isinstance(process, int):
                    os.kill(process, signal.SIGTERM)
                else:
                    process.terminate()
                    process.wait(timeout=30)
            factory.drop_all()


if __name__ == "__main__":
    main()
