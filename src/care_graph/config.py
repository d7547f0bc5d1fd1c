"""Settings read from the environment, in one place, with their defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TypeVar

import platformdirs

from care_graph.auth import Role
from care_graph.logs import LogFormat
from care_graph.matching.cost import CostModel

E = TypeVar("E", bound=StrEnum)


def _default_budgets() -> dict[Role, int]:
    return {
        Role.PATIENT: 5_000,
        Role.REFERRER: 20_000,
        Role.CLINICIAN: 20_000,
        Role.SCHEDULER: 50_000,
        Role.ADMIN: 50_000,
    }


class RateStore(StrEnum):
    """Where rate limits count requests: in each process, or in PostgreSQL so that every
    worker of a fleet counts against the same buckets."""

    MEMORY = "memory"
    POSTGRES = "postgres"


class DocumentPolicy(StrEnum):
    """Which GraphQL documents the API runs: any (development), or only the trusted ones
    added with `care-graph documents add` (production)."""

    ANY = "any"
    TRUSTED = "trusted"


@dataclass(frozen=True, slots=True)
class Limits:
    """The most one request may ask for. Each is checked before any work it would bound
    starts, and each is refused with a stable code; docs/limits.md lists them."""

    max_header_bytes: int = 16_384  # all request headers together, names and values
    max_body_bytes: int = 1_048_576  # an HTTP request body; over it: 413
    max_document_bytes: int = 65_536  # the GraphQL document, comments and whitespace included
    max_variables_bytes: int = 262_144  # the variables, as JSON
    max_message_bytes: int = 1_048_576  # one WebSocket message
    max_tokens: int = 5_000  # the parser's own limit on lexical tokens
    max_depth: int = 15
    max_aliases: int = 50
    max_ids: int = 100  # nodes(ids:) and every other list of ids in one argument
    requests_per_minute: int = 600  # per token subject, refilled evenly (api/rate_limits.py)
    request_burst: int = 120  # requests a subject may make at once after a quiet spell
    anonymous_requests_per_minute: int = 60  # per client address, for requests with no good token
    cost_budgets: dict[Role, int] = field(default_factory=_default_budgets)

    def budget_for(self, role: Role) -> int:
        """The most a document of a caller in this role may cost (docs/limits.md)."""
        return self.cost_budgets[role]


@dataclass(frozen=True, slots=True)
class Settings:
    """What care_graph needs to know about where it runs.

    ``database_url`` is None when care_graph should start its own embedded PostgreSQL in
    ``data_dir``.
    """

    database_url: str | None
    data_dir: Path
    statement_timeout_ms: int
    pool_min_size: int
    pool_max_size: int
    pool_acquire_timeout_s: float  # the longest a request waits for a connection
    development: bool
    introspection: bool
    anonymous_role: str | None
    cost_model: CostModel
    sweep_seconds: float  # how often lapsed holds are offered on; 0: never (tests, tools)
    limits: Limits = field(default_factory=Limits)
    rate_store: RateStore = RateStore.MEMORY  # where request counts are kept
    documents: DocumentPolicy = DocumentPolicy.ANY  # production's default is TRUSTED
    log_format: LogFormat = LogFormat.TEXT  # production's default is JSON
    otlp_traces_endpoint: str | None = None  # traces exported here over OTLP/HTTP; None: off
    shutdown_grace_s: int = 10  # how long requests in flight may finish after SIGTERM
    replica_urls: tuple[str, ...] = ()  # standbys that serve reads (db/replicas.py)

    @classmethod
    def from_environment(cls) -> Settings:
        """Read settings from environment variables, falling back to the documented defaults."""
        data_dir = os.environ.get("CARE_GRAPH_DATA_DIR") or platformdirs.user_data_dir("care-graph")
        development = os.environ.get("CARE_GRAPH_ENV", "development") == "development"
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            data_dir=Path(data_dir).expanduser(),
            statement_timeout_ms=_int_from_env("CARE_GRAPH_STATEMENT_TIMEOUT_MS", 5000),
            pool_min_size=_int_from_env("CARE_GRAPH_POOL_MIN", 2),
            pool_max_size=_int_from_env("CARE_GRAPH_POOL_MAX", 10),
            pool_acquire_timeout_s=_int_from_env("CARE_GRAPH_POOL_ACQUIRE_TIMEOUT_MS", 2000) / 1000,
            development=development,
            introspection=_flag_from_env("CARE_GRAPH_INTROSPECTION", default=development),
            anonymous_role=os.environ.get("CARE_GRAPH_ANONYMOUS_ROLE") or None,
            cost_model=_cost_model_from_env("CARE_GRAPH_MATCH_WEIGHTS"),
            sweep_seconds=_float_from_env("CARE_GRAPH_SWEEP_SECONDS", 15.0),
            limits=_limits_from_env(),
            rate_store=_enum_from_env("CARE_GRAPH_RATE_STORE", RateStore, RateStore.MEMORY),
            documents=_enum_from_env(
                "CARE_GRAPH_DOCUMENTS",
                DocumentPolicy,
                DocumentPolicy.ANY if development else DocumentPolicy.TRUSTED,
            ),
            log_format=_enum_from_env(
                "CARE_GRAPH_LOG_FORMAT",
                LogFormat,
                LogFormat.TEXT if development else LogFormat.JSON,
            ),
            otlp_traces_endpoint=_traces_endpoint_from_env(),
            shutdown_grace_s=_int_from_env("CARE_GRAPH_SHUTDOWN_GRACE_S", 10),
            replica_urls=tuple(
                url.strip()
                for url in os.environ.get("CARE_GRAPH_REPLICA_URLS", "").split(",")
                if url.strip()
            ),
        )


def _traces_endpoint_from_env() -> str | None:
    """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, as the
    OpenTelemetry specification reads them; None when neither is set (traces off)."""
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return f"{base.rstrip('/')}/v1/traces" if base else None


def _enum_from_env(name: str, kind: type[E], default: E) -> E:
    raw = os.environ.get(name) or default
    try:
        return kind(raw)
    except ValueError:
        known = " or ".join(str(member) for member in kind)
        raise ValueError(f"{name} must be {known}, got {raw!r}") from None


def _limits_from_env() -> Limits:
    """``Limits`` with each field overridden by ``CARE_GRAPH_<FIELD>`` (upper case) when set,
    and the cost budgets by ``CARE_GRAPH_COST_BUDGETS`` as ``role=N,…``."""
    defaults = Limits()
    sizes = {
        name: _positive_int_from_env(f"CARE_GRAPH_{name.upper()}", getattr(defaults, name))
        for name in defaults.__dataclass_fields__
        if name != "cost_budgets"
    }
    return Limits(**sizes, cost_budgets=_budgets_from_env("CARE_GRAPH_COST_BUDGETS"))


def _positive_int_from_env(name: str, default: int) -> int:
    value = _int_from_env(name, default)
    if value <= 0:
        raise ValueError(f"{name} must be at least 1, got {value}")
    return value


def _budgets_from_env(name: str) -> dict[Role, int]:
    budgets = _default_budgets()
    raw = os.environ.get(name, "")
    for part in filter(None, (piece.strip() for piece in raw.split(","))):
        role, _, amount = part.partition("=")
        try:
            budgets[Role(role.strip())] = int(amount)
        except ValueError:
            known = ", ".join(str(one) for one in Role)
            raise ValueError(f"{name}: {part!r} is not role=N with a role among {known}") from None
    return budgets


def _int_from_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {raw!r}") from None


def _float_from_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not value >= 0:
        raise ValueError(f"{name} must be 0 or more, got {raw!r}")
    return value


def _cost_model_from_env(name: str) -> CostModel:
    try:
        return CostModel.parse(os.environ.get(name, ""))
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None


def _flag_from_env(name: str, *, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {raw!r}")
