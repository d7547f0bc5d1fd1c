"""The HTTP face of GraphQL: ``POST /graphql`` with a JSON body, and GraphiQL on ``GET`` in
development. Malformed requests get 400; GraphQL errors come back as 200 with ``errors``."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import Response

from care_graph.api import graphiql
from care_graph.api.errors import ApiError, ApiErrorCode, logger
from care_graph.api.service import GraphQLService, error_response
from care_graph.auth import Role, Unauthenticated, Viewer, verify
from care_graph.config import Settings

JSON = "application/json"


def _bad_request(message: str) -> Response:
    return Response(
        error_response([ApiError(ApiErrorCode.BAD_REQUEST, message)]),
        status_code=400,
        media_type=JSON,
    )


async def graphql(request: Request) -> Response:
    """Answer one GraphQL request."""
    service: GraphQLService = request.app.state.graphql
    if request.method == "GET":
        if request.app.state.settings.development:
            return await graphiql.page(request)
        return Response(status_code=405, headers={"Allow": "POST"})
    try:
        body: Any = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return _bad_request("the request body is not valid JSON")
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return _bad_request('the body must be a JSON object with a "query" string')
    variables = body.get("variables")
    operation_name = body.get("operationName")
    if variables is not None and not isinstance(variables, dict):
        return _bad_request('"variables" must be a JSON object')
    if operation_name is not None and not isinstance(operation_name, str):
        return _bad_request('"operationName" must be a string')
    viewer = authenticate(request)
    if viewer is None:
        return Response(
            UNAUTHENTICATED,
            status_code=401,
            media_type=JSON,
            headers={"WWW-Authenticate": "Bearer"},
        )
    pool: asyncpg.Pool[Any] = request.app.state.pool
    result = await service.execute(pool, body["query"], variables, operation_name, viewer)
    return Response(result.body, media_type=JSON)


UNAUTHENTICATED = error_response(
    [ApiError(ApiErrorCode.UNAUTHENTICATED, "authentication required")]
)


def authenticate(request: Request) -> Viewer | None:
    """The caller a bearer token proves; None for a missing or bad one (the reason is logged,
    never told). In development a configured anonymous role stands in for a missing token."""
    header = request.headers.get("authorization")
    settings: Settings = request.app.state.settings
    if header is None:
        if settings.development and settings.anonymous_role:
            return Viewer("anonymous", Role(settings.anonymous_role))
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return verify(token.strip(), request.app.state.tokens)
    except Unauthenticated as error:
        logger.info("refused a token: %s", error)
        return None
