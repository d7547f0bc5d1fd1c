"""How care_graph logs: plain lines for a person in development, one JSON object per line for
a log pipeline in production (``CARE_GRAPH_LOG_FORMAT=json``). A line about a request carries
its ``request_id``, ``operation`` and ``code`` as fields; none carries a document, its
variables or data (api/errors.py decides what is said)."""

from __future__ import annotations

import logging
import traceback
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson

# the fields a log call may add with extra=..., and nothing else
FIELDS = ("request_id", "operation", "code")


class LogFormat(StrEnum):
    """How log lines are written."""

    TEXT = "text"
    JSON = "json"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the request's fields, and
    the traceback of an unexpected error as one string."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return orjson.dumps(line, default=str).decode()


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any] | None:
    """uvicorn's logging configuration for this format (None: uvicorn's own, for text), with
    care_graph's loggers at INFO on the same handler."""
    if log_format is LogFormat.TEXT:
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    loggers = ("uvicorn", "uvicorn.error", "uvicorn.access", "care_graph")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "care_graph.logs.JsonFormatter"}},
        "handlers": {"json": handler},
        "loggers": {
            name: {"handlers": ["json"], "level": "INFO", "propagate": False} for name in loggers
        },
    }
