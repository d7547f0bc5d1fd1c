"""The API fuzzed as an attacker with a token would fuzz it, through the real app on a real
database: schemathesis (the schema loaded from the app itself, valid and invalid operations),
hypothesis-graphql with hostile scalars (SQL-looking strings, NUL bytes, ids and cursors of the
wrong shape, integers past 32 and 64 bits, the first and last days Python knows), under every
role, and hand-written hostile requests (lone surrogates, oversize documents, variables,
bodies and headers, deep and alias-heavy shapes, fragment fan-outs).

Every response is held to the same rules (``violations``): no 5xx, no INTERNAL_SERVER_ERROR,
no traceback, SQL, file path or PostgreSQL error text anywhere in it, and every error has a
string ``extensions.code`` and a ``message``. The database stays whole: its tables are all
there, and invalid operations change no row.

The whole module takes about a minute on two cores; ``pytest tests/test_fuzz.py
--hypothesis-profile long`` runs ten times as many examples. Each defect the fuzzer found is a
named test near the end, with the smallest request that shows it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

import graphql
import httpx
import hypothesis_graphql
import orjson
import pytest
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import nodes
from schemathesis import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi
from schemathesis.specs.graphql.schemas import GraphQLSchema as FuzzedSchema
from websockets.asyncio.client import connect as connect_socket
from websockets.typing import Subprotocol

from care_graph.api.schema import build_schema
from care_graph.app import create_app
from care_graph.auth import Role
from care_graph.config import Limits, Settings
from care_graph.db.pool import connect
from care_graph.testing import DatabaseFactory, asgi_client, bearer, live_server

# The fuzzer sends hundreds of requests a minute under one subject: rate limits are set out of
# its way, so that every request reaches the code under test (one test asserts that they did).
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
# Who calls: every role, each as a caller who owns some of the data


def callers(referrer: str) -> list[tuple[Role, str, int | None]]:
    """(role, subject, patient) of one caller in each role."""
    return [
        (Role.PATIENT, "patient-1", 1),
        (Role.REFERRER, referrer, None),
        (Role.CLINICIAN, "dr-fuzz", None),
        (Role.SCHEDULER, "clerk-fuzz", None),
        (Role.ADMIN, "root-fuzz", None),
    ]


def examples(request: pytest.FixtureRequest, count: int) -> int:
    """``count``, or ten times as many under ``--hypothesis-profile long``."""
    long = request.config.getoption("hypothesis_profile", None) == "long"
    return count * 10 if long else count


def fuzz_settings(request: pytest.FixtureRequest, count: int) -> settings:
    """``count`` examples, none timed; in CI the same ones on every run (derandomized), so that
    a red run is the change's and reproduces with CI=true, while a developer's runs (and the
    long profile) draw new ones each time."""
    return settings(
        max_examples=examples(request, count),
        deadline=None,
        derandomize=bool(os.environ.get("CI")),
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
        ],
    )


# ---------------------------------------------------------------------------------------------
# The database the fuzzer works on, and proof that it stays whole


@pytest.fixture(scope="module")
def fuzz_url(databases: DatabaseFactory) -> str:
    """Tiny demo data anchored today (so slots lie ahead and bookings can succeed); the fuzzer
    writes to it, so it is this module's alone."""
    return databases.create(seeded=True, anchor=date.today())


@pytest.fixture(scope="module")
def referrer(fuzz_url: str) -> str:
    """The subject of a referrer who made referrals in the demo data."""

    async def first() -> str:
        connection = await connect(fuzz_url)
        try:
            subject: str = await connection.fetchval(
                "SELECT referrer_subject FROM referrals WHERE referrer_subject IS NOT NULL"
                " ORDER BY id LIMIT 1"
            )
        finally:
            await connection.close()
        return subject

    return asyncio.run(first())


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


# ---------------------------------------------------------------------------------------------
# schemathesis: operations generated from the schema the app serves


@pytest.fixture(scope="module")
def fuzzed_schema(fuzz_url: str) -> Iterator[FuzzedSchema]:
    """The schema as the app itself serves it (introspected through schemathesis' ASGI
    transport, which runs the app's lifespan); cases are sent to that same app."""
    settings_ = replace(
        Settings.from_environment(), database_url=fuzz_url, limits=UNTHROTTLED, sweep_seconds=0
    )
    app = create_app(settings_)
    schema = schemathesis.graphql.from_asgi("/graphql", app, headers=bearer(Role.ADMIN, "root"))
    try:
        yield schema
    finally:
        schemathesis_asgi.shutdown_lifespans()  # closes the app's pool


