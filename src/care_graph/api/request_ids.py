"""A request id for every HTTP request: the caller's ``X-Request-ID`` when it is a short token
of safe characters, a fresh one otherwise. It is sent back in the response's ``X-Request-ID``,
named in every log line about the request, and carried by an INTERNAL_SERVER_ERROR, so a
report from a client, a proxy's log and ours meet on one value."""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = b"x-request-id"
_SAFE = re.compile(rb"[A-Za-z0-9._:-]{1,64}")


def new_request_id() -> str:
    """A fresh request id."""
    return secrets.token_hex(8)


def request_id_of(scope: Scope) -> str | None:
    """The id the middleware gave this request, if it ran."""
    state = scope.get("state") or {}
    found = state.get("request_id")
    return found if isinstance(found, str) else None


class RequestIds:
    """ASGI middleware: choose the request's id, keep it in ``scope["state"]``, and send it
    back on the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = next((value for name, value in scope["headers"] if name == HEADER), b"")
        request_id = given.decode() if _SAFE.fullmatch(given) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (name, value) for name, value in message.get("headers", []) if name != HEADER
                ]
                message = {**message, "headers": [*headers, (HEADER, request_id.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)
