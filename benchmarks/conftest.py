"""Benchmark options: ``--smoke`` runs every benchmark once at a tiny size (what CI does)."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--smoke",
        action="store_true",
        help="Run each benchmark once at a tiny size: proves it works, measures nothing.",
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


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    lines = config.stash.get(SUMMARY, [])
    if lines:
        terminalreporter.section("care_graph benchmark summary")
        for line in lines:
            terminalreporter.write_line(line)