def run_schemathesis(
    schema: FuzzedSchema,
    mode: GenerationMode,
    referrer: str,
    request: pytest.FixtureRequest,
    count: int,
) -> list[int]:
    """Send ``count`` generated operations of ``mode`` under random roles; their statuses."""
    cases = schema.as_strategy(generation_mode=mode)
    statuses: list[int] = []

    @fuzz_settings(request, count)
    @given(data=st.data(), who=st.sampled_from(callers(referrer)))
    def fuzz(data: st.DataObject, who: tuple[Role, str, int | None]) -> None:
        case = data.draw(cases, label="case")
        # an operation with nothing to violate (``me``) is generated valid even when asked for
        # invalid ones: only what was generated as asked is sent
        assume(case.meta is not None and case.meta.generation.mode == mode)
        try:
            response = case.call(headers=bearer(*who))
        except Exception as error:  # the app raised: under uvicorn, HTTP 500
            raise AssertionError(f"the app raised {error!r:.300} for {case.body!r}") from error
        statuses.append(response.status_code)
        found = violations(response.status_code, response.content)
        if mode is GenerationMode.NEGATIVE and not orjson.loads(response.content).get("errors"):
            found.append("an invalid operation was not refused")
        assert not found, f"{found} for {who[0]}: {case.body!r}\n=> {response.text:.800}"

    fuzz()
    return statuses


def test_schemathesis_valid_operations_under_every_role(
    fuzzed_schema: FuzzedSchema,
    fuzz_url: str,
    referrer: str,
    app: App,
    request: pytest.FixtureRequest,
) -> None:
    before = asyncio.run(table_rows(fuzz_url))
    statuses = run_schemathesis(fuzzed_schema, GenerationMode.POSITIVE, referrer, request, 250)
    assert 429 not in statuses  # every request reached the operation
    app.whole(fuzz_url, before)


def test_schemathesis_invalid_operations_change_nothing(
    fuzzed_schema: FuzzedSchema,
    fuzz_url: str,
    referrer: str,
    app: App,
    request: pytest.FixtureRequest,
) -> None:
    before = asyncio.run(table_rows(fuzz_url))
    run_schemathesis(fuzzed_schema, GenerationMode.NEGATIVE, referrer, request, 120)
    assert asyncio.run(table_rows(fuzz_url)) == before  # refused operations write nothing
    app.whole(fuzz_url, before)


# ---------------------------------------------------------------------------------------------
# hypothesis-graphql: operations of the app's schema with hostile scalar values

NODE_TYPES = (
    "Referral",
    "Patient",
    "Slot",
    "Appointment",
    "Site",
    "Staff",
    "Service",
    "AuditEvent",
    "RosterShift",
)
SQL_LIKE = ("'; DROP TABLE patients; --", "' OR 1=1 --", '" OR ""="', "1; SELECT pg_sleep(10)")
HOSTILE_STRINGS = (
    *SQL_LIKE,
    "\x00",
    "a\x00b",
    "x" * 10_000,
    "%",
    "_%",
    "\\",
    "\\x00",
    "\u202eevil",
    "\ufeff",
    "\u2028",
    "😀" * 50,
    "e\u0301" * 20,
    "",
    " ",
    "CARDIOLOGY",
    "LONDON",
    "9434765919",
    "943 476 5919",
    "NW1 1AA",
)


def global_id(type_name: str, key: object) -> str:
    """A global id of any shape: ``Type:key`` in base64, key as given."""
    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


def cursor(sort_key: object, key: object) -> str:
    return base64.b64encode(orjson.dumps([sort_key, key])).decode()


