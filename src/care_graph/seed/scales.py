"""Named sizes of demo data; any count can be overridden from the command line."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Scale:
    """How much demo data to make. Slots follow from staff and weeks (rosters make slots)."""

    sites: int
    staff: int
    patients: int
    referrals: int
    weeks: int

    def with_overrides(self, **counts: int | None) -> Scale:
        """This scale with the given counts replaced (None leaves a count as it is)."""
        return replace(self, **{name: value for name, value in counts.items() if value is not None})


SCALES: dict[str, Scale] = {
    # a few hundred rows: the test suite's size
    "tiny": Scale(sites=40, staff=45, patients=400, referrals=500, weeks=2),
    # what `care-graph serve` loads on first run: ~60,000 slots, 8,000 referrals
    "demo": Scale(sites=140, staff=110, patients=6_000, referrals=8_000, weeks=8),
    # one large region's worth: ~500,000 slots, ~100,000 open referrals
    "region": Scale(sites=420, staff=800, patients=80_000, referrals=110_000, weeks=8),
}
