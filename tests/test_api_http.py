"""The GraphQL endpoint through real ASGI requests: errors coded and masked, limits enforced,
the schema file equal to what the server serves."""

from __future__ import annotations

import json
import re
import signal
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    build_client_schema,
    build_schema,
    get_introspection_query,
    lexicographic_sort_schema,
    print_schema,
)

from care_graph.api.ids import encode_global_id
from care_graph.api.lists import MAX_PAGE_SIZE
from care_graph.api.schema import schema_sdl
from care_graph.app import create_app
from care_graph.auth import DEVELOPMENT_SECRET, Role, TokenSettings, verify
from care_graph.config import Settings
from care_graph.errors import CareGraphError
from care_graph.testing import asgi_client, bearer

REPO = Path(__file__).resolve().parents[1]


def settings_for(url: str, **changes: Any) -> Settings:
    return replace(Settings.from_environment(), database_url=url, **changes)


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(api_url, headers=bearer()) as client:
        yield client


async def post(
    client: httpx.AsyncClient, query: str, variables: Any = None, operation_name: str | None = None
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables, "operationName": operation_name}
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    return body


def only_error(body: dict[str, Any]) -> dict[str, Any]:
    assert len(body["errors"]) == 1, body
    error: dict[str, Any] = body["errors"][0]
    return error


async def test_a_query_returns_data(client: httpx.AsyncClient) -> None:
    body = await post(
        client,
        "{ services(first: 2, filter: {kind: [SPECIALTY]}) { nodes { code kind } totalCount } }",
    )
    assert body == {
        "data": {
            "services": {
                "nodes": [
                    {"code": "BREAST_SURGERY", "kind": "SPECIALTY"},
                    {"code": "CARDIOLOGY", "kind": "SPECIALTY"},
                ],
                "totalCount": 16,
            }
        }
    }


def page_config(page: str) -> dict[str, Any]:
    found = re.search(r'<script id="config" type="application/json">(.*?)</script>', page)
    assert found is not None, page
    config: dict[str, Any] = json.loads(found.group(1))
    return config


@pytest.mark.parametrize("role", ["patient", "clinician", "scheduler", "admin"])
async def test_graphiql_in_development_signs_in_and_its_first_tab_answers(
    api_url: str, role: str
) -> None:
    """What pressing run on GraphiQL's first tab does, with the headers the page put there."""
    async with asgi_client(api_url) as client:
        # as a browser asks: a page (a GraphQL client's GET is a GraphQL request)
        page = await client.get("/graphql", params={"role": role}, headers={"Accept": "text/html"})
        assert page.status_code == 200
        assert "https://" not in page.text  # every asset is ours: no CDN
        config = page_config(page.text)
        viewer = verify(config["token"], TokenSettings.from_environment(development=True))
        assert viewer.role == role
        for name in ("react.js", "react-dom.js", "graphiql.js", "graphiql.css"):
            assert f'"/graphiql/assets/{name}"' in page.text
            served = await client.get(f"/graphiql/assets/{name}")
            assert served.status_code == 200, name
            assert len(served.content) > 1000
        assert (await client.get("/graphiql/assets/..%2Fpackage.json")).status_code == 404
        first_tab = config["tabs"][0]
        answer = await client.post(
            "/graphql",
            json={"query": first_tab},
            headers={"Authorization": f"Bearer {config['token']}"},
        )
    body = answer.json()
    assert "errors" not in body, body
    if role == "patient":
        assert body["data"]["me"]["referrals"]["nodes"], body  # signed in as someone waiting
    else:
        assert body["data"]["referrals"]["nodes"], body


async def test_no_graphiql_in_production(api_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARE_GRAPH_JWT_SECRET", DEVELOPMENT_SECRET)  # production needs a key
    async with asgi_client(api_url, headers=bearer(), development=False) as client:
        response = await client.get("/graphql", headers={"Accept": "text/html"})
        assert response.status_code == 406  # no page to answer with, and it asked for no JSON
        assert (await client.get("/graphiql/assets/graphiql.js")).status_code == 404


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "the request body is not valid JSON"),
        (b'{"variables": {}}', 'the body must be a JSON object with a "query" string'),
        (b'{"query": "{ __typename }", "variables": [1]}', '"variables" must be a JSON object'),
    ],
)
async def test_malformed_requests_are_400(
    client: httpx.AsyncClient, content: bytes, message: str
) -> None:
    response = await client.post(
        "/graphql", content=content, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": message, "extensions": {"code": "BAD_REQUEST"}}]
    }


