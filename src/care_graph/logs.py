"""How care_graph logs: plain lines for a person in development, one JSON object per line for
a log pipeline in production (``CARE_GRAPH_LOG_FORMAT=json``). A line about a request carries
its ``request_id``, ``operation`` and ``code`` as fields; none carries a document, its
variables or data (api/errors.py decides what is said)."""

from __future__ import annotations

import copy
import logging
import traceback
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import orjson
from uvicorn.config import LOGGING_CONFIG

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


class WithoutQueryStrings(logging.Filter):
    """Drops the query string from uvicorn's access lines: a GET carries its GraphQL document
    and variables there, and those may hold patient details."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record, with its path cut at ``?``."""
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], args[2].split("?", 1)[0], args[3], args[4])
        return True


def uvicorn_log_config(log_format: LogFormat) -> dict[str, Any]:
    """uvicorn's logging configuration for this format: its own lines for text, JSON lines
    with care_graph's loggers at INFO for json; access lines never carry a query string."""
    access_filter = {"without_query": {"()": "care_graph.logs.WithoutQueryStrings"}}
    if log_format is LogFormat.TEXT:
        config = copy.deepcopy(LOGGING_CONFIG)
        config["filters"] = access_filter
        config["handlers"]["access"]["filters"] = ["without_query"]
        return config
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    loggers = ("uvicorn", "uvicorn.error", "uvicorn.access", "care_graph")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": access_filter,
        "formatters": {"json": {"()": "care_graph.logs.JsonFormatter"}},
        "handlers": {"json": {**handler, "filters": ["without_query"]}},
        "loggers": {
            name: {"handlers": ["json"], "level": "INFO", "propagate": False} for name in loggers
        },
    }
