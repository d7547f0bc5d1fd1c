"""Errors care_graph reports to people and programs, each with a stable code, defined once."""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Machine-readable codes: clients branch on these, so they never change meaning."""

    DATABASE_UNAVAILABLE = "DATABASE_UNAVAILABLE"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"  # busy or lost connections: retry shortly
    LIVE_EVENTS_INTERRUPTED = "LIVE_EVENTS_INTERRUPTED"  # subscribe again and re-read
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"  # a mutation lost its connection: retry with its key
    MIGRATION_CHANGED = "MIGRATION_CHANGED"
    MIGRATIONS_PENDING = "MIGRATIONS_PENDING"
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    INVALID_NHS_NUMBER = "INVALID_NHS_NUMBER"
    NOT_FOUND = "NOT_FOUND"
    INVALID_TRANSITION = "INVALID_TRANSITION"
    SLOT_UNAVAILABLE = "SLOT_UNAVAILABLE"
    SLOT_SERVICE_MISMATCH = "SLOT_SERVICE_MISMATCH"
    SLOT_SKILL_MISMATCH = "SLOT_SKILL_MISMATCH"
    SLOT_BEFORE_EARLIEST_DATE = "SLOT_BEFORE_EARLIEST_DATE"
    SLOT_BEYOND_MAX_TRAVEL = "SLOT_BEYOND_MAX_TRAVEL"
    HOLD_EXPIRED = "HOLD_EXPIRED"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    CONFLICT_RETRY_EXHAUSTED = "CONFLICT_RETRY_EXHAUSTED"
    FORBIDDEN = "FORBIDDEN"
    STALE_WRITE = "STALE_WRITE"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    ROSTER_OVERLAP = "ROSTER_OVERLAP"
    ROSTER_RULE = "ROSTER_RULE"  # skills, sites, leave, rest or weekly hours
    PLAN_EXPIRED = "PLAN_EXPIRED"
    INTERNAL = "INTERNAL"


class CareGraphError(Exception):
    """An expected failure with a stable code and a message fit to show a person."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return self.message
