"""Hostile requests through the real app on a real database, each the smallest case of a
defect the fuzzer found, held to the rules every response is held to (``violations``): no 5xx,
no INTERNAL_SERVER_ERROR, no traceback, SQL, file path or PostgreSQL error text anywhere in
it, and every error has a string ``extensions.code`` and a ``message``.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import httpx
import orjson
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from care_graph.auth import Role
from care_graph.config import Limits
from care_graph.db.pool import connect
from care_graph.testing import DatabaseFactory, asgi_client, bearer

# The fuzzer sends hundreds of requests a minute under one subject: rate limits are set out of
# its way, so that every request reaches the code under test.
UNTHROTTLED = replace(
    Limits(),
    requests_per_minute=10_000_000,
    request_burst=10_000_000,
    anonymous_requests_per_minute=10_000_000,
)

# ---------------------------------------------------------------------------------------------
# What every response is held to

LEAKS = re.compile(
    "|".join(
        (
            r"Traceback \(most recent call last\)",
            r'File "',
            r'\.py"',
            r"/work/",
            r"site-packages",
            r"\bSELECT\b[^\"]{0,200}\bFROM\b",
            r"\bINSERT INTO\b",
            r"\bUPDATE \w+ SET\b",
            r"\$\d+::",
            r"syntax error at or near",
            r"\bviolates\b",
            r'relation "',
            r'column "',
            r"\bconstraint \"",
            r"asyncpg",
            r"psycopg",
            r"\bpg_catalog\b",
        )
    ),
    re.IGNORECASE,
)


def violations(status: int, content: bytes) -> list[str]:
    """What is wrong with one response under the fuzzing rules; empty when nothing is."""
    found = []
    if status >= 500:
        found.append(f"HTTP {status}")
    text = content.decode("utf-8", "replace")
    leak = LEAKS.search(text)
    if leak is not None:
        found.append(f"leaks {leak.group(0)!r}")
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError:
        return [*found, "the body is not JSON"]
    if not isinstance(body, dict) or not ({"data", "errors"} & body.keys()):
        return [*found, "the body is not a GraphQL response"]
    errors = body.get("errors", [])
    if not isinstance(errors, list):
        return [*found, "errors is not a list"]
    for error in errors:
        extensions = error.get("extensions") if isinstance(error, dict) else None
        code = extensions.get("code") if isinstance(extensions, dict) else None
        if not isinstance(code, str):
            found.append(f"an error without a code: {error!r:.200}")
        elif code == "INTERNAL_SERVER_ERROR":
            found.append("INTERNAL_SERVER_ERROR")
        if not isinstance(error, dict) or not isinstance(error.get("message"), str):
            found.append(f"an error without a message: {error!r:.200}")
    return found


def check(response: httpx.Response, request: object) -> None:
    """Fail with the request and the answer when the response breaks a rule."""
    found = violations(response.status_code, response.content)
    assert not found, (
        f"{found} for {request!r:.1500}: HTTP {response.status_code} {response.text:.800}"
    )


async def send(client: httpx.AsyncClient, request: object, **kwargs: Any) -> httpx.Response:
    """One request to the app; an exception out of the app is the 500 a server would answer."""
    try:
        return await client.request(**kwargs)
    except Exception as error:  # the app raised: under uvicorn, HTTP 500
        raise AssertionError(f"the app raised {error!r:.300} for {request!r:.1500}") from error


async def post(
    client: httpx.AsyncClient,
    body: dict[str, Any] | bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST a GraphQL request (a JSON object, or raw bytes sent as JSON), checked."""
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    response = await send(
        client,
        body,
        method="POST",
        url="/graphql",
        content=content,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    check(response, body)
    return response


# ---------------------------------------------------------------------------------------------
# The database the fuzzer works on, and proof that it stays whole


@pytest.fixture(scope="module")
def fuzz_url(databases: DatabaseFactory) -> str:
    """Tiny demo data anchored today (so slots lie ahead and bookings can succeed); the fuzzer
    writes to it, so it is this module's alone."""
    return databases.create(seeded=True, anchor=date.today())


async def table_rows(url: str) -> dict[str, int]:
    """Every table of the database and how many rows it holds."""
    connection = await connect(url)
    try:
        tables = [
            row["tablename"]
            for row in await connection.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            )
        ]
        return {
            table: await connection.fetchval(f'SELECT count(*) FROM "{table}"') for table in tables
        }
    finally:
        await connection.close()