HUGE_KEYS = (-1, 0, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, "1e3", "0x10", "1 ", "²")
BAD_IDS = (
    "",
    "!!!",
    "=",
    "\x00",
    base64.b64encode(b"x").decode(),
    base64.b64encode(b":1").decode(),
    base64.b64encode(b"Referral:").decode(),
    base64.b64encode(b"\xff\xfe:1").decode(),
    global_id("Referral", 1) + "=",
    global_id("Referral", "1\x00"),
    global_id("Referral", "9" * 5000),
    global_id("Nothing", 1),
    global_id("Query", 1),
    cursor("x", 1),
)
BAD_CURSORS = (
    "!!!",
    base64.b64encode(b"[]").decode(),
    base64.b64encode(b"null").decode(),
    base64.b64encode(b'{"a": 1}').decode(),
    cursor("not a date", 1),
    cursor("2026-13-45", 1),
    cursor("x", -1),
    cursor("x", 2**63),
    cursor("x", 2**64 - 1),
    cursor(1, 1),
    cursor(None, 1),
    cursor("\x00", 1),
    cursor("x" * 5000, 1),
    global_id("Referral", 1),
)
# mostly ids of rows that exist, so that operations get past "not found"
ids = st.one_of(
    st.builds(global_id, st.sampled_from(NODE_TYPES), st.integers(1, 20)),
    st.builds(global_id, st.sampled_from(NODE_TYPES), st.sampled_from(HUGE_KEYS)),
    st.sampled_from(BAD_IDS + SQL_LIKE),
)
strings = st.one_of(
    st.sampled_from(HOSTILE_STRINGS), st.sampled_from(BAD_CURSORS), st.text(max_size=40)
)
ints = st.one_of(
    st.integers(-2, 25),
    st.sampled_from([2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**63, 10**30]),
)
floats = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(nodes.Float),
    st.sampled_from(["0", "-0.0", "51.5", "-0.14", "1e308", "-1e308", "5e-324", "1e400"]).map(
        lambda text: graphql.FloatValueNode(value=text)
    ),
)
today = date.today()
dates = st.one_of(
    st.dates(today - timedelta(days=30), today + timedelta(days=60)).map(str),
    st.dates().map(str),
    st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-30", "x", "", "20261201"]),
)
datetimes = st.one_of(
    st.datetimes().map(lambda moment: moment.isoformat()),
    st.sampled_from(
        ["0001-01-01T00:00:00", "9999-12-31T23:59:59.999999", "2026-12-01T09:00:00Z", "x", ""]
    ),
)
times = st.one_of(
    st.times().map(str), st.sampled_from(["09:00:00", "24:00:00", "23:59:60", "x", ""])
)
HOSTILE_SCALARS: dict[str, st.SearchStrategy[graphql.ValueNode]] = {
    "ID": ids.map(nodes.String),
    "String": strings.map(nodes.String),
    "Int": ints.map(nodes.Int),
    "Float": floats,
    "Date": dates.map(nodes.String),
    "DateTime": datetimes.map(nodes.String),
    "Time": times.map(nodes.String),
}
SCHEMA = build_schema()._schema
QUERIES = hypothesis_graphql.queries(SCHEMA, custom_scalars=HOSTILE_SCALARS)
MUTATIONS = hypothesis_graphql.mutations(SCHEMA, custom_scalars=HOSTILE_SCALARS)
# introspection in a document sends it down the resolver path instead of the compiled one
RESOLVER_PATH = "__schema { queryType { name } } "


def on_the_resolver_path(query: str) -> str:
    opening = query.index("{") + 1
    return query[:opening] + RESOLVER_PATH + query[opening:]


def test_hostile_queries_under_every_role(
    app: App, fuzz_url: str, referrer: str, request: pytest.FixtureRequest
) -> None:
    before = asyncio.run(table_rows(fuzz_url))

    @fuzz_settings(request, 250)
    @given(query=QUERIES, who=st.sampled_from(callers(referrer)), resolver=st.booleans())
    def fuzz(query: str, who: tuple[Role, str, int | None], resolver: bool) -> None:
        document = on_the_resolver_path(query) if resolver else query
        app.post({"query": document}, bearer(*who))

    fuzz()
    app.whole(fuzz_url, before)


def test_hostile_mutations_under_every_role(
    app: App, fuzz_url: str, referrer: str, request: pytest.FixtureRequest
) -> None:
    before = asyncio.run(table_rows(fuzz_url))

    @fuzz_settings(request, 250)
    @given(mutation=MUTATIONS, who=st.sampled_from(callers(referrer)))
    def fuzz(mutation: str, who: tuple[Role, str, int | None]) -> None:
        app.post({"query": mutation}, bearer(*who))

    fuzz()
    app.whole(fuzz_url, before)


# ---------------------------------------------------------------------------------------------
# Hand-written hostile values, in every argument of their type that the schema has


