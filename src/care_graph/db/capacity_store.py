"""The capacity outlook's SQL, written once: for one region, each service and week from the
clinics' current week, what waits (by priority and weeks waited), what arrives, what is on
offer, booked and unused, and what breaches. GraphQL's ``capacityOutlook`` compiles it into
its statement (api/lists.py) and ``care-graph outlook`` runs it as it is, so both give the
same numbers. docs/capacity.md defines every figure.

Its rules come from where they are written: what waits from ``bookable.referral_waits``, days
on the clinics' calendar from clinic_time.py, appointment statuses from domain/statuses.py.
"""

from __future__ import annotations

from typing import Any

from care_graph.clinic_time import TODAY_SQL, day_sql, midnight_sql
from care_graph.db import bookable
from care_graph.db.pool import Connection
from care_graph.domain.statuses import (
    ATTENDANCE_RECORDED,
    OPEN_APPOINTMENT,
    AppointmentStatus,
    SlotStatus,
    sql_list,
)

DEFAULT_WEEKS = 8
MAX_WEEKS = 52  # a year ahead; GraphQL refuses more with BAD_USER_INPUT, the CLI as a usage error
# whole weeks waited at which each band of the waiting list starts: RTT-style 0-6, 6-12, 12-18
# and 18 weeks or more (18 weeks is the referral-to-treatment standard)
WAIT_BANDS_WEEKS = (6, 12, 18)
# the whole weeks before the current one whose arrivals make the expected weekly arrivals
ARRIVAL_WEEKS = 4

# an appointment that kept its slot: in play, attended, or not attended (the slot was booked
# and then lost to non-attendance); cancelled and entered-in-error ones gave it back
_KEPT = sql_list((*OPEN_APPOINTMENT, *ATTENDANCE_RECORDED))
_NOT_ATTENDED = f"'{AppointmentStatus.NOSHOW.value}'"
# slots that were never on offer: made in error, or taken out of use (a clinic closed)
_NOT_OFFERED = sql_list((SlotStatus.ENTERED_IN_ERROR, SlotStatus.BUSY_UNAVAILABLE))
_MONDAY = f"(date_trunc('week', {TODAY_SQL})::date)"  # the current week's Monday
_PRIORITIES = ("URGENT", "TWO_WEEK_WAIT", "ROUTINE")

WAIT_BANDS = (
    "waited_under_6_weeks",
    "waited_6_to_12_weeks",
    "waited_12_to_18_weeks",
    "waited_18_weeks_or_more",
)
# the outlook's columns, in order: what GraphQL's CapacityWeek fields and the CLI read
COLUMNS = (
    "service_code",
    "week_starting",
    "arrived",
    "expected_arrivals",
    "slots_offered",
    "slots_booked",
    "slots_not_attended",
    "slots_unused",
    "slots_free",
    "utilisation",
    "breaches_ahead",
    "waiting",
    "waiting_urgent",
    "waiting_two_week_wait",
    "waiting_routine",
    "waited_under_6_weeks",
    "waited_6_to_12_weeks",
    "waited_12_to_18_weeks",
    "waited_18_weeks_or_more",
    "waited_weeks_p92",
    "breaches_so_far",
)
# the figures that describe the waiting list as it stands now: on the current week's row only
SNAPSHOT = COLUMNS[COLUMNS.index("waiting") :]


