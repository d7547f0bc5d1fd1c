"""Errors a GraphQL client can see: a stable ``extensions.code`` and a human message, and never a
traceback, SQL text or class name."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
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
    # the HTTP transport's refusals (api/http.py, api/transport.py), each with its status
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"  # 405: a mutation sent with GET
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"  # 406: Accept names no JSON media type we answer in
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"  # 415: a POST body not application/json
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"  # 413: a body over Limits.max_body_bytes
    HEADERS_TOO_LARGE = "HEADERS_TOO_LARGE"  # 431: headers over Limits.max_header_bytes
    OPERATION_NOT_FOUND = "OPERATION_NOT_FOUND"
    OPERATION_NOT_SUPPORTED = "OPERATION_NOT_SUPPORTED"  # a subscription sent over HTTP
    PAGE_SIZE_EXCEEDED = "PAGE_SIZE_EXCEEDED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"  # extensions.cost and extensions.limit say how
    INPUT_TOO_LARGE = "INPUT_TOO_LARGE"  # the document, its variables or a list argument
    TOO_MANY_OPERATIONS = "TOO_MANY_OPERATIONS"  # in flight on one WebSocket
    RATE_LIMITED = "RATE_LIMITED"  # HTTP 429; extensions.retryAfter in seconds
    PERSISTED_QUERY_NOT_FOUND = "PERSISTED_QUERY_NOT_FOUND"  # a hash of no known document
    DOCUMENT_NOT_TRUSTED = "DOCUMENT_NOT_TRUSTED"  # production runs trusted documents only
    QUERY_TIMEOUT = "QUERY_TIMEOUT"
    UNAUTHENTICATED = "UNAUTHENTICATED"
    INTERNAL = "INTERNAL_SERVER_ERROR"


class ApiError(GraphQLError):
    """An expected failure, shown to the client as it is; ``details`` are further
    ``extensions`` a client may read (the cost and limit of QUERY_TOO_COMPLEX)."""

    def __init__(
        self,
        code: ApiErrorCode | ErrorCode,
        message: str,
        *,
        extensions: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, extensions={**(extensions or {}), "code": str(code)}, **kwargs)
        self.code = code


@dataclass(frozen=True, slots=True)
class RequestLabel:
    """All a log line says of a request: never its document, variables or data, which can
    hold patient details."""

    request_id: str
    operation_name: str | None

    @classmethod
    def new(cls, operation_name: str | None, request_id: str | None = None) -> RequestLabel:
        """A label with the transport's request id, or a fresh one."""
        return cls(request_id or secrets.token_hex(8), operation_name)


def client_error(error: GraphQLError, label: RequestLabel | None = None) -> dict[str, Any]:
    """The JSON a client sees for one error: our own errors as they are, graphql-core's
    validation and input errors with a code, anything unexpected masked (with the request id,
    so that the client's report finds the log line). Each error is logged here, once."""
    original = error.original_error
    if isinstance(original, ApiError):
        error = original
    elif isinstance(original, CareGraphError):
        error = ApiError(original.code, original.message, nodes=error.nodes, path=error.path)
    elif original is not None:
        error = _masked(original, label)
    formatted: dict[str, Any] = dict(error.formatted)
    extensions = formatted.get("extensions") or {}
    code = extensions.get("code", str(ApiErrorCode.BAD_USER_INPUT))
    shown = extensions if isinstance(error, ApiError) else {}
    formatted["extensions"] = {**shown, "code": code}
    if code != ApiErrorCode.INTERNAL:
        logger.info("%s in %s", code, _describe(label), extra=_fields(label, code))
    return formatted


def _masked(original: Exception, label: RequestLabel | None) -> GraphQLError:
    if isinstance(original, asyncpg.QueryCanceledError):
        return ApiError(ApiErrorCode.QUERY_TIMEOUT, "the query took too long and was cancelled")
    if isinstance(original, asyncpg.DataError):
        return ApiError(ApiErrorCode.BAD_USER_INPUT, "an argument value is not valid")
    logger.error(
        "internal error in %s",
        _describe(label),
        exc_info=original,
        extra=_fields(label, ApiErrorCode.INTERNAL),
    )
    request = {"requestId": label.request_id} if label is not None else {}
    return ApiError(ApiErrorCode.INTERNAL, "internal error", extensions=request)


def _fields(label: RequestLabel | None, code: str) -> dict[str, Any]:
    """A log line's fields (care_graph/logs.py): the request's id and operation, the code."""
    if label is None:
        return {"code": str(code)}
    return {"request_id": label.request_id, "operation": label.operation_name, "code": str(code)}


def _describe(label: RequestLabel | None) -> str:
    if label is None:
        return "a request"
    return f"operation {label.operation_name or 'anonymous'} (request {label.request_id})"
