"""The SQL of rosters as the rostering rules read them: staff terms (skills, sites, contracted
hours, leave) and shifts on the clinics' calendar (care_graph.domain.rostering)."""

from __future__ import annotations

from datetime import date

from care_graph.clinic_time import CLINIC_ZONE, day_sql
from care_graph.db.pool import Connection
from care_graph.domain.rostering import Shift, StaffTerms

_TERMS = (
    "SELECT s.id, s.base_site_id, s.contracted_minutes_week,"
    " ARRAY(SELECT skill_code FROM staff_skills k WHERE k.staff_id = s.id ORDER BY 1) AS skills,"
    " ARRAY(SELECT site_id FROM staff_sites w WHERE w.staff_id = s.id ORDER BY 1) AS sites,"
    " ARRAY(SELECT ARRAY[l.first_day - DATE '0001-01-01' + 1, l.last_day - DATE '0001-01-01' + 1]"
    "  FROM staff_leave l WHERE l.staff_id = s.id AND l.last_day >= $2 ORDER BY l.first_day)"
    " AS leave"
    " FROM staff s"
)
_SHIFTS = (
    f"SELECT staff_id, {day_sql('starts_at')} - DATE '0001-01-01' + 1 AS day,"
    f" (extract(epoch FROM (starts_at AT TIME ZONE '{CLINIC_ZONE}')::time) / 60)::int AS starts,"
    " (extract(epoch FROM ends_at - starts_at) / 60)::int AS minutes"
    " FROM roster_shifts WHERE staff_id = ANY($1::int[])"
    f" AND {day_sql('starts_at')} BETWEEN $2 AND $3 ORDER BY staff_id, starts_at"
)


def _terms(row: object) -> StaffTerms:
    values = dict(row)  # type: ignore[call-overload]
    return StaffTerms(
        staff=values["id"],
        base_site=values["base_site_id"],
        skills=frozenset(values["skills"]),
        other_sites=frozenset(values["sites"]),
        contracted_minutes_week=values["contracted_minutes_week"],
        leave=tuple((first, last) for first, last in values["leave"]),
    )


async def lock_staff_terms(connection: Connection, staff_id: int, today: date) -> StaffTerms | None:
    """One staff member's terms, their row locked until the transaction ends so that two
    rosters published for them at once are checked one after the other."""
    row = await connection.fetchrow(_TERMS + " WHERE s.id = $1 FOR NO KEY UPDATE", staff_id, today)
    return None if row is None else _terms(row)


async def region_staff_terms(connection: Connection, region: str, today: date) -> list[StaffTerms]:
    """The terms of every staff member who may work at one of the region's sites."""
    rows = await connection.fetch(
        _TERMS + " WHERE s.base_site_id IN (SELECT id FROM sites WHERE region_code = $1)"
        " OR s.id IN (SELECT staff_id FROM staff_sites WHERE site_id IN"
        " (SELECT id FROM sites WHERE region_code = $1)) ORDER BY s.id",
        region,
        today,
    )
    return [_terms(row) for row in rows]


async def shifts_between(
    connection: Connection, staff_ids: list[int], first_day: date, last_day: date
) -> dict[int, list[Shift]]:
    """The shifts of these staff starting on the clinics' days ``first_day`` to ``last_day``,
    by staff member."""
    rows = await connection.fetch(_SHIFTS, staff_ids, first_day, last_day)
    shifts: dict[int, list[Shift]] = {}
    for row in rows:
        shift = Shift(row["day"], row["starts"], row["starts"] + row["minutes"])
        shifts.setdefault(row["staff_id"], []).append(shift)
    return shifts


async def site_services(connection: Connection, region: str | None = None) -> set[tuple[int, int]]:
    """(site, service id) pairs the sites offer (of one region's sites, when given)."""
    rows = await connection.fetch(
        "SELECT site_id, service_id FROM site_services WHERE $1::text IS NULL"
        " OR site_id IN (SELECT id FROM sites WHERE region_code = $1)",
        region,
    )
    return {(row["site_id"], row["service_id"]) for row in rows}