def plain_value(kind: graphql.GraphQLInputType) -> Any:
    """A value of ``kind`` that passes coercion (not necessarily the rules behind it)."""
    if isinstance(kind, graphql.GraphQLNonNull):
        return plain_value(kind.of_type)
    if isinstance(kind, graphql.GraphQLList):
        return [plain_value(kind.of_type)]
    if isinstance(kind, graphql.GraphQLEnumType):
        return next(iter(kind.values))
    if isinstance(kind, graphql.GraphQLInputObjectType):
        return {
            name: plain_value(field.type)
            for name, field in kind.fields.items()
            if graphql.is_required_input_field(field)
        }
    assert isinstance(kind, graphql.GraphQLScalarType)
    return {
        "ID": global_id("Referral", 1),
        "String": "x",
        "Int": 1,
        "Float": 1.5,
        "Boolean": True,
        "Date": today.isoformat(),
        "DateTime": f"{today.isoformat()}T09:00:00+00:00",
        "Time": "09:00:00",
    }[kind.name]


def scalar_paths(
    kind: graphql.GraphQLInputType, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every place in a value of ``kind`` where a scalar sits: its path and the scalar's name."""
    named = graphql.get_nullable_type(kind)
    if isinstance(named, graphql.GraphQLList):
        yield from scalar_paths(named.of_type, (*path, 0))
    elif isinstance(named, graphql.GraphQLInputObjectType):
        for name, field in named.fields.items():
            yield from scalar_paths(field.type, (*path, name))
    elif isinstance(named, graphql.GraphQLScalarType):
        yield path, named.name


def placed(value: Any, path: tuple[str | int, ...], leaf: Any) -> Any:
    """``value`` with ``leaf`` at ``path`` (missing objects and lists made on the way)."""
    if not path:
        return leaf
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(value) if isinstance(value, list) and value else [None]
        items[0] = placed(items[0], rest, leaf)
        return items
    fields = dict(value) if isinstance(value, dict) else {}
    fields[head] = placed(fields.get(head), rest, leaf)
    return fields


def selection(kind: graphql.GraphQLOutputType) -> str:
    return (
        " { __typename }"
        if isinstance(graphql.get_named_type(kind), graphql.GraphQLCompositeType)
        else ""
    )


Place = tuple[str, tuple[str | int, ...]]  # an argument, and the path to a scalar in it


def root_fields(
    scalar: str,
) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], list[Place]]]:
    """Every root field with an argument of scalar type ``scalar`` somewhere in it (in an
    input object or a list too): a document passing every argument as a variable, values for
    the required ones, values for every one, and the places where such a scalar sits."""
    for root in (SCHEMA.query_type, SCHEMA.mutation_type):
        assert root is not None
        operation = "query" if root is SCHEMA.query_type else "mutation"
        for field_name, field in root.fields.items():
            places = [
                (name, path)
                for name, argument in field.args.items()
                for path, found in scalar_paths(argument.type)
                if found == scalar
            ]
            if not places:
                continue
            declared = ", ".join(
                f"${name}: {argument.type}" for name, argument in field.args.items()
            )
            passed = ", ".join(f"{name}: ${name}" for name in field.args)
            document = (
                f"{operation}({declared}) {{ {field_name}({passed}){selection(field.type)} }}"
            )
            required = {
                name: plain_value(argument.type)
                for name, argument in field.args.items()
                if graphql.is_required_argument(argument)
            }
            every = {name: plain_value(argument.type) for name, argument in field.args.items()}
            yield document, required, every, places


def with_leaf(
    required: dict[str, Any], every: dict[str, Any], places: list[Place], leaf: Any
) -> dict[str, Any]:
    """The required variables, and ``leaf`` at each of ``places``."""
    changed = dict(required)
    for name, path in places:
        changed[name] = placed(changed.get(name, every[name]), path, leaf)
    return changed


# A placeholder orjson can write, replaced by JSON that orjson cannot write: lone surrogates
# (as the JSON escape "\ud800") and integers past 64 bits
RAW = "\ue000raw\ue000"


def with_raw(body: dict[str, Any], raw: bytes) -> bytes:
    return orjson.dumps(body).replace(orjson.dumps(RAW), raw)


def sweep(
    app: App,
    scalar: str,
    leaves: tuple[Any, ...],
    raw_leaves: tuple[bytes, ...],
    headers: dict[str, str],
) -> int:
    """Send each hostile leaf in each argument of type ``scalar``, one place at a time and in
    all of a field's places at once; how many requests were sent."""
    sent = 0
    for document, required, every, places in root_fields(scalar):
        for chosen in [[place] for place in places] + ([places] if len(places) > 1 else []):
            for leaf in leaves:
                variables = with_leaf(required, every, chosen, leaf)
                app.post({"query": document, "variables": variables}, headers)
                sent += 1
            for raw in raw_leaves:
                variables = with_leaf(required, every, chosen, RAW)
                app.post(with_raw({"query": document, "variables": variables}, raw), headers)
                sent += 1
    return sent


