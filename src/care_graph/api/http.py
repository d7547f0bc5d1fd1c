"""The HTTP face of GraphQL: ``POST /graphql`` with a JSON body, and GraphiQL on ``GET`` in
development. Malformed requests get 400; GraphQL errors come back as 200 with ``errors``."""

from __future__ import annotations

from typing import Any

import asyncpg
import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from strawberry.http.ides import get_graphql_ide_html

from care_graph.api.errors import ApiError, ApiErrorCode
from care_graph.api.service import GraphQLService, error_response

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
            return HTMLResponse(get_graphql_ide_html())
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
    pool: asyncpg.Pool[Any] = request.app.state.pool
    result = await service.execute(pool, body["query"], variables, operation_name)
    return Response(result, media_type=JSON)
