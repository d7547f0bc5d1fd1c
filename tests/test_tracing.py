"""Traces seen from outside: a real server exports over OTLP/HTTP to a receiver of the test's
own, which decodes what it is sent. A booking's trace holds the HTTP span, the operation's span
and its statements as children, and no span holds a variable, a parameter or a query string."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role
from care_graph.testing import DatabaseFactory, bearer, live_server
from tests.bookings_under_fault import BOOK, pairs


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP traces receiver: every span it is sent, decoded."""

    spans: list[Any]


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.server.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads what was received, not a log of it."""


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver(("127.0.0.1", 0), _Handler)
    server.spans = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def url(databases: DatabaseFactory) -> str:
    return databases.create(seeded=True)


def attributes(span: Any) -> dict[str, Any]:
    """A span's attributes as plain values."""
    return {
        item.key: getattr(item.value, item.value.WhichOneof("value")) for item in span.attributes
    }


async def test_a_booking_is_traced_with_its_statements_and_nothing_of_its_data(
    url: str, receiver: Receiver
) -> None:
    [(referral, slot)] = await pairs(url, 1)
    key = str(uuid.uuid4())
    variables = {
        "i": {
            "referralId": encode_global_id("Referral", referral),
            "slotId": encode_global_id("Slot", slot),
            "idempotencyKey": key,
        }
    }
    endpoint = f"http://127.0.0.1:{receiver.server_address[1]}/v1/traces"
    async with (
        live_server(url, otlp_traces_endpoint=endpoint) as address,
        httpx.AsyncClient(
            base_url=f"http://{address}", headers=bearer(Role.SCHEDULER, "tracer")
        ) as client,
    ):
        booked = await client.post(
            "/graphql",
            json={"query": BOOK.replace("mutation(", "mutation BookOne("), "variables": variables},
        )
        assert "errors" not in booked.json(), booked.text
        read = await client.get(
            "/graphql",
            params={
                "query": "query SlotById($id: ID!) { node(id: $id) { id } }",
                "variables": orjson.dumps({"id": variables["i"]["slotId"]}).decode(),
            },
        )
        assert read.status_code == 200, read.text
        assert (await client.get("/healthz")).status_code == 200
    # the server's shutdown flushed every span to the receiver
    spans = receiver.spans
    [operation] = [span for span in spans if span.name == "mutation BookOne"]
    assert attributes(operation)["care_graph.code"] == "OK"
    assert attributes(operation)["graphql.operation.type"] == "mutation"
    [request] = [span for span in spans if span.span_id == operation.parent_span_id]
    assert request.name.startswith("POST")
    statements = [span for span in spans if span.parent_span_id == operation.span_id]
    assert len(statements) >= 3, [span.name for span in statements]
    texts = [str(attributes(span).get("db.statement", "")) for span in statements]
    assert any("INSERT INTO appointments" in text for text in texts), texts
    [lookup] = [span for span in spans if span.name == "query SlotById"]
    assert attributes(lookup)["care_graph.code"] == "OK"
    assert not [span for span in spans if "healthz" in span.name]  # probes are not traced
    everything = repr([(span.name, attributes(span)) for span in spans])
    for secret in (key, variables["i"]["referralId"], variables["i"]["slotId"]):
        assert secret not in everything  # no variable, parameter or query string
    assert "db.statement.parameters" not in everything