STAFF_ROLES = [Role.ADMIN, Role.PATIENT]  # the one who gets furthest, and the one who least should


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_sql_nul_and_surrogates_in_every_string_argument(
    app: App, fuzz_url: str, role: Role
) -> None:
    before = asyncio.run(table_rows(fuzz_url))
    sent = sweep(
        app,
        "String",
        (*SQL_LIKE, "\x00", "a\x00b", "x" * 100_000, "\u202e\ufeff\u2028"),
        (b'"\\ud800"', b'"a\\udfffb"', b'"\\u0000"'),
        bearer(role, "root-fuzz", 1),
    )
    assert sent > 100
    app.whole(fuzz_url, before)


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_bad_global_ids_in_every_id_argument(app: App, fuzz_url: str, role: Role) -> None:
    before = asyncio.run(table_rows(fuzz_url))
    wrong_types = tuple(global_id(name, 1) for name in ("Patient", "Slot", "AuditEvent"))
    huge = tuple(global_id("Referral", key) for key in HUGE_KEYS)
    sent = sweep(
        app,
        "ID",
        (*BAD_IDS, *wrong_types, *huge, *SQL_LIKE, 1, -1, 2**31, 2**63 - 1),
        (b"123456789012345678901234567890", b'"\\ud800"', b"1e400"),
        bearer(role, "root-fuzz", 1),
    )
    assert sent > 100
    app.whole(fuzz_url, before)


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_huge_and_negative_numbers_in_every_number_argument(
    app: App, fuzz_url: str, role: Role
) -> None:
    before = asyncio.run(table_rows(fuzz_url))
    headers = bearer(role, "root-fuzz", 1)
    sent = sweep(
        app,
        "Int",
        (2**31 - 1, -(2**31), 2**31, -(2**31) - 1, 2**63 - 1, -1, 0, 1.5, "1"),
        (b"18446744073709551616", b"1" + b"0" * 400, b"1e400", b"-0"),
        headers,
    )
    sent += sweep(
        app,
        "Float",
        (1e308, -1e308, 5e-324, -0.0, 0.0, 2**63, 91.0, -181.0),
        (b"1e400", b"1" + b"0" * 400, b"18446744073709551616"),
        headers,
    )
    assert sent > 50
    app.whole(fuzz_url, before)


@pytest.mark.parametrize("role", STAFF_ROLES)
def test_odd_dates_and_times_in_every_date_argument(app: App, fuzz_url: str, role: Role) -> None:
    before = asyncio.run(table_rows(fuzz_url))
    headers = bearer(role, "root-fuzz", 1)
    odd_dates = ("0001-01-01", "9999-12-31", "0001-01-02", "9999-12-30", "2026-02-30", "x", "")
    sent = sweep(app, "Date", odd_dates, (), headers)
    sent += sweep(
        app,
        "DateTime",
        ("0001-01-01T00:00:00", "9999-12-31T23:59:59.999999", "9999-12-31T23:59:59+14:00", "x"),
        (),
        headers,
    )
    sent += sweep(app, "Time", ("24:00:00", "23:59:59.999999", "00:00:00", "x"), (), headers)
    assert sent > 20
    app.whole(fuzz_url, before)


def connection_fields() -> Iterator[tuple[str, str]]:
    """Every connection field: (the document that reaches it with $cursor as after/before and
    $size as first/last, the label)."""
    reach = {
        "Query": "",
        "Referral": f'node(id: "{global_id("Referral", 1)}") {{ ... on Referral {{ ',
        "Patient": f'node(id: "{global_id("Patient", 1)}") {{ ... on Patient {{ ',
        "Site": f'node(id: "{global_id("Site", 1)}") {{ ... on Site {{ ',
        "Staff": f'node(id: "{global_id("Staff", 1)}") {{ ... on Staff {{ ',
    }
    for type_name, opening in reach.items():
        owner = SCHEMA.get_type(type_name)
        assert isinstance(owner, graphql.GraphQLObjectType)
        for name, field in owner.fields.items():
            if "after" not in field.args:
                continue
            closing = " } }" if opening else ""
            for forward in (True, False):
                if not forward and "before" not in field.args:
                    continue
                arguments = (
                    "first: $size, after: $cursor" if forward else "last: $size, before: $cursor"
                )
                yield (
                    f"query($cursor: String, $size: Int) {{ {opening}{name}({arguments})"
                    f" {{ nodes {{ __typename }} pageInfo {{ endCursor }} }}{closing} }}",
                    f"{type_name}.{name}",
                )