@dataclass(frozen=True, slots=True)
class App:
    """The real app (lifespan run) on the fuzzer's database, driven from synchronous code:
    hypothesis calls test functions synchronously, and the app runs in the portal's loop."""

    portal: BlockingPortal
    client: httpx.AsyncClient

    def post(
        self, body: dict[str, Any] | bytes, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST a GraphQL request, checked (see ``post``)."""
        response: httpx.Response = self.portal.call(post, self.client, body, headers)
        return response

    def request(self, request: object, **kwargs: Any) -> httpx.Response:
        """Any request, checked."""
        response = self.portal.call(lambda: send(self.client, request, **kwargs))
        check(response, request)
        return response

    def whole(self, url: str, before: dict[str, int]) -> None:
        """Every table that was there is there, and the app still answers."""
        after = asyncio.run(table_rows(url))
        assert set(before) <= set(after), f"tables gone: {set(before) - set(after)}"
        assert after["patients"] > 0
        answer = self.post({"query": "{ __typename }"}, bearer(Role.PATIENT, "p", 1))
        assert answer.json() == {"data": {"__typename": "Query"}}


@pytest.fixture(scope="module")
def app(fuzz_url: str) -> Iterator[App]:
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(
            asgi_client(fuzz_url, limits=UNTHROTTLED, sweep_seconds=0)
        ) as client,
    ):
        yield App(portal, client)


def global_id(type_name: str, key: object) -> str:
    """A global id of any shape: ``Type:key`` in base64, key as given."""
    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


def cursor(sort_key: object, key: object) -> str:
    return base64.b64encode(orjson.dumps([sort_key, key])).decode()


# introspection in a document sends it down the resolver path instead of the compiled one
RESOLVER_PATH = "__schema { queryType { name } } "


# ---------------------------------------------------------------------------------------------
# What the fuzzer found: each defect's smallest request


def test_a_roster_on_the_first_day_python_knows_is_refused(app: App) -> None:
    """0001-01-01 and 9999-12-31 are what asyncpg sends as -infinity and infinity: a roster on
    that day made a shift from -infinity to -infinity, refused by a CHECK constraint, which
    answered INTERNAL_SERVER_ERROR."""
    for day in ("0001-01-01", "9999-12-31"):
        roster = {
            "staffId": global_id("Staff", 1),
            "siteId": global_id("Site", 1),
            "service": "CARDIOLOGY",
            "weekdays": [1, 2, 3, 4, 5, 6, 7],
            "starts": "09:00:00",
            "ends": "10:00:00",
            "firstDay": day,
            "lastDay": day,
        }
        body = app.post(
            {
                "query": "mutation($i: PublishRosterInput!) { publishRoster(input: $i)"
                " { slotCount } }",
                "variables": {"i": roster},
            },
            bearer(Role.ADMIN, "root-fuzz"),
        ).json()
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body


def test_a_date_asyncpg_would_store_as_infinity_is_refused(app: App) -> None:
    """A referral's earliest date of 0001-01-01 was stored as -infinity: the compiled path
    then read it back as "-infinity", not a Date, and the resolver path as 0001-01-01."""
    body = app.post(
        {
            "query": "mutation { createReferral(input: {patientId: "
            f'"{global_id("Patient", 1)}", toService: "CARDIOLOGY", priority: ROUTINE,'
            ' referrerName: "Dr Who", referrerKind: GP, earliestDate: "0001-01-01"})'
            " { referral { id } } }"
        },
        bearer(Role.ADMIN, "root-fuzz"),
    ).json()
    assert body["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", body
    assert "0001-01-01" in body["errors"][0]["message"]


def test_an_id_past_bigint_names_nothing_on_either_path(app: App) -> None:
    """Referral:9223372036854775808 reached SQL as a bigint parameter, which asyncpg refuses:
    BAD_USER_INPUT on the compiled path, where an id naming no row answers null; on the
    resolver path, beside other ids in nodes(ids:), the transaction then committed while
    another load still read on its connection: 503 (asyncpg: another operation is in
    progress)."""
    past = global_id("Referral", 2**63)
    for prefix in ("", RESOLVER_PATH):
        body = app.post(
            {"query": f'{{ {prefix}node(id: "{past}") {{ id }} }}'}, bearer(Role.ADMIN, "a")
        ).json()
        assert body["data"]["node"] is None
        assert "errors" not in body, body
    ids_ = [global_id("Slot", 2**63), global_id("Referral", 1), global_id("Patient", 1)]
    query = "{ " + RESOLVER_PATH + "nodes(ids: " + orjson.dumps(ids_).decode() + ") { id } }"
    body = app.post({"query": query}, bearer(Role.ADMIN, "root-fuzz")).json()
    assert body["data"]["nodes"] == [None, {"id": ids_[1]}, {"id": ids_[2]}]
    # a cursor's key past bigint is as malformed as any other
    query = f'{{ referrals(after: "{cursor("2026-12-01", 2**63)}") {{ nodes {{ id }} }} }}'
    body = app.post({"query": query}, bearer(Role.ADMIN, "root-fuzz")).json()
    assert body["errors"][0]["message"].startswith("invalid cursor"), body


def test_one_failed_read_fails_the_reads_after_it_with_its_own_error(app: App) -> None:
    """On the resolver path, a read refused for its argument (a latitude whose sine
    underflows) aborts the request's transaction; the reads after it failed with "current
    transaction is aborted", masked as INTERNAL_SERVER_ERROR."""
    query = (
        "{ "
        + RESOLVER_PATH
        + f'node(id: "{global_id("Site", 1)}") {{ ... on Site {{ distanceKm(latitude: 5e-324,'
        f' longitude: 0) }} }} nodes(ids: ["{global_id("Patient", 1)}"]) {{ id }} }}'
    )
    body = app.post({"query": query}, bearer(Role.ADMIN, "root-fuzz")).json()
    assert {error["extensions"]["code"] for error in body["errors"]} == {"BAD_USER_INPUT"}
