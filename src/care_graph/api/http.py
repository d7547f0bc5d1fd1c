"""The HTTP face of GraphQL, after the GraphQL-over-HTTP spec: ``POST /graphql`` with a JSON
body, ``GET /graphql`` with the request in the URL (queries only), and GraphiQL on ``GET`` in
development when a browser asks for a page. README ("HTTP: status codes and media types")
lists every answer.

The media type follows the client's ``Accept``: ``application/graphql-response+json`` (the
spec's preferred type, and the one used when no ``Accept`` is sent) answers a request error —
the document does not parse or validate, its operation is not found, its variables do not
coerce, a limit refuses it — with 400; ``application/json`` (older clients, and ``*/*``) answers
those with 200, as it always has. A request that is not a well-formed GraphQL-over-HTTP request
is refused with a 4xx under either, with the same ``errors[].extensions.code`` body.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from care_graph.api import graphiql
from care_graph.api.documents import Documents
from care_graph.api.errors import ApiError, ApiErrorCode
from care_graph.api.rate_limits import RateLimited, RateLimiter
from care_graph.api.request_ids import request_id_of
from care_graph.api.service import GraphQLService, Refused, error_response
from care_graph.auth import Role, Viewer, viewer_of_header
from care_graph.config import Limits, Settings
from care_graph.db.pool import ConnectionSource
from care_graph.errors import CareGraphError, ErrorCode

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
HTML = "text/html"
CONTENT_TYPE = {GRAPHQL_RESPONSE: f"{GRAPHQL_RESPONSE}; charset=utf-8", JSON: JSON}
# what the server answers in, preferred first where Accept ranks two alike (a wildcard):
# application/json, which every client of the spec's reads, then GraphiQL's page
ANSWERS = (JSON, GRAPHQL_RESPONSE)
PAGES = (JSON, GRAPHQL_RESPONSE, HTML)
UTF_8 = ("utf-8", "utf8")
PARAMETERS = ("query", "operationName", "variables", "extensions")
RETRY_AFTER_UNAVAILABLE_S = 1


@dataclass(frozen=True, slots=True)
class Params:
    """The GraphQL-over-HTTP request parameters; ``query`` may be left out when
    ``extensions.persistedQuery`` names a known document (api/documents.py)."""

    query: str | None
    operation_name: str | None
    variables: dict[str, Any] | None
    extensions: dict[str, Any] | None


class HttpRefusal(Exception):
    """A request refused before GraphQL sees it: its status, code and message."""

    def __init__(
        self,
        status: int,
        code: ApiErrorCode,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def response(self, media: str) -> Response:
        """The refusal as a response in ``media``."""
        body = error_response([ApiError(self.code, self.message)])
        return answer(body, media, self.status, self.headers)


def answer(
    body: bytes, media: str, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A response in ``media``; it varies with the request's Accept."""
    return Response(
        body,
        status_code=status,
        media_type=CONTENT_TYPE[media],
        headers={"Vary": "Accept", **(headers or {})},
    )


async def graphql(request: Request) -> Response:
    """Answer one GraphQL-over-HTTP request (or serve GraphiQL to a browser in development);
    a busy or lost database is 503 SERVICE_UNAVAILABLE (OUTCOME_UNKNOWN for a mutation that
    lost its connection) with ``Retry-After``, never a 500."""
    try:
        return await _graphql(request)
    except CareGraphError as error:
        if error.code not in (ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.OUTCOME_UNKNOWN):
            raise
        media = negotiate(request.headers.get("accept", "").strip(), ANSWERS) or JSON
        body = error_response([ApiError(error.code, error.message)])
        return answer(body, media, 503, {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)})