@pytest.mark.parametrize("resolver", [False, True], ids=["compiled", "resolver"])
def test_bad_cursors_on_every_connection(app: App, resolver: bool) -> None:
    sent = 0
    for document, _label in connection_fields():
        query = on_the_resolver_path(document) if resolver else document
        for bad in (*BAD_CURSORS, *SQL_LIKE, "\x00"):
            for size in (2, -1):
                app.post(
                    {"query": query, "variables": {"cursor": bad, "size": size}},
                    bearer(Role.ADMIN, "root-fuzz"),
                )
                sent += 1
    assert sent > 500


def many(text: str, count: int, joiner: str = " ") -> str:
    return joiner.join(text.format(i=i) for i in range(count))


REFERRAL_1 = global_id("Referral", 1)
SHAPES = {
    "deep": "{ me" + " { referrals { nodes { patient" * 8 + " { id }" + " } } }" * 8 + " }",
    "deep inline fragments": "{ __typename "
    + "... on Query { " * 300
    + "__typename"
    + " }" * 300
    + " }",
    "nested too deep to parse": "{" + " a {" * 2000 + " b" + " }" * 2000 + " }",
    "many aliases": "{ " + many("a{i}: __typename", 2000) + " }",
    "aliased pages": "{ " + many("a{i}: slots(first: 100) {{ nodes {{ id }} }}", 60) + " }",
    "fragment fan-out": "{ ...F0 } "
    + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40))
    + " fragment F40 on Query { referrals(first: 100) { nodes { id } } }",
    "fragment cycle": "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
    "a spread of a fragment never defined": "{ ...Missing }",
    "many operations": many("query Q{i} {{ __typename }}", 500),
    "many variables": "query(" + many("$v{i}: Int", 800) + ") { __typename }",
    "many directives": "{ __typename" + " @include(if: true)" * 800 + " }",
    "a long name": "{ " + "a" * 60_000 + " }",
    "a comment past the document limit": "{ __typename } #" + "x" * 70_000,
    "a list of 10,000 ids": "{ nodes(ids: [" + many(f'"{REFERRAL_1}"', 10_000, ",") + "]) { id } }",
    "nodes of every type with deep selections": "{ nodes(ids: ["
    + ",".join(f'"{global_id(name, key)}"' for name in NODE_TYPES for key in (1, 2, 3))
    + "]) { id ... on Referral { patient { referrals(first: 50) { nodes { candidateSlots"
    " { nodes { site { slots(first: 50) { nodes { id } } } } } } } } } } }",
    "an unterminated string": '{ node(id: "abc) { id } }',
    "a lone surrogate escape": '{ node(id: "\\ud800") { id } }',
    "an escaped NUL": '{ node(id: "\\u0000") { id } }',
    "a raw NUL": "{ __typename }\x00",
    "a subscription over HTTP": "subscription { slotAvailability { slotId } }",
    "an empty document": "",
    "only a comment": "# nothing",
    "an introspection bomb": "{ __schema { types { fields { type { fields { type { fields"
    " { type { name } } } } } } } } }",
}


