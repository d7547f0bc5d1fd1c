"""Bounds on an HTTP request's head before the app does any work for it.

Two layers, one limit (``Limits.max_header_bytes``):

- ``HeaderLimit``, an ASGI middleware, is the rule: request headers whose names and values
  together pass the limit are refused with 431 ``HEADERS_TOO_LARGE``, for plain requests and for
  a WebSocket upgrade alike (refused before it is accepted), whatever server runs the app.
- ``BoundedHttpToolsProtocol``, uvicorn's httptools protocol with a cap, stops reading a head
  that grows past ``head_bytes(limits)`` on the wire and answers 431 at once. Without it
  httptools (what ``uvicorn[standard]`` runs) has no cap at all, and it and uvicorn gather a
  header or a URL by appending bytes to bytes, so a 64 MB header costs seconds of the event
  loop before the app sees it. h11 caps the head itself (``h11_max_incomplete_event_size``,
  16 KiB by default) but answers a plain-text 400; ``uvicorn_options`` sets that cap too.

Serve the app with ``uvicorn.Config(app, **uvicorn_options(settings.limits))``. Bodies are
bounded where they are read (api/http.py), as they stream in.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from care_graph.api.errors import ApiError, ApiErrorCode
from care_graph.api.service import error_response
from care_graph.config import Limits

# how long what a client goes on sending after it was answered early (a head refused with 431,
# a body with 413) is read and dropped before the connection is closed: closing on unread bytes
# resets the connection, and the client, still sending, would lose the answer
LINGER_SECONDS = 5.0


def head_bytes(limits: Limits) -> int:
    """The most a request head (request line and headers, as sent) may grow on the wire: twice
    the header limit, so that the request line and each header's framing never make this cap
    refuse what ``HeaderLimit`` would let through, and a GET's URL has room of its own."""
    return 2 * limits.max_header_bytes


def uvicorn_options(limits: Limits) -> dict[str, Any]:
    """The ``uvicorn.Config`` options that bound a request head, and a WebSocket message,
    before the app sees them (a message over the limit closes the socket with 1009)."""
    bounded = importlib.util.find_spec("httptools") is not None
    return {
        "http": f"{__name__}:BoundedHttpToolsProtocol" if bounded else "h11",
        "h11_max_incomplete_event_size": head_bytes(limits),
        "ws_max_size": limits.max_message_bytes,
    }


def headers_too_large(message: str) -> bytes:
    """The JSON body of a 431."""
    return error_response([ApiError(ApiErrorCode.HEADERS_TOO_LARGE, message)])


class HeaderLimit:
    """Refuse a request (or a WebSocket upgrade) whose headers, names and values together,
    are over ``max_header_bytes``: 431 with our JSON error body, before the app runs.

    Example::

        Starlette(routes=..., middleware=[Middleware(HeaderLimit, max_header_bytes=16_384)])
    """

    def __init__(self, app: ASGIApp, max_header_bytes: int) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or (
            sum(len(name) + len(value) for name, value in scope["headers"]) <= self.max_header_bytes
        ):
            await self.app(scope, receive, send)
            return
        body = headers_too_large(f"the request headers are over {self.max_header_bytes} bytes")
        start: Message = {
            "status": 431,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
        if scope["type"] == "http":
            await send({"type": "http.response.start", **start})
            await send({"type": "http.response.body", "body": body})
            return
        await receive()  # websocket.connect: the handshake, not yet answered
        if "websocket.http.response" in scope.get("extensions", {}):
            await send({"type": "websocket.http.response.start", **start})
            await send({"type": "websocket.http.response.body", "body": body})
        else:  # a server without the denial-response extension answers 403
            await send({"type": "websocket.close"})


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head that grows past
    ``config.h11_max_incomplete_event_size`` bytes (``head_bytes``) with 431 as it arrives, and
    bounding how long the rest of a body answered early is taken in.

    The head is measured as it is fed to the parser, from the end of the previous request on
    the connection (or its start) until its headers are complete; a head is refused once more
    than that many bytes of it have arrived and it is still not complete. After the 431 the
    connection takes no further request: what the client goes on sending is read and dropped
    for up to ``LINGER_SECONDS``, so that it can read the answer, and then it is closed.

    A request answered before its body has all come (413: api/http.py reads no further than
    the limit) keeps its connection, as uvicorn keeps it, and uvicorn drops the rest of the
    body as it comes; here for ``LINGER_SECONDS`` at most, and then the connection is closed.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limit = config.h11_max_incomplete_event_size
        self.head_limit = limit if limit is not None else head_bytes(Limits())
        self.in_head = True  # until this request's headers are complete
        self.head_received = 0
        self.refused = False
        self.dropping_until: float | None = None  # the rest of an answered body

    def data_received(self, data: bytes) -> None:
        if self.refused:
            return  # lingering: dropped unread
        if self.in_head:
            self.head_received += len(data)
        elif self.cycle is not None and self.cycle.response_complete:
            if self.dropping_until is None:
                self.dropping_until = self.loop.time() + LINGER_SECONDS
            elif self.loop.time() > self.dropping_until:
                self.transport.close()
                return
        super().data_received(data)
        if self.in_head and self.head_received > self.head_limit and not self.refused:
            self.refuse_head()

    def on_headers_complete(self) -> None:
        self.in_head = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.in_head = True  # the next request on this connection starts here
        self.head_received = 0
        self.dropping_until = None

    def refuse_head(self) -> None:
        """Answer 431 (unless an earlier request's response is still being written: then
        only close), and linger."""
        self.refused = True
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()
            return
        self.logger.warning("Refused a request head over %d bytes.", self.head_limit)
        body = headers_too_large(f"the request line and headers are over {self.head_limit} bytes")
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        head += [
            name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers
        ]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the answer is whole: the client may read it now
        self.loop.call_later(LINGER_SECONDS, self.transport.close)
