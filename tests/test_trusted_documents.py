"""Trusted documents and persisted queries, through real requests: production runs only the
documents `care-graph documents add` trusted, by text or by hash; development runs any, and
remembers one sent with its hash."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from care_graph.api.documents import sha256_of
from care_graph.auth import Role
from care_graph.config import DocumentPolicy, Settings
from care_graph.testing import DatabaseFactory, asgi_client, bearer, live_server
from tests.test_auth import WORLD
from tests.test_cli import care_graph
from tests.test_websocket import receive, send

MY_REFERRALS = "query Mine { me { referrals(first: 5) { nodes { id } } } }\n"
JSON = {"Accept": "application/json"}


@pytest.fixture(scope="module")
def world_url(databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database that trusts one document, added with the command line."""
    url = databases.create(sql=WORLD)
    document = tmp_path_factory.mktemp("documents") / "Mine.graphql"
    document.write_text(MY_REFERRALS)
    added = care_graph("documents", "add", str(document), database_url=url)
    assert added.returncode == 0, added.stderr
    assert added.stdout.split()[0] == sha256_of(MY_REFERRALS)
    return url


async def post(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post("/graphql", json=body, headers=JSON)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def code_of(body: dict[str, Any]) -> str:
    code: str = body["errors"][0]["extensions"]["code"]
    return code


async def test_production_runs_trusted_documents_only(world_url: str) -> None:
    patient = bearer(Role.PATIENT, "patient-1", 1)
    async with asgi_client(world_url, headers=patient, documents=DocumentPolicy.TRUSTED) as client:
        by_text = await post(client, {"query": MY_REFERRALS})
        assert "errors" not in by_text
        by_hash = await post(client, {"extensions": persisted(sha256_of(MY_REFERRALS))})
        assert by_hash == by_text
        other = await post(client, {"query": "{ me { id } }"})
        assert code_of(other) == "DOCUMENT_NOT_TRUSTED"
        assert other.keys() == {"errors"}
        # a trusted text with a little more whitespace is another document
        assert code_of(await post(client, {"query": MY_REFERRALS + " "})) == "DOCUMENT_NOT_TRUSTED"
        unknown = await post(client, {"extensions": persisted("0" * 64)})
        assert code_of(unknown) == "PERSISTED_QUERY_NOT_FOUND"
        mismatched = await post(
            client, {"query": "{ me { id } }", "extensions": persisted(sha256_of(MY_REFERRALS))}
        )
        assert code_of(mismatched) == "BAD_REQUEST"
        strict = await client.post(
            "/graphql",
            json={"query": "{ __typename }"},
            headers={"Accept": "application/graphql-response+json"},
        )
        assert strict.status_code == 400


async def test_development_remembers_a_document_sent_with_its_hash(world_url: str) -> None:
    document = "{ me { id } }"
    digest = sha256_of(document)
    async with asgi_client(world_url, headers=bearer(Role.PATIENT, "patient-1", 1)) as client:
        first = await post(client, {"extensions": persisted(digest)})
        assert code_of(first) == "PERSISTED_QUERY_NOT_FOUND"
        sent = await post(client, {"query": document, "extensions": persisted(digest)})
        assert "errors" not in sent
        assert await post(client, {"extensions": persisted(digest)}) == sent
        assert "errors" not in await post(client, {"query": "{ __typename }"})
        for bad in ({"version": 2, "sha256Hash": digest}, {"version": 1, "sha256Hash": "XYZ"}, 7):
            body = await post(client, {"query": document, "extensions": {"persistedQuery": bad}})
            assert code_of(body) == "BAD_REQUEST"


async def test_the_socket_runs_trusted_documents_only_too(world_url: str) -> None:
    async with live_server(world_url, documents=DocumentPolicy.TRUSTED) as address:
        socket_ = await connect(f"ws://{address}/graphql", subprotocols=["graphql-transport-ws"])  # type: ignore[list-item]
        try:
            await send(
                socket_,
                {"type": "connection_init", "payload": bearer(Role.PATIENT, "patient-1", 1)},
            )
            assert await receive(socket_) == {"type": "connection_ack"}
            await send(
                socket_, {"id": "a", "type": "subscribe", "payload": {"query": "{ me { id } }"}}
            )
            refused = await receive(socket_)
            assert refused["type"] == "error"
            assert refused["payload"][0]["extensions"]["code"] == "DOCUMENT_NOT_TRUSTED"
            await send(
                socket_,
                {
                    "id": "b",
                    "type": "subscribe",
                    "payload": {"extensions": persisted(sha256_of(MY_REFERRALS))},
                },
            )
            assert (await receive(socket_))["type"] == "next"
        finally:
            await socket_.close()


def test_the_command_line_refuses_what_the_schema_does_not_run(
    world_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "Broken.graphql"
    broken.write_text("{ noSuchField }")
    refused = care_graph("documents", "add", str(broken), database_url=world_url)
    assert refused.returncode == 1
    assert "(INVALID_ARGUMENT)" in refused.stderr
    listed = care_graph("documents", "list", database_url=world_url)
    assert listed.returncode == 0, listed.stderr
    assert sha256_of(MY_REFERRALS) in listed.stdout
    assert "Broken.graphql" not in listed.stdout


def test_production_defaults_to_trusted_documents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARE_GRAPH_ENV", "production")
    assert Settings.from_environment().documents is DocumentPolicy.TRUSTED
    monkeypatch.setenv("CARE_GRAPH_DOCUMENTS", "any")
    assert Settings.from_environment().documents is DocumentPolicy.ANY
    monkeypatch.setenv("CARE_GRAPH_DOCUMENTS", "some")
    with pytest.raises(ValueError, match="CARE_GRAPH_DOCUMENTS must be any or trusted"):
        Settings.from_environment()
