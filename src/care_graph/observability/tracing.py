"""OpenTelemetry traces, exported over OTLP/HTTP when an endpoint is configured
(``Settings.otlp_traces_endpoint``, from the standard ``OTEL_EXPORTER_OTLP_*`` variables).

Three kinds of span and no others: one per HTTP request (the ASGI instrumentation), one per
GraphQL operation (named ``mutation BookOne``: its type and name, and its outcome code), and one
per SQL statement (the asyncpg instrumentation: the statement's text, never its parameters).
Never one per field. A request's query string is hidden from the HTTP span, for a GET carries
its document and variables there. Off, nothing is recorded and nothing is paid but a no-op call.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from starlette.types import ASGIApp, Receive, Scope, Send

SERVICE_NAME = "care-graph"
_HIDDEN_QUERY = "care_graph.query_string"  # where the query string waits past the HTTP span
_NOT_TRACED = "healthz,readyz,metrics"  # probes and scrapes would drown the requests
_tracer: trace.Tracer = trace.NoOpTracer()


def provider_for(endpoint: str) -> TracerProvider:
    """Where this process's spans go: batched to the OTLP/HTTP ``endpoint``."""
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def start(provider: TracerProvider) -> None:
    """Begin tracing: statements on every asyncpg connection, operations through
    ``operation``. ``stop`` flushes what is left."""
    global _tracer
    AsyncPGInstrumentor(capture_parameters=False).instrument(tracer_provider=provider)  # type: ignore[no-untyped-call]
    _tracer = provider.get_tracer("care_graph")


def stop(provider: TracerProvider) -> None:
    """Stop tracing: export every span still buffered, and leave asyncpg as it was."""
    global _tracer
    AsyncPGInstrumentor().uninstrument()  # type: ignore[no-untyped-call]
    _tracer = trace.NoOpTracer()
    provider.shutdown()


@contextmanager
def operation(kind: str, name: str | None) -> Iterator[trace.Span]:
    """The span of one GraphQL operation; the caller sets its outcome with ``outcome``."""
    label = f"{kind} {name}" if name else kind
    attributes = {"graphql.operation.type": kind}
    if name:
        attributes["graphql.operation.name"] = name
    with _tracer.start_as_current_span(label, attributes=attributes) as span:
        yield span


def outcome(span: trace.Span, code: str) -> None:
    """Record an operation's outcome code (``OK`` or a stable error code) on its span."""
    span.set_attribute("care_graph.code", code)


class TracedRequests:
    """ASGI middleware: a server span per HTTP request, made by the ASGI instrumentation from
    a view of the request without its query string; the app below sees the request whole.
    WebSocket connections are not traced as requests (their operations are)."""

    def __init__(self, app: ASGIApp, provider: TracerProvider) -> None:
        self.app = app
        self.traced = OpenTelemetryMiddleware(
            self._restore,
            tracer_provider=provider,
            excluded_urls=_NOT_TRACED,
            exclude_spans=["receive", "send"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        await self.traced({**scope, "query_string": b"", _HIDDEN_QUERY: query}, receive, send)

    async def _restore(self, scope: Scope, receive: Receive, send: Send) -> None:
        whole = {key: value for key, value in scope.items() if key != _HIDDEN_QUERY}
        await self.app({**whole, "query_string": scope[_HIDDEN_QUERY]}, receive, send)
