"""The soak run (benchmarks/soak.py) from pytest: 15 seconds on the tiny scale with --smoke,
which proves the harness and the server's bookkeeping (no connection left open, no uncoded
answer) and judges no drift; the default 10 minutes at the demo scale otherwise."""

from __future__ import annotations

from pathlib import Path

from benchmarks.soak import UNCODED, Options, run, summary
from care_graph.testing import DatabaseFactory


def test_soak(databases: DatabaseFactory, smoke: bool, report: list[str], tmp_path: Path) -> None:
    options = (
        Options(seconds=15, scale="tiny", clients=4, subscribers=2)
        if smoke
        else Options(seconds=600)
    )
    result = run(options, databases, tmp_path)
    report.append(summary(result))
    assert len(result.windows) >= 5
    assert result.codes["OK"] > 0
    assert result.subscriptions >= options.subscribers
    assert result.events > 0  # the subscribers heard the bookings
    assert result.codes[UNCODED] == 0, result.codes
    assert result.leaked == 0, (result.client_connections_left, result.backends_left)
    assert result.misses() == []