@pytest.mark.parametrize("resolver", [False, True], ids=["compiled", "resolver"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_hostile_shapes(app: App, shape: str, resolver: bool) -> None:
    query = SHAPES[shape]
    if resolver and query.startswith("{"):
        query = on_the_resolver_path(query)
    for role in (Role.PATIENT, Role.ADMIN):
        app.post({"query": query}, bearer(role, "root-fuzz", 1))


DEEP_JSON = b"[" * 300 + b"]" * 300
BODIES: dict[str, bytes] = {
    "not JSON": b"{ __typename }",
    "empty": b"",
    "null": b"null",
    "a list of requests": b'[{"query": "{ __typename }"}]',
    "a string": b'"{ __typename }"',
    "query not a string": b'{"query": 1}',
    "variables not an object": b'{"query": "{ __typename }", "variables": []}',
    "operationName not a string": b'{"query": "{ __typename }", "operationName": 1}',
    "extensions not an object": b'{"query": "{ __typename }", "extensions": 1}',
    "a lone surrogate in the query": b'{"query": "{ __typename } #\\ud800"}',
    "a lone surrogate in operationName": b'{"query": "{ __typename }", "operationName": "\\udc00"}',
    "NUL in operationName": b'{"query": "query A { __typename }", "operationName": "A\\u0000"}',
    "trailing junk": b'{"query": "{ __typename }"} junk',
    "a byte-order mark": b'\xef\xbb\xbf{"query": "{ __typename }"}',
    "invalid UTF-8": b'{"query": "{ __typename } #\xff\xfe"}',
    "a number past 64 bits": b'{"query": "{ __typename }", "variables": {"a": 1234567890123456'
    b"78901234567890}}",
    "a float past double": b'{"query": "{ __typename }", "variables": {"a": 1e400}}',
    "JSON nested past the parser's limit": b'{"query": "{ __typename }", "extensions": {"a": '
    + b"[" * 2000
    + b"]" * 2000
    + b"}}",
    "deep extensions": b'{"query": "{ __typename }", "extensions": {"a": ' + DEEP_JSON + b"}}",
    "duplicate keys": b'{"query": "{ __typename }", "query": "{ me { id } }"}',
    "a body past the limit": b'{"query": "{ __typename }", "variables": {"a": "'
    + b"x" * 1_100_000
    + b'"}}',
    "variables past the limit": b'{"query": "{ __typename }", "variables": {"a": "'
    + b"x" * 300_000
    + b'"}}',
}


@pytest.mark.parametrize("body", list(BODIES))
def test_hostile_bodies(app: App, body: str) -> None:
    for role in (Role.PATIENT, Role.ADMIN):
        app.post(BODIES[body], bearer(role, "root-fuzz", 1))


HEADERS: dict[str, dict[str, str | bytes]] = {
    "no token": {},
    "a junk token": {"Authorization": "Bearer " + "a" * 8_000},
    "a token of three junk parts": {"Authorization": "Bearer e30.e30.e30"},
    "latin-1 bytes in the token": {"Authorization": b"Bearer \xc3\xa9\xff"},
    "a scheme alone": {"Authorization": "Bearer"},
    "headers past the limit": {"X-Padding": "x" * 20_000},
    "many small headers": {f"X-{i}": "y" for i in range(1_500)},
    "a content type in UTF-16": {"Content-Type": "application/json; charset=utf-16"},
    "no content type": {"Content-Type": ""},
    "a form": {"Content-Type": "application/x-www-form-urlencoded"},
    "a declared length past the limit": {"Content-Length": "99999999999999999999"},
    "an accept of nothing we answer in": {"Accept": "text/csv"},
    "an accept with odd qualities": {"Accept": "application/json;q=nan, */*;q=1e999, ;;;"},
    "an accept in latin-1 bytes": {"Accept": b"application/json\xff"},
}


@pytest.mark.parametrize("name", list(HEADERS))
def test_hostile_headers(app: App, name: str) -> None:
    headers = {**bearer(Role.PATIENT, "p", 1), **HEADERS[name]}
    if name == "no token":
        headers = {}
    for method in ("POST", "GET"):
        arguments: dict[str, Any] = (
            {"content": b'{"query": "{ me { id } }"}'} if method == "POST" else {}
        )
        app.request(
            (name, method),
            method=method,
            url="/graphql",
            params={"query": "{ me { id } }"} if method == "GET" else None,
            headers={"Content-Type": "application/json", **headers}
            if method == "POST"
            else headers,
            **arguments,
        )


GETS: dict[str, dict[str, str]] = {
    "no query": {},
    "an empty query": {"query": ""},
    "variables not JSON": {"query": "{ __typename }", "variables": "{"},
    "variables a list": {"query": "{ __typename }", "variables": "[]"},
    "a lone surrogate in variables": {
        "query": "query($s: String) { patients(filter: {familyName: $s}) { nodes { id } } }",
        "variables": '{"s": "\\ud800"}',
    },
    "SQL in variables": {
        "query": "query($s: String) { patients(filter: {familyName: $s}) { nodes { id } } }",
        "variables": orjson.dumps({"s": SQL_LIKE[0]}).decode(),
    },
    "a mutation": {
        "query": 'mutation { cancelReferral(input: {referralId: "x", reason: "y"}) '
        "{ referral { id } } }"
    },
    "a long URL": {"query": "{ __typename } #" + "x" * 40_000},
}


@pytest.mark.parametrize("name", list(GETS))
def test_hostile_gets(app: App, name: str) -> None:
    app.request(
        name,
        method="GET",
        url="/graphql",
        params=GETS[name],
        headers=bearer(Role.ADMIN, "root-fuzz"),
    )


# ---------------------------------------------------------------------------------------------
# What the fuzzer found: each defect's smallest request


def test_sql_looking_text_is_stored_and_read_back_as_sent(app: App) -> None:
    """Values go to PostgreSQL as bind parameters: SQL in a name is a name."""
    created = app.post(
        {
            "query": "mutation($name: String!) { createReferral(input: {patientId: "
            f'"{global_id("Patient", 1)}", toService: "CARDIOLOGY", priority: ROUTINE,'
            " referrerName: $name, referrerKind: GP}) { referral { id referrerName } } }",
            "variables": {"name": SQL_LIKE[0]},
        },
        bearer(Role.ADMIN, "root-fuzz"),
    ).json()
    referral = created["data"]["createReferral"]["referral"]
    assert referral["referrerName"] == SQL_LIKE[0]
    again = app.post(
        {"query": f'{{ node(id: "{referral["id"]}") {{ ... on Referral {{ referrerName }} }} }}'},
        bearer(Role.ADMIN, "root-fuzz"),
    ).json()
    assert again == {"data": {"node": {"referrerName": SQL_LIKE[0]}}}


def test_variables_nested_300_deep_are_refused_not_a_500(app: App) -> None:
    body = b'{"query": "{ __typename }", "variables": {"a": ' + DEEP_JSON + b"}}"
    response = app.post(body, bearer(Role.PATIENT, "p", 1))  # checked: coded, no 5xx
    assert response.json()["errors"]  # refused (the variable is not used; it is still bounded)


def test_an_id_literal_of_5000_digits_is_answered_not_a_500(app: App) -> None:
    response = app.post(
        {"query": "{ node(id: " + "9" * 5000 + ") { id } }"}, bearer(Role.ADMIN, "a")
    )
    assert response.status_code == 200
    assert response.json()["data"] == {"node": None}  # an id that names no row


@pytest.mark.parametrize(
    "payload",
    [
        b'{"query": "{ __typename }", "variables": {"a": ' + DEEP_JSON + b"}}",
        b'{"query": "{ node(id: ' + b"9" * 5000 + b') { id } }"}',
    ],
    ids=["variables-300-deep", "id-of-5000-digits"],
)
async def test_the_same_requests_over_a_websocket_are_answered(
    fuzz_url: str, payload: bytes
) -> None:
    async with (
        live_server(fuzz_url, limits=UNTHROTTLED, sweep_seconds=0) as address,
        connect_socket(
            f"ws://{address}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
        ) as socket_,
    ):
        hello = {"type": "connection_init", "payload": bearer(Role.ADMIN, "root-fuzz")}
        await socket_.send(orjson.dumps(hello).decode())
        assert orjson.loads(await socket_.recv()) == {"type": "connection_ack"}
        await socket_.send(b'{"id": "1", "type": "subscribe", "payload": ' + payload + b"}")
        answer = orjson.loads(await asyncio.wait_for(socket_.recv(), timeout=15))
    if answer["type"] == "next":  # the long id names no row
        assert answer["payload"] == {"data": {"node": None}}, answer
    else:  # the deep variables are refused
        assert answer["type"] == "error", answer
        assert not violations(200, orjson.dumps({"errors": answer["payload"]}))


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


def test_a_field_error_that_nulls_the_answer_leaves_its_siblings_reads_whole(app: App) -> None:
    """On the resolver path, a non-null root field's error (a bad cursor) nulls the whole
    answer, and graphql-core cancels the sibling fields still running: a read cancelled
    mid-statement left the connection busy, so the request's commit failed with "another
    operation is in progress" and the caller got 503 instead of the field's own error."""
    ids_ = orjson.dumps([global_id("Referral", 14), global_id("Patient", 1)]).decode()
    query = (
        "{ "
        + RESOLVER_PATH
        + 'auditEvents(after: "", before: "ì") { totalCount } me { familyName }'
        f" nodes(ids: {ids_}) {{ id }} }}"
    )
    for _ in range(20):
        body = app.post({"query": query}, bearer(Role.PATIENT, "patient-1", 1)).json()
        assert body["data"] is None, body
        assert [error["extensions"]["code"] for error in body["errors"]] == ["BAD_USER_INPUT"]


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
