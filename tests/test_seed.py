"""Demo data: deterministic, the requested size, loadable, and shaped like the real thing."""

from __future__ import annotations

from typing import Any

import asyncpg
import numpy as np
import pytest

from care_graph.errors import CareGraphError, ErrorCode
from care_graph.seed.generate import DemoData, generate
from care_graph.seed.load import load
from care_graph.seed.scales import SCALES
from care_graph.testing import ANCHOR, TEST_SEED


@pytest.fixture(scope="module")
def tiny() -> DemoData:
    return generate(SCALES["tiny"], seed=TEST_SEED, anchor=ANCHOR)


def column_values(data: DemoData) -> dict[tuple[str, str], list[Any]]:
    return {
        (table.name, name): (column.tolist() if isinstance(column, np.ndarray) else column)
        for table in data.tables
        for name, column in table.columns.items()
    }


def test_same_seed_gives_same_rows(tiny: DemoData) -> None:
    again = generate(SCALES["tiny"], seed=TEST_SEED, anchor=ANCHOR)
    assert column_values(again) == column_values(tiny)


def test_another_seed_gives_other_rows(tiny: DemoData) -> None:
    other = generate(SCALES["tiny"], seed=8, anchor=ANCHOR)
    assert (
        column_values(other)[("patients", "nhs_number")]
        != column_values(tiny)[("patients", "nhs_number")]
    )


def test_requested_counts(tiny: DemoData) -> None:
    scale = SCALES["tiny"].with_overrides(sites=50, staff=30, patients=222, referrals=333)
    counts = generate(scale, seed=1, anchor=ANCHOR).counts()
    assert (counts["sites"], counts["staff"], counts["patients"], counts["referrals"]) == (
        50,
        30,
        222,
        333,
    )
    assert counts["slots"] > counts["staff"] * 10  # rosters over two weeks make slots


def test_priority_mix_and_waiting_spread() -> None:
    data = generate(SCALES["demo"].with_overrides(staff=20, sites=40), seed=2, anchor=ANCHOR)
    referrals = data.table("referrals").columns
    priorities, counts = np.unique(np.asarray(referrals["priority"]), return_counts=True)
    share = dict(zip(priorities.tolist(), (counts / counts.sum()).tolist(), strict=True))
    assert share["URGENT"] == pytest.approx(0.05, abs=0.02)
    assert share["TWO_WEEK_WAIT"] == pytest.approx(0.15, abs=0.03)
    assert share["ROUTINE"] == pytest.approx(0.80, abs=0.03)
    breach = np.asarray(referrals["breach_date"])
    past_breach = (breach < np.datetime64(ANCHOR)).mean()
    assert 0.03 < past_breach < 0.4  # some already breached, most not


async def test_loaded_rows_match_generated_counts(seeded: asyncpg.Connection[Any]) -> None:
    expected = generate(SCALES["tiny"], seed=TEST_SEED, anchor=ANCHOR).counts()
    for table, rows in expected.items():
        assert await seeded.fetchval(f"SELECT count(*) FROM {table}") == rows, table


async def test_loaded_data_is_consistent(seeded: asyncpg.Connection[Any]) -> None:
    # every booked referral has exactly one booked appointment in a busy slot of its service
    mismatched = await seeded.fetchval("""
        SELECT count(*) FROM referrals r
        LEFT JOIN appointments a ON a.referral_id = r.id AND a.status = 'booked'
        LEFT JOIN slots s ON s.id = a.slot_id
        WHERE r.status = 'BOOKED'
          AND (a.id IS NULL OR s.status <> 'busy' OR s.service_id <> r.to_service_id)""")
    assert mismatched == 0
    # slots sit inside their shift, at the shift's site, for the shift's service
    outside = await seeded.fetchval("""
        SELECT count(*) FROM slots s JOIN roster_shifts h ON h.id = s.shift_id
        WHERE NOT (h.during @> s.during) OR h.site_id <> s.site_id
           OR h.service_id <> s.service_id OR h.staff_id <> s.staff_id""")
    assert outside == 0
    # staff only deliver services they are skilled in
    unskilled = await seeded.fetchval("""
        SELECT count(*) FROM roster_shifts h JOIN services v ON v.id = h.service_id
        WHERE NOT EXISTS (SELECT 1 FROM staff_skills k
                          WHERE k.staff_id = h.staff_id AND k.skill_code = v.code)""")
    assert unskilled == 0
    # clinics run in UK working hours (Europe/London), on weekdays
    odd_hours = await seeded.fetchval("""
        SELECT count(*) FROM roster_shifts
        WHERE extract(hour FROM starts_at AT TIME ZONE 'Europe/London') NOT IN (9, 13)
           OR extract(isodow FROM starts_at AT TIME ZONE 'Europe/London') > 5""")
    assert odd_hours == 0


async def test_some_regions_are_short_of_capacity_and_some_are_not(
    seeded: asyncpg.Connection[Any],
) -> None:
    rows = await seeded.fetch("""
        WITH demand AS (
            SELECT s.region_code, count(*) AS waiting
            FROM referrals r JOIN patients p ON p.id = r.patient_id
            JOIN LATERAL (SELECT region_code FROM sites
                          ORDER BY great_circle_km(p.latitude, p.longitude, latitude, longitude)
                          LIMIT 1) s ON true
            WHERE r.status IN ('ACCEPTED', 'SUBMITTED') GROUP BY 1),
        supply AS (
            SELECT t.region_code, count(*) AS free
            FROM slots s JOIN sites t ON t.id = s.site_id JOIN services v ON v.id = s.service_id
            WHERE s.status = 'free' AND v.kind = 'SPECIALTY' GROUP BY 1)
        SELECT region_code, waiting, coalesce(free, 0) AS free
        FROM demand LEFT JOIN supply USING (region_code)""")
    ratios = {row["region_code"]: row["free"] / row["waiting"] for row in rows}
    assert min(ratios.values()) < 1.0 < max(ratios.values()), ratios


async def test_loading_over_existing_data_is_refused(seeded: asyncpg.Connection[Any]) -> None:
    with pytest.raises(CareGraphError) as caught:
        await load(seeded, generate(SCALES["tiny"], seed=1, anchor=ANCHOR))
    assert caught.value.code is ErrorCode.INVALID_ARGUMENT
    assert "--replace" in caught.value.message


async def test_replace_empties_first(seeded: asyncpg.Connection[Any]) -> None:
    data = generate(SCALES["tiny"].with_overrides(referrals=77), seed=1, anchor=ANCHOR)
    await load(seeded, data, replace=True)
    assert await seeded.fetchval("SELECT count(*) FROM referrals") == 77
