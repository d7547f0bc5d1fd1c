"""Progress lines and closing summaries for long jobs, written to stderr."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Reports each step of a job as it finishes, then a one-screen summary."""

    def __init__(self, job: str, stream: TextIO | None = None) -> None:
        self.job = job
        self.stream = stream or sys.stderr
        self.started = time.perf_counter()
        self._last = self.started
        self.steps: list[tuple[str, int, float]] = []

    def step(self, name: str, rows: int) -> None:
        """Record that ``name`` finished with ``rows`` rows, and say so."""
        now = time.perf_counter()
        elapsed = now - self._last
        self._last = now
        self.steps.append((name, rows, elapsed))
        print(
            f"[{self.job}] {name:<24} {rows:>10,} rows {elapsed:>8.2f} s",
            file=self.stream,
            flush=True,
        )

    def note(self, message: str) -> None:
        """Say something that is not a counted step."""
        self._last = time.perf_counter()
        print(f"[{self.job}] {message}", file=self.stream, flush=True)

    @property
    def elapsed(self) -> float:
        """Seconds since the job started."""
        return time.perf_counter() - self.started

    def summary(self, title: str) -> str:
        """The closing summary: total rows and time, the slowest steps."""
        total_rows = sum(rows for _, rows, _ in self.steps)
        slowest = sorted(self.steps, key=lambda step: -step[2])[:3]
        lines = [f"{title}: {total_rows:,} rows in {self.elapsed:.1f} s"]
        lines += [f"  slowest: {name} {seconds:.2f} s" for name, _, seconds in slowest]
        return "\n".join(lines)

    def bar(self, label: str, done: int, total: int, width: int = 30) -> None:
        """Show how far ``label`` has got: a bar redrawn in place on a terminal, or one line
        when it is done where the stream is a log."""
        total = max(total, 1)
        if self.stream.isatty():
            filled = width * done // total
            print(
                f"\r[{self.job}] {label:<28} [{'#' * filled}{'.' * (width - filled)}]"
                f" {done}/{total}",
                end="\n" if done >= total else "",
                file=self.stream,
                flush=True,
            )
        elif done >= total:
            print(f"[{self.job}] {label:<28} {done}/{total} done", file=self.stream, flush=True)
