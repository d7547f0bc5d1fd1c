"""Settings read from the environment, in one place, with their defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from care_graph.matching.cost import CostModel


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
    development: bool
    introspection: bool
    anonymous_role: str | None
    cost_model: CostModel
    sweep_seconds: float  # how often lapsed holds are offered on; 0: never (tests, tools)

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
            development=development,
            introspection=_flag_from_env("CARE_GRAPH_INTROSPECTION", default=development),
            anonymous_role=os.environ.get("CARE_GRAPH_ANONYMOUS_ROLE") or None,
            cost_model=_cost_model_from_env("CARE_GRAPH_MATCH_WEIGHTS"),
            sweep_seconds=_float_from_env("CARE_GRAPH_SWEEP_SECONDS", 15.0),
        )


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
