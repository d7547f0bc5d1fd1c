"""The WebSocket face of GraphQL: the graphql-transport-ws protocol at /graphql.

Every operation counts against the caller's rate limit and goes through the same admission as
over HTTP (``GraphQLService.admit``: sizes,
parsing, validation, depth, aliases, cost, introspection policy) and its errors are masked and
coded the same way. Subscriptions stream from PostgreSQL's LISTEN/NOTIFY (db/live.py); queries
and mutations answer once, through the same execution as over HTTP.

The caller's token comes in ``connection_init``'s ``Authorization``. A socket lives no longer
than its token: it is closed with 4403 when the token lapses, and each operation checks it too.
Close codes are the protocol's: 4400 a bad message, 4401 an operation before the handshake,
4403 no or a lapsed token, 4406 not graphql-transport-ws, 4408 no handshake in time, 4409 an
operation id in use, 4429 a second ``connection_init``; 1009 a message over the size limit;
1001 the server is shutting down (reconnect).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from graphql import ExecutionResult, GraphQLError, subscribe
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from care_graph.api.documents import Documents
from care_graph.api.errors import ApiError, ApiErrorCode, client_error
from care_graph.api.rate_limits import RateLimited, RateLimiter
from care_graph.api.request_ids import request_id_of
from care_graph.api.service import Admitted, GraphQLService, Refused
from care_graph.api.subscriptions import LiveContext
from care_graph.auth import TokenSettings, Viewer, viewer_of_header
from care_graph.config import Limits
from care_graph.db.live import LiveEvents
from care_graph.db.pool import ConnectionSource
from care_graph.errors import CareGraphError

PROTOCOL = "graphql-transport-ws"
INIT_TIMEOUT_SECONDS = 10.0
GOING_AWAY = 1001
GOING_AWAY_REASON = "Server shutting down"
MAX_OPERATIONS = 20  # in flight on one socket at once
_SAFE_ID = re.compile(r"[^A-Za-z0-9._:-]")  # what of a client's operation id a log line shows

logger = logging.getLogger("care_graph.api")


class _Close(Exception):
    """End the connection with this WebSocket close code and reason."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(code, reason)
        self.code, self.reason = code, reason


class GraphQLWebSocket:
    """The ASGI endpoint of graphql-transport-ws; one ``_Session`` per connection."""

    def __init__(
        self,
        service: GraphQLService,
        live: LiveEvents,
        tokens: TokenSettings,
        limits: Limits,
        rate_limiter: RateLimiter,
        documents: Documents,
        *,
        init_timeout: float = INIT_TIMEOUT_SECONDS,
    ) -> None:
        self.service = service
        self.live = live
        self.tokens = tokens
        self.limits = limits
        self.rate_limiter = rate_limiter
        self.documents = documents
        self.init_timeout = init_timeout
        self.sessions: set[_Session] = set()
        self.leaving = False
        self.all_left = asyncio.Event()  # set once leaving and no session is left

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        if PROTOCOL not in scope.get("subprotocols", ()):
            await websocket.accept()
            await websocket.close(4406, "Subprotocol not acceptable")
            return
        await websocket.accept(subprotocol=PROTOCOL)
        if self.leaving:
            await websocket.close(GOING_AWAY, GOING_AWAY_REASON)
            return
        session = _Session(self, websocket)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self._forget(session)

    def _forget(self, session: _Session) -> None:
        self.sessions.discard(session)
        if self.leaving and not self.sessions:
            self.all_left.set()

    async def going_away(self) -> None:
        """Close every connection with 1001 (going away), and any new one the same way, so that
        clients reconnect, to another worker or once the server is back; returns when the
        clients have acknowledged or left. The first step of a graceful shutdown."""
        self.leaving = True
        if not self.sessions:
            return
        await asyncio.gather(*(session.leave() for session in list(self.sessions)))
        await self.all_left.wait()