async def _graphql(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    service: GraphQLService = request.app.state.graphql
    accept = request.headers.get("accept", "").strip()
    post = request.method == "POST"
    if not post and settings.development and negotiate(accept, PAGES) == HTML:
        return await graphiql.page(request)
    # no Accept at all: the spec's watershed (1 January 2025) has passed, so its preferred type
    media = negotiate(accept, ANSWERS) if accept else GRAPHQL_RESPONSE
    if media is None:
        return HttpRefusal(
            406,
            ApiErrorCode.NOT_ACCEPTABLE,
            f"answers are {GRAPHQL_RESPONSE} or {JSON}; the Accept header allows neither",
        ).response(JSON)
    try:
        if post:
            check_body_headers(request, service.limits)  # before anything else is read
        viewer = authenticate(request)
        await check_rate(request, viewer)
        if viewer is None:
            raise HttpRefusal(
                401,
                ApiErrorCode.UNAUTHENTICATED,
                "authentication required",
                {"WWW-Authenticate": "Bearer"},
            )
        params = (
            await params_from_body(request, service.limits) if post else params_from_url(request)
        )
    except HttpRefusal as refusal:
        return refusal.response(media)
    documents: Documents = request.app.state.documents
    try:
        query = await documents.resolve(params.query, params.extensions)
    except ApiError as error:  # a request error too: nothing was parsed
        return answer(error_response([error]), media, 400 if media == GRAPHQL_RESPONSE else 200)
    decided = service.admit(
        query,
        params.variables,
        params.operation_name,
        viewer,
        writes=post,
        request_id=request_id_of(request.scope),
    )
    if isinstance(decided, Refused):  # a request error: no execution began
        body = error_response(decided.errors, label=decided.label)
        if (decided.errors[0].extensions or {}).get("code") == ApiErrorCode.METHOD_NOT_ALLOWED:
            return answer(body, media, 405, {"Allow": "POST"})
        return answer(body, media, 400 if media == GRAPHQL_RESPONSE else 200)
    pool: ConnectionSource = request.app.state.pool
    return answer(await service.run(pool, decided, viewer), media)


async def check_rate(request: Request, viewer: Viewer | None) -> None:
    """429 once this caller (their token's subject, or their address without a good token)
    has used up their requests for now (api/rate_limits.py)."""
    limiter: RateLimiter = request.app.state.rate_limiter
    try:
        await limiter.check(viewer, request.client.host if request.client else None)
    except RateLimited as limited:
        raise HttpRefusal(
            429,
            ApiErrorCode.RATE_LIMITED,
            limited.message,
            {"Retry-After": str(limited.retry_after)},
        ) from None


def _bad_request(message: str) -> HttpRefusal:
    return HttpRefusal(400, ApiErrorCode.BAD_REQUEST, message)


def _too_large(limits: Limits) -> HttpRefusal:
    return HttpRefusal(
        413,
        ApiErrorCode.PAYLOAD_TOO_LARGE,
        f"the request body is over {limits.max_body_bytes} bytes",
    )


def check_body_headers(request: Request, limits: Limits, media: tuple[str, ...] = (JSON,)) -> None:
    """415 unless a POST's body is one of ``media`` (``application/json``) in UTF-8 (said or,
    by default, assumed); 413 when its declared length is over ``limits.max_body_bytes``."""
    if not is_json(request.headers.get("content-type"), media):
        raise HttpRefusal(
            415,
            ApiErrorCode.UNSUPPORTED_MEDIA_TYPE,
            f"send the request as {' or '.join(media)} (UTF-8), with a Content-Type header"
            " saying so",
        )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise _too_large(limits)


async def json_body(request: Request, limits: Limits) -> Any:
    """A POST's JSON body, read as it arrives and no further than ``limits.max_body_bytes``
    (413 past it); 400 unless it is JSON."""
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > limits.max_body_bytes:
            raise _too_large(limits)
    try:
        return orjson.loads(received)
    except orjson.JSONDecodeError:
        raise _bad_request("the request body is not valid JSON") from None


async def params_from_body(request: Request, limits: Limits) -> Params:
    """A POST's parameters, from its JSON body (``json_body``); 400 unless it is a
    well-formed request."""
    body = await json_body(request, limits)
    if not isinstance(body, dict) or not isinstance(body.get("query"), str | None):
        raise _bad_request('the body must be a JSON object with a "query" string')
    variables, operation_name = body.get("variables"), body.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        raise _bad_request('"variables" must be a JSON object')
    if operation_name is not None and not isinstance(operation_name, str):
        raise _bad_request('"operationName" must be a string')
    extensions = body.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        raise _bad_request('"extensions" must be a JSON object')
    if body.get("query") is None and not _persisted(extensions):
        raise _bad_request('the body must be a JSON object with a "query" string')
    return Params(body.get("query"), operation_name or None, variables, extensions)


def params_from_url(request: Request) -> Params:
    """A GET's parameters, from its URL: ``variables`` and ``extensions`` each a JSON object
    encoded as a string; an empty ``operationName`` is none."""
    url = request.query_params
    for name in PARAMETERS:
        if len(url.getlist(name)) > 1:
            raise _bad_request(f'give "{name}" once')
    query = url.get("query")
    variables = _json_object(url.get("variables"), "variables")
    extensions = _json_object(url.get("extensions"), "extensions")
    if query is None and not _persisted(extensions):
        raise _bad_request('a GET request needs a "query" parameter (the GraphQL document)')
    return Params(query, url.get("operationName") or None, variables, extensions)


def _persisted(extensions: dict[str, Any] | None) -> bool:
    """Whether the request names its document by hash instead (api/documents.py)."""
    return extensions is not None and "persistedQuery" in extensions


def _json_object(text: str | None, name: str) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    if value is not None and not isinstance(value, dict):
        raise _bad_request(f'"{name}" must be a JSON object, encoded as a string')
    return value


def is_json(content_type: str | None, media: tuple[str, ...] = (JSON,)) -> bool:
    """Whether a Content-Type is one of ``media`` (``application/json``), in UTF-8 (said or,
    by default, assumed)."""
    said, *parameters = (content_type or "").split(";")
    if said.strip().lower() not in media:
        return False
    return all(
        value.strip().strip('"').lower() in UTF_8
        for name, _, value in (parameter.partition("=") for parameter in parameters)
        if name.strip().lower() == "charset"
    )


def negotiate(accept: str, offered: tuple[str, ...]) -> str | None:
    """Which of the ``offered`` media types to answer in under this Accept header (RFC 9110
    12.5.1): the highest quality, then a type named outright before one a wildcard matches,
    then the one named first, then the order of ``offered``; None when none is acceptable."""
    ranges = [_media_range(part) for part in accept.split(",") if part.strip()]
    chosen, best = None, None
    for preference, media in enumerate(offered):
        decided = _deciding_range(ranges, media)
        if decided is None or decided[0] <= 0:
            continue
        quality, specific, position = decided
        rank = (quality, specific, -position, -preference)
        if best is None or rank > best:
            chosen, best = media, rank
    return chosen


def _deciding_range(
    ranges: list[tuple[str, float, bool]], media: str
) -> tuple[float, int, int] | None:
    """The quality, specificity (2 the type itself, 1 ``type/*``, 0 ``*/*``) and position of
    the most specific range that matches ``media``; a range whose charset is not UTF-8 matches
    nothing."""
    wildcards = {media: 2, f"{media.split('/')[0]}/*": 1, "*/*": 0}
    found = None
    for position, (pattern, quality, utf8) in enumerate(ranges):
        specific = wildcards.get(pattern)
        if utf8 and specific is not None and (found is None or specific > found[1]):
            found = (quality, specific, position)
    return found


def _media_range(part: str) -> tuple[str, float, bool]:
    """One Accept element: its media range, quality and whether its charset (if any) is UTF-8."""
    media, *parameters = part.split(";")
    quality, utf8 = 1.0, True
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        name, value = name.strip().lower(), value.strip().strip('"').lower()
        if name == "q":
            try:
                quality = min(max(float(value), 0.0), 1.0)
            except ValueError:
                quality = 0.0
        elif name == "charset":
            utf8 = value in UTF_8
    return media.strip().lower(), quality, utf8


def authenticate(request: Request) -> Viewer | None:
    """The caller a bearer token proves; None for a missing or bad one (the reason is logged,
    never told). In development a configured anonymous role stands in for a missing token."""
    header = request.headers.get("authorization")
    settings: Settings = request.app.state.settings
    if header is None:
        if settings.development and settings.anonymous_role:
            return Viewer("anonymous", Role(settings.anonymous_role))
        return None
    return viewer_of_header(header, request.app.state.tokens)