async def test_parse_errors_are_coded(client: httpx.AsyncClient) -> None:
    error = only_error(await post(client, "{ referrals(first: 1 { id }"))
    assert error["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}
    assert error["message"].startswith("Syntax Error:")


async def test_validation_errors_are_coded(client: httpx.AsyncClient) -> None:
    error = only_error(await post(client, "{ referrals { nodes { shoeSize } } }"))
    assert error == {
        "message": "Cannot query field 'shoeSize' on type 'Referral'.",
        "locations": [{"line": 1, "column": 23}],
        "extensions": {"code": "GRAPHQL_VALIDATION_FAILED"},
    }


async def test_page_size_is_capped(client: httpx.AsyncClient) -> None:
    body = await post(client, f"{{ slots(first: {MAX_PAGE_SIZE + 1}) {{ nodes {{ id }} }} }}")
    error = only_error(body)
    assert error["extensions"] == {"code": "PAGE_SIZE_EXCEEDED"}
    assert error["message"] == (
        "a page holds at most 100 items; ask for the next page with a cursor"
    )


async def test_nested_page_size_is_capped_through_variables(client: httpx.AsyncClient) -> None:
    body = await post(
        client,
        "query($n: Int) { referrals(first: 1) { nodes {"
        " candidateSlots(first: $n) { nodes { id } } } } }",
        {"n": 500},
    )
    assert only_error(body)["extensions"] == {"code": "PAGE_SIZE_EXCEEDED"}


async def test_first_and_last_together_are_refused(client: httpx.AsyncClient) -> None:
    error = only_error(await post(client, "{ slots(first: 2, last: 2) { nodes { id } } }"))
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert error["message"] == "give first or last, not both"


async def test_invalid_cursor_is_bad_input(client: httpx.AsyncClient) -> None:
    error = only_error(await post(client, '{ slots(first: 2, after: "nope") { nodes { id } } }'))
    assert error == {
        "message": "invalid cursor: give one this API returned",
        "extensions": {"code": "BAD_USER_INPUT"},
    }


async def test_bad_variables_are_bad_input(client: httpx.AsyncClient) -> None:
    body = await post(client, "query($n: Int) { slots(first: $n) { nodes { id } } }", {"n": "ten"})
    error = only_error(body)
    assert error["extensions"] == {"code": "BAD_USER_INPUT"}
    assert "Int cannot represent non-integer value: 'ten'" in error["message"]


async def test_unknown_operation_name(client: httpx.AsyncClient) -> None:
    body = await post(client, "query A { __typename } query B { __typename }", None, "C")
    assert only_error(body) == {
        "message": "no operation named 'C'",
        "extensions": {"code": "OPERATION_NOT_FOUND"},
    }


async def test_subscriptions_are_refused_over_http(client: httpx.AsyncClient) -> None:
    document = "query Q { __typename } subscription S { slotOffered { slotId } }"
    assert only_error(await post(client, document, None, "S")) == {
        "message": "subscriptions are served over WebSocket (graphql-transport-ws) at /graphql,"
        " not over HTTP",
        "extensions": {"code": "OPERATION_NOT_SUPPORTED"},
    }
    assert await post(client, document, None, "Q") == {"data": {"__typename": "Query"}}


async def test_depth_limit(client: httpx.AsyncClient) -> None:
    path = [
        "appointments",
        "nodes",
        "slot",
        "site",
        "slots",
        "nodes",
        "staff",
        "baseSite",
        "slots",
        "nodes",
        "site",
        "slots",
        "nodes",
        "staff",
        "baseSite",
        "slots",
        "nodes",
    ]
    query = "{ " + " { ".join(path) + " { id" + " }" * len(path) + " }"
    error = only_error(await post(client, query))
    assert error["extensions"] == {"code": "QUERY_TOO_COMPLEX"}
    assert error["message"].startswith("operation anonymous nests")
    assert error["message"].endswith("levels deep; the limit is 15")


async def test_fragments_spread_many_times_are_measured_once(api_url: str) -> None:
    """A fan-out of fragments, each spreading the next twice, is 2^39 paths walked one by one:
    the depth of each fragment is measured once instead. (Were it walked again, the alarm
    stops the test rather than let it run for days.)"""
    levels = 40
    fragments = " ".join(
        f"fragment F{n} on Query {{ ...F{n + 1} ...F{n + 1} }}" for n in range(levels)
    )
    query = f"query Fan {{ ...F0 }} {fragments} fragment F{levels} on Query {{ __typename }}"
    signal.signal(signal.SIGALRM, _took_too_long)
    signal.alarm(60)
    try:
        async with asgi_client(api_url, headers=bearer(Role.PATIENT, "p", 1)) as client:
            body = await post(client, query)
    finally:
        signal.alarm(0)
    assert body == {"data": {"__typename": "Query"}}


def _took_too_long(signum: int, frame: object) -> None:
    raise AssertionError("the document was walked path by path")


async def test_alias_limit(client: httpx.AsyncClient) -> None:
    query = "{ " + " ".join(f"a{i}: __typename" for i in range(51)) + " }"
    assert only_error(await post(client, query)) == {
        "message": "the document uses 51 aliases; the limit is 50",
        "extensions": {"code": "QUERY_TOO_COMPLEX"},
    }


async def test_token_limit(client: httpx.AsyncClient) -> None:
    query = "{ " + " ".join(["a"] * 6000) + " }"  # 12 KB: within the size limit
    error = only_error(await post(client, query))
    assert error["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}
    assert "Document contains more than 5000 tokens" in error["message"]


async def test_statement_timeout_is_masked(api_url: str) -> None:
    async with asgi_client(api_url, headers=bearer(), statement_timeout_ms=1) as client:
        body = await post(
            client,
            "{ referrals(first: 100) { nodes { candidateSlots(first: 50) { totalCount } } } }",
        )
        assert body == {
            "errors": [
                {
                    "message": "the query took too long and was cancelled",
                    "extensions": {"code": "QUERY_TIMEOUT"},
                }
            ],
            "data": None,
        }


async def test_introspection_can_be_switched_off(api_url: str) -> None:
    async with asgi_client(api_url, headers=bearer(), introspection=False) as client:
        body = await post(client, "{ __schema { queryType { name } } }")
        assert {error["extensions"]["code"] for error in body["errors"]} == {
            "GRAPHQL_VALIDATION_FAILED"
        }
        assert body["errors"][0]["message"] == (
            "GraphQL introspection has been disabled, but"
            " the requested query contained the field"
            " '__schema'."
        )


async def test_schema_file_is_what_the_server_serves(client: httpx.AsyncClient) -> None:
    body = await post(client, get_introspection_query())
    served = print_schema(lexicographic_sort_schema(build_client_schema(body["data"])))
    on_disk = (REPO / "schema.graphql").read_text()
    assert on_disk == schema_sdl(), "schema.graphql is stale: run `care-graph schema`"
    assert print_schema(lexicographic_sort_schema(build_schema(on_disk))) == served


async def test_typename_needs_no_database(client: httpx.AsyncClient) -> None:
    body = await post(client, "{ a: __typename __typename }")
    assert body == {"data": {"a": "Query", "__typename": "Query"}}


def test_production_refuses_to_start_without_a_key(
    api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARE_GRAPH_JWT_SECRET", raising=False)
    monkeypatch.delenv("CARE_GRAPH_JWT_PUBLIC_KEY_FILE", raising=False)
    with pytest.raises(CareGraphError, match="set CARE_GRAPH_JWT_SECRET"):
        create_app(settings_for(api_url, development=False))


CREATE_REFERRAL = """mutation($i: CreateReferralInput!) { createReferral(input: $i) {
  referral { id } } }"""
PUBLISH_ROSTER = """mutation($i: PublishRosterInput!) { publishRoster(input: $i) { slotCount } }"""
A_REFERRAL = {
    "patientId": encode_global_id("Patient", 1),
    "toService": "CARDIOLOGY",
    "priority": "ROUTINE",
    "referrerName": "Dr A Smith",
    "referrerKind": "GP",
}
A_ROSTER = {
    "staffId": encode_global_id("Staff", 1),
    "siteId": encode_global_id("Site", 1),
    "service": "CARDIOLOGY",
    "weekdays": [1],
    "starts": "09:00:00",
    "ends": "10:00:00",
    "firstDay": "2030-01-07",
    "lastDay": "2030-01-07",
}


@pytest.mark.parametrize(
    ("query", "good", "bad", "message"),
    [
        (
            CREATE_REFERRAL,
            A_REFERRAL,
            None,
            "Variable '$i' has invalid value:"
            " Expected value of non-null type 'CreateReferralInput!' not to be None.",
        ),
        (
            CREATE_REFERRAL,
            A_REFERRAL,
            {**A_REFERRAL, "shoeSize": 9},
            "Variable '$i' has invalid value: Expected value of type 'CreateReferralInput'"
            " not to include unknown field 'shoeSize'",
        ),
        (
            CREATE_REFERRAL,
            A_REFERRAL,
            {**A_REFERRAL, "earliestDate": "2030-02-30"},
            "Variable '$i' has invalid value at .earliestDate:"
            ' Value cannot represent a Date: "2030-02-30".',
        ),
        (
            PUBLISH_ROSTER,
            A_ROSTER,
            {**A_ROSTER, "starts": "25:00:00"},
            "Variable '$i' has invalid value at .starts:"
            ' Value cannot represent a Time: "25:00:00".',
        ),
    ],
    ids=["null", "unknown-field", "bad-date", "bad-time"],
)
async def test_bad_variables_are_bad_input_on_every_run_of_a_mutation(
    api_url: str, query: str, good: dict[str, Any], bad: dict[str, Any] | None, message: str
) -> None:
    # a patient may neither refer nor roster: the good run fails in the domain, writing nothing
    async with asgi_client(api_url, headers=bearer(Role.PATIENT, "p", 1)) as client:
        first = only_error(await post(client, query, {"i": bad}))
        ran = only_error(await post(client, query, {"i": good}))
        again = only_error(await post(client, query, {"i": bad}))
    assert ran["extensions"] == {"code": "FORBIDDEN"}
    assert first["extensions"] == {"code": "BAD_USER_INPUT"}
    assert first["message"].startswith(message)
    assert again == first