class _Session:
    """One connection: its handshake, its caller and its operations in flight."""

    def __init__(self, endpoint: GraphQLWebSocket, websocket: WebSocket) -> None:
        self.endpoint = endpoint
        self.websocket = websocket
        self.viewer: Viewer | None = None
        self.initialised = False
        self.operations: dict[str, asyncio.Task[None]] = {}
        self.sending = asyncio.Lock()
        self.greeted = asyncio.Event()  # set once connection_init has been answered

    async def run(self) -> None:
        """Serve messages until the client leaves or the connection must close."""
        watchdog = asyncio.create_task(self._watch())
        try:
            while True:
                message = await self._receive()
                if message is None:
                    return
                await self._handle(message)
        except _Close as close:
            await self._close(close.code, close.reason)
        finally:
            watchdog.cancel()
            for task in self.operations.values():
                task.cancel()
            await asyncio.gather(watchdog, *self.operations.values(), return_exceptions=True)

    async def leave(self) -> None:
        """Close this connection because the server is going away."""
        await self._close(GOING_AWAY, GOING_AWAY_REASON)

    async def _watch(self) -> None:
        """Close the socket when no handshake came in time, and when the token lapses."""
        try:
            await asyncio.wait_for(self.greeted.wait(), self.endpoint.init_timeout)
        except TimeoutError:
            await self._close(4408, "Connection initialisation timeout")
            return
        expires = self.viewer.expires_at if self.viewer is not None else None
        if expires is not None:
            await asyncio.sleep(max(0.0, expires - time.time()))
            await self._close(4403, "Forbidden: the token has expired")

    async def _receive(self) -> dict[str, Any] | None:
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            return None
        if message["type"] == "websocket.disconnect":
            return None
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        if len(raw) > self.endpoint.limits.max_message_bytes:
            raise _Close(1009, "Message too big")
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise _Close(4400, "Invalid message received: not JSON") from None
        if not isinstance(parsed, dict) or not isinstance(parsed.get("type"), str):
            raise _Close(4400, "Invalid message received: no type")
        return parsed

    async def _handle(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "connection_init":
            await self._initialise(message.get("payload"))
        elif kind == "ping":
            await self._send({"type": "pong"})
        elif kind == "pong":
            return
        elif kind == "subscribe":
            await self._subscribe(message)
        elif kind == "complete":
            task = self.operations.pop(str(message.get("id")), None)
            if task is not None:
                task.cancel()
        else:
            raise _Close(4400, f"Invalid message received: unknown type {kind[:40]!r}")

    async def _initialise(self, payload: object) -> None:
        if self.initialised:
            raise _Close(4429, "Too many initialisation requests")
        self.initialised = True
        try:
            self.viewer = self._authenticate(payload)
        except _Close:
            # a failed sign-in counts against the address, as an HTTP request without a good
            # token does; past its limit the answer is 4429 rather than 4403
            client = self.websocket.client
            with contextlib.suppress(CareGraphError):
                try:
                    await self.endpoint.rate_limiter.check(None, client.host if client else None)
                except RateLimited:
                    raise _Close(4429, "Too many requests") from None
            raise
        await self._send({"type": "connection_ack"})
        self.greeted.set()

    def _authenticate(self, payload: object) -> Viewer:
        """The caller the payload's bearer token proves, or close with 4403."""
        params = payload if isinstance(payload, dict) else {}
        header = next(
            (value for key, value in params.items() if str(key).lower() == "authorization"),
            "",
        )
        viewer = viewer_of_header(str(header), self.endpoint.tokens)
        if viewer is None:
            raise _Close(4403, "Forbidden")
        return viewer

    async def _subscribe(self, message: dict[str, Any]) -> None:
        viewer = self.viewer
        if viewer is None:
            raise _Close(4401, "Unauthorized")
        if viewer.expired():
            raise _Close(4403, "Forbidden: the token has expired")
        operation_id, payload = message.get("id"), message.get("payload")
        if not isinstance(operation_id, str) or not operation_id or not isinstance(payload, dict):
            raise _Close(4400, "Invalid message received: subscribe needs an id and a payload")
        if operation_id in self.operations:
            raise _Close(4409, f"Subscriber for {operation_id[:64]} already exists")
        query, variables = payload.get("query"), payload.get("variables")
        operation_name, extensions = payload.get("operationName"), payload.get("extensions")
        if (
            not isinstance(query, str | None)
            or not isinstance(variables, dict | None)
            or not isinstance(operation_name, str | None)
            or not isinstance(extensions, dict | None)
        ):
            raise _Close(4400, "Invalid message received: the payload's query is not a string")
        if len(self.operations) >= MAX_OPERATIONS:
            await self._error(
                operation_id,
                [
                    ApiError(
                        ApiErrorCode.TOO_MANY_OPERATIONS,
                        f"at most {MAX_OPERATIONS} operations may run on one socket at once",
                    )
                ],
            )
            return
        try:
            await self.endpoint.rate_limiter.check(viewer, None)
            document = await self.endpoint.documents.resolve(query, extensions)
        except (ApiError, CareGraphError) as error:  # RATE_LIMITED, SERVICE_UNAVAILABLE, …
            await self._error(operation_id, [GraphQLError("refused", original_error=error)])
            return
        socket_id = request_id_of(self.websocket.scope) or "socket"
        admitted = self.endpoint.service.admit(
            document,
            variables,
            operation_name,
            viewer,
            streaming=True,
            request_id=f"{socket_id}/{_SAFE_ID.sub('_', operation_id[:32])}",
        )
        if isinstance(admitted, Refused):
            await self._error(operation_id, admitted.errors)
            return
        self.operations[operation_id] = asyncio.create_task(
            self._operate(operation_id, admitted, viewer)
        )

    async def _operate(self, operation_id: str, admitted: Admitted, viewer: Viewer) -> None:
        """Run one admitted operation to its end, then say complete."""
        try:
            if admitted.operation.operation.value == "subscription":
                async for result in self._stream(admitted, viewer):
                    await self._next(operation_id, orjson.dumps(result))
            else:
                pool: ConnectionSource = self.websocket.app.state.pool
                body = await self.endpoint.service.run(pool, admitted, viewer)
                await self._next(operation_id, body)
            if self.operations.pop(operation_id, None) is not None:
                await self._send({"id": operation_id, "type": "complete"})
        except asyncio.CancelledError:
            raise
        except Exception as error:  # a dead operation must still end, masked, for its client
            self.operations.pop(operation_id, None)
            await self._error(operation_id, [GraphQLError("failed", original_error=error)])

    async def _stream(self, admitted: Admitted, viewer: Viewer) -> AsyncIterator[dict[str, Any]]:
        """The events of a subscription, each shaped as a GraphQL response."""
        context = LiveContext(self.endpoint.live, viewer)
        stream = await _as_awaitable(
            subscribe(
                self.endpoint.service.graphql_schema,
                admitted.document,
                context_value=context,
                variable_values=admitted.variables,
                operation_name=admitted.operation_name,
            )
        )
        if isinstance(stream, ExecutionResult):
            yield _response(stream, admitted)
            return
        try:
            async for result in stream:
                yield _response(result, admitted)
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def _next(self, operation_id: str, body: bytes) -> None:
        if operation_id in self.operations:
            await self._send_raw(
                b'{"id":' + orjson.dumps(operation_id) + b',"type":"next","payload":' + body + b"}"
            )

    async def _error(self, operation_id: str, errors: list[GraphQLError]) -> None:
        await self._send(
            {
                "id": operation_id,
                "type": "error",
                "payload": [client_error(error) for error in errors],
            }
        )

    async def _send(self, message: dict[str, Any]) -> None:
        await self._send_raw(orjson.dumps(message))

    async def _send_raw(self, data: bytes) -> None:
        async with self.sending:
            if self.websocket.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await self.websocket.send_text(data.decode())

    async def _close(self, code: int, reason: str) -> None:
        async with self.sending:
            if self.websocket.application_state is WebSocketState.CONNECTED:
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await self.websocket.close(code, reason)


async def _as_awaitable(value: Any) -> Any:
    if asyncio.iscoroutine(value) or isinstance(value, asyncio.Future):
        return await value
    return value


def _response(result: ExecutionResult, admitted: Admitted) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if result.errors:
        body["errors"] = [client_error(error, admitted.label) for error in result.errors]
    body["data"] = result.data
    return body
