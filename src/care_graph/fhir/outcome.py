"""Errors as FHIR OperationOutcomes, with the same codes GraphQL answers in
``errors[].extensions.code``: the code rides in ``issue[].details.coding`` and a message fit to
show a person in ``issue[].diagnostics``; never a trace."""

from __future__ import annotations

from typing import Any

import orjson

from care_graph.api.errors import ApiErrorCode
from care_graph.errors import ErrorCode

# the code system our codes are published under (docs/fhir.md)
CODE_SYSTEM = "https://care-graph.example/fhir/CodeSystem/error-code"

Code = ErrorCode | ApiErrorCode

# each code's HTTP status and FHIR issue type (http://hl7.org/fhir/issue-type)
_ANSWERS: dict[Code, tuple[int, str]] = {
    ErrorCode.DATABASE_UNAVAILABLE: (503, "transient"),
    ErrorCode.SERVICE_UNAVAILABLE: (503, "transient"),
    ErrorCode.LIVE_EVENTS_INTERRUPTED: (503, "transient"),
    ErrorCode.OUTCOME_UNKNOWN: (503, "transient"),
    ErrorCode.MIGRATION_CHANGED: (503, "exception"),
    ErrorCode.MIGRATIONS_PENDING: (503, "exception"),
    ErrorCode.INVALID_ARGUMENT: (400, "invalid"),
    ErrorCode.INVALID_NHS_NUMBER: (400, "value"),
    ErrorCode.NOT_FOUND: (404, "not-found"),
    ErrorCode.INVALID_TRANSITION: (422, "business-rule"),
    ErrorCode.SLOT_UNAVAILABLE: (409, "conflict"),
    ErrorCode.SLOT_SERVICE_MISMATCH: (422, "business-rule"),
    ErrorCode.SLOT_SKILL_MISMATCH: (422, "business-rule"),
    ErrorCode.SLOT_BEFORE_EARLIEST_DATE: (422, "business-rule"),
    ErrorCode.SLOT_BEYOND_MAX_TRAVEL: (422, "business-rule"),
    ErrorCode.HOLD_EXPIRED: (409, "expired"),
    ErrorCode.IDEMPOTENCY_KEY_REUSED: (409, "conflict"),
    ErrorCode.CONFLICT_RETRY_EXHAUSTED: (409, "lock-error"),
    ErrorCode.FORBIDDEN: (403, "forbidden"),
    ErrorCode.STALE_WRITE: (409, "conflict"),
    ErrorCode.ALREADY_EXISTS: (409, "duplicate"),
    ErrorCode.ROSTER_OVERLAP: (409, "conflict"),
    ErrorCode.ROSTER_RULE: (422, "business-rule"),
    ErrorCode.PLAN_EXPIRED: (409, "expired"),
    ErrorCode.INTERNAL: (500, "exception"),
    ApiErrorCode.BAD_REQUEST: (400, "structure"),
    ApiErrorCode.BAD_USER_INPUT: (400, "invalid"),
    ApiErrorCode.METHOD_NOT_ALLOWED: (405, "not-supported"),
    ApiErrorCode.NOT_ACCEPTABLE: (406, "not-supported"),
    ApiErrorCode.UNSUPPORTED_MEDIA_TYPE: (415, "not-supported"),
    ApiErrorCode.PAYLOAD_TOO_LARGE: (413, "too-long"),
    ApiErrorCode.PAGE_SIZE_EXCEEDED: (400, "too-costly"),
    ApiErrorCode.INPUT_TOO_LARGE: (413, "too-long"),
    ApiErrorCode.RATE_LIMITED: (429, "throttled"),
    ApiErrorCode.HEADERS_TOO_LARGE: (431, "too-long"),
    ApiErrorCode.QUERY_TIMEOUT: (503, "timeout"),
    ApiErrorCode.UNAUTHENTICATED: (401, "login"),
    ApiErrorCode.INTERNAL: (500, "exception"),
}


class FhirError(Exception):
    """A refusal answered as an OperationOutcome: its code (one of GraphQL's), message and
    any headers (``Retry-After``, ``WWW-Authenticate``, ``Allow``)."""

    def __init__(self, code: Code, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.headers = headers or {}

    @property
    def status(self) -> int:
        """The HTTP status this code is answered with."""
        return status_of(self.code)


def invalid(message: str) -> FhirError:
    """A refusal of a request as sent (400 INVALID_ARGUMENT): a search, a message, an
    operation's parameters."""
    return FhirError(ErrorCode.INVALID_ARGUMENT, message)


def status_of(code: Code) -> int:
    """The HTTP status of a code (500 for none mapped: a code added without a FHIR answer)."""
    return _ANSWERS.get(code, (500, "exception"))[0]


def issue_type_of(code: Code) -> str:
    """The FHIR issue type of a code."""
    return _ANSWERS.get(code, (500, "exception"))[1]


def operation_outcome(code: Code, message: str) -> dict[str, Any]:
    """An OperationOutcome of one error issue carrying ``code`` and ``message``."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": issue_type_of(code),
                "details": {
                    "coding": [{"system": CODE_SYSTEM, "code": str(code)}],
                    "text": message,
                },
                "diagnostics": message,
            }
        ],
    }


def outcome_body(code: Code, message: str) -> bytes:
    """The OperationOutcome of one error, as JSON bytes."""
    return orjson.dumps(operation_outcome(code, message))
