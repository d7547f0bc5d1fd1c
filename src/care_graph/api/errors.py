"""Errors a GraphQL client can see: a stable ``extensions.code`` and a human message, and never a
traceback, SQL text or class name."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

import asyncpg
from graphql import GraphQLError

from care_graph.errors import CareGraphError, ErrorCode

logger = logging.getLogger("care_graph.api")


class ApiErrorCode(StrEnum):
    """Codes in ``errors[].extensions.code``; clients branch on these."""

    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    BAD_REQUEST = "BAD_REQUEST"
    OPERATION_NOT_FOUND = "OPERATION_NOT_FOUND"
    OPERATION_NOT_SUPPORTED = "OPERATION_NOT_SUPPORTED"  # a subscription sent over HTTP
    PAGE_SIZE_EXCEEDED = "PAGE_SIZE_EXCEEDED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    QUERY_TIMEOUT = "QUERY_TIMEOUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INTERNAL = "INTERNAL_SERVER_ERROR"


class ApiError(GraphQLError):
    """An expected failure, shown to the client as it is."""

    def __init__(self, code: ApiErrorCode | ErrorCode, message: str, **kwargs: Any) -> None:
        super().__init__(message, extensions={"code": str(code)}, **kwargs)
        self.code = code


def client_error(error: GraphQLError) -> dict[str, Any]:
    """The JSON a client sees for one error: our own errors as they are, graphql-core's
    validation and input errors with a code, anything unexpected masked."""
    original = error.original_error
    if isinstance(original, ApiError):
        error = original
    elif isinstance(original, CareGraphError):
        error = ApiError(original.code, original.message, nodes=error.nodes, path=error.path)
    elif original is not None:
        error = _masked(original)
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = formatted.setdefault("extensions", {})
    extensions.setdefault("code", str(ApiErrorCode.BAD_USER_INPUT))
    formatted["extensions"] = {"code": extensions["code"]}
    return formatted


def _masked(original: Exception) -> GraphQLError:
    if isinstance(original, asyncpg.QueryCanceledError):
        return ApiError(ApiErrorCode.QUERY_TIMEOUT, "the query took too long and was cancelled")
    if isinstance(original, asyncpg.DataError):
        return ApiError(ApiErrorCode.BAD_USER_INPUT, "an argument value is not valid")
    logger.error("internal error while executing GraphQL", exc_info=original)
    return ApiError(ApiErrorCode.INTERNAL, "internal error")