def outlook_sql(region: str, service: str, weeks: str) -> str:
    """The outlook as one query, its arguments SQL expressions (bind placeholders): ``region``
    a region code, ``service`` a service code or null for every service, ``weeks`` how many
    weeks from the current one. One row per service and week, ordered by service code and week,
    numbered ``id`` in that order, with the service's ``service_id`` and the ``COLUMNS``."""
    waits = bookable.referral_waits("r")
    of_region = f"p.region_code = {region}::text"
    counted_days = f"({TODAY_SQL} - {day_sql('r.clock_start')})"
    bands = _wait_bands("w.days_waited")
    priorities = ", ".join(
        f"count(*) FILTER (WHERE w.priority = '{code}') AS waiting_{code.lower()}"
        for code in _PRIORITIES
    )
    outlook_end = midnight_sql(f"({_MONDAY} + 7 * {weeks}::int)")
    snapshot = ", ".join(
        f"CASE WHEN wk.n = 0 THEN {_snapshot_value(name)} END AS {name}" for name in SNAPSHOT
    )
    return f"""
WITH weeks AS (
    SELECT n, {_MONDAY} + 7 * n AS week_starting FROM generate_series(0, {weeks}::int - 1) AS n
), shown AS (
    SELECT v.id, v.code FROM services v
    WHERE ({service}::text IS NULL OR v.code = {service}::text)
      AND (EXISTS (SELECT 1 FROM site_services ss JOIN sites st ON st.id = ss.site_id
                   WHERE ss.service_id = v.id AND st.region_code = {region}::text)
           OR EXISTS (SELECT 1 FROM referrals r JOIN patients p ON p.id = r.patient_id
                      WHERE r.to_service_id = v.id AND {of_region}))
), waiting AS (
    SELECT r.to_service_id AS service_id, r.priority, r.breach_date, {counted_days} AS days_waited
    FROM referrals r JOIN patients p ON p.id = r.patient_id
    WHERE {of_region} AND {waits} AND r.to_service_id IN (SELECT id FROM shown)
), waiting_now AS (
    SELECT w.service_id, count(*) AS waiting, {priorities}, {bands},
           percentile_disc(0.92) WITHIN GROUP (ORDER BY w.days_waited / 7) AS waited_weeks_p92,
           count(*) FILTER (WHERE w.breach_date < {TODAY_SQL}) AS breaches_so_far
    FROM waiting w GROUP BY w.service_id
), breaching AS (
    SELECT w.service_id, date_trunc('week', w.breach_date)::date AS week_starting,
           count(*) AS breaches_ahead
    FROM waiting w WHERE w.breach_date >= {TODAY_SQL} GROUP BY 1, 2
), arrivals AS (
    SELECT r.to_service_id AS service_id,
           date_trunc('week', {day_sql("r.received_at")})::date AS week_starting,
           count(*) AS arrived
    FROM referrals r JOIN patients p ON p.id = r.patient_id
    WHERE {of_region} AND r.to_service_id IN (SELECT id FROM shown)
      AND r.received_at >= {midnight_sql(f"({_MONDAY} - 7 * {ARRIVAL_WEEKS})")}
    GROUP BY 1, 2
), offered AS (
    SELECT s.service_id, date_trunc('week', {day_sql("s.starts_at")})::date AS week_starting,
           count(*) AS slots_offered,
           count(*) FILTER (WHERE s.kept) AS slots_booked,
           count(*) FILTER (WHERE s.not_attended) AS slots_not_attended,
           count(*) FILTER (WHERE NOT s.kept AND s.starts_at <= now()) AS slots_unused,
           count(*) FILTER (WHERE NOT s.kept AND s.starts_at > now()) AS slots_free
    FROM (
        SELECT s.service_id, s.starts_at,
               EXISTS (SELECT 1 FROM appointments a WHERE a.slot_id = s.id
                       AND a.status IN {_KEPT}) AS kept,
               EXISTS (SELECT 1 FROM appointments a WHERE a.slot_id = s.id
                       AND a.status = {_NOT_ATTENDED}) AS not_attended
        FROM slots s
        WHERE s.site_id IN (SELECT id FROM sites WHERE region_code = {region}::text)
          AND s.service_id IN (SELECT id FROM shown)
          AND s.starts_at >= {midnight_sql(_MONDAY)} AND s.starts_at < {outlook_end}
          AND s.status NOT IN {_NOT_OFFERED}
    ) s
    GROUP BY 1, 2
), expected AS (
    SELECT a.service_id, round(sum(a.arrived)::numeric / {ARRIVAL_WEEKS}, 1)::float8
           AS expected_arrivals
    FROM arrivals a WHERE a.week_starting < {_MONDAY} GROUP BY a.service_id
)
SELECT row_number() OVER (ORDER BY v.code, wk.n) AS id, v.id AS service_id,
       v.code AS service_code, wk.week_starting,
       CASE WHEN wk.week_starting <= {TODAY_SQL} THEN coalesce(a.arrived, 0) END AS arrived,
       coalesce(e.expected_arrivals, 0)::float8 AS expected_arrivals,
       coalesce(o.slots_offered, 0) AS slots_offered,
       coalesce(o.slots_booked, 0) AS slots_booked,
       coalesce(o.slots_not_attended, 0) AS slots_not_attended,
       coalesce(o.slots_unused, 0) AS slots_unused,
       coalesce(o.slots_free, 0) AS slots_free,
       round(o.slots_booked::numeric / nullif(o.slots_offered, 0), 4)::float8 AS utilisation,
       coalesce(b.breaches_ahead, 0) AS breaches_ahead,
       {snapshot}
FROM shown v CROSS JOIN weeks wk
LEFT JOIN waiting_now q ON q.service_id = v.id
LEFT JOIN arrivals a ON a.service_id = v.id AND a.week_starting = wk.week_starting
LEFT JOIN expected e ON e.service_id = v.id
LEFT JOIN offered o ON o.service_id = v.id AND o.week_starting = wk.week_starting
LEFT JOIN breaching b ON b.service_id = v.id AND b.week_starting = wk.week_starting
"""


def _wait_bands(days: str) -> str:
    """Counts of the waiting list by whole weeks waited (``days`` // 7), one column a band."""
    edges = [None, *(7 * weeks for weeks in WAIT_BANDS_WEEKS), None]
    parts = []
    for name, low, high in zip(WAIT_BANDS, edges[:-1], edges[1:], strict=True):
        conditions = [
            *([] if low is None else [f"{days} >= {low}"]),
            *([] if high is None else [f"{days} < {high}"]),
        ]
        parts.append(f"count(*) FILTER (WHERE {' AND '.join(conditions)}) AS {name}")
    return ", ".join(parts)


def _snapshot_value(name: str) -> str:
    """A waiting-list figure of the current week's row: zero when nothing waits (the
    percentile has no value then)."""
    return f"q.{name}" if name == "waited_weeks_p92" else f"coalesce(q.{name}, 0)"


async def read_outlook(
    connection: Connection, region: str, service: str | None, weeks: int
) -> list[dict[str, Any]]:
    """The outlook's rows for one region (and service, or all), ``weeks`` weeks from the
    current one, in order, each the ``COLUMNS`` by name: the same query GraphQL's
    capacityOutlook compiles."""
    rows = await connection.fetch(
        f"SELECT {', '.join(COLUMNS)} FROM ({outlook_sql('$1', '$2', '$3')}) o ORDER BY o.id",
        region,
        service,
        weeks,
    )
    return [dict(row) for row in rows]


async def region_exists(connection: Connection, region: str) -> bool:
    """Whether ``region`` is a region's code (the outlook of an unknown one is empty)."""
    found: bool = await connection.fetchval(
        "SELECT EXISTS (SELECT 1 FROM regions WHERE code = $1)", region
    )
    return found
