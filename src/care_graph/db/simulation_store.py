"""The SQL of simulation: what a region's waiting list is simulated from, read as arrays by
COPY. Nothing here writes; the simulator works on its own copy (care_graph.simulation)."""

from __future__ import annotations

from datetime import date

from care_graph.clinic_time import CLINIC_ZONE, TODAY_SQL, day_sql
from care_graph.db import bookable
from care_graph.db.arrays import fetch_columns
from care_graph.db.matching_store import Arrays, code_array, scoped
from care_graph.db.pool import Connection
from care_graph.domain.statuses import SlotStatus

_IN_REGION = (
    " AND ($1::text[] IS NULL OR s.service_id IN (SELECT id FROM services"
    " WHERE code = ANY($1::text[])))"
    " AND s.site_id IN (SELECT id FROM sites WHERE region_code = ANY($2::text[]))"
)


async def rostered_slots(connection: Connection, region: str, services: list[str] | None) -> Arrays:
    """Every slot of the region from now on that a roster put on offer (not blocked, not
    entered in error), booked or not: the published capacity. ``open`` is 1 where the slot
    may be booked now, 0 where it is taken; ``minute_of_day`` is when it starts on the
    clinics' clock."""
    withdrawn = ", ".join(
        f"'{status.value}'" for status in (SlotStatus.BUSY_UNAVAILABLE, SlotStatus.ENTERED_IN_ERROR)
    )
    query = scoped(
        "SELECT s.id::int8, s.service_id::int4, s.site_id::int4, s.staff_id::int4,"
        " (extract(epoch FROM s.starts_at - now()) / 60)::int8,"
        f" ({day_sql('s.starts_at')} - {TODAY_SQL})::int4,"
        f" ({bookable.slot_open('s')})::int4,"
        f" (extract(epoch FROM (s.starts_at AT TIME ZONE '{CLINIC_ZONE}')::time) / 60)::int4"
        f" FROM slots s WHERE s.starts_at > now() AND s.status NOT IN ({withdrawn})"
        + _IN_REGION
        + " ORDER BY s.starts_at, s.id",
        services,
        [region],
    )
    return await fetch_columns(
        connection,
        query,
        [
            ("id", "int8"),
            ("service", "int4"),
            ("site", "int4"),
            ("staff", "int4"),
            ("minutes_from_now", "int8"),
            ("days_until", "int4"),
            ("open", "int4"),
            ("minute_of_day", "int4"),
        ],
    )


async def recent_arrivals(
    connection: Connection,
    region: str,
    services: list[str] | None,
    priorities: list[str],
    lookback_days: int,
) -> Arrays:
    """How many referrals the region's patients were referred with in the last
    ``lookback_days`` days, by service and tier (a position in ``priorities``), whatever
    became of them since: the recorded arrival rates."""
    query = scoped(
        "SELECT r.to_service_id::int4,"
        f" (array_position({code_array(priorities)}::text[], r.priority) - 1)::int4,"
        " count(*)::int8"
        " FROM referrals r JOIN patients p ON p.id = r.patient_id"
        f" WHERE {day_sql('r.received_at')} > {TODAY_SQL} - {int(lookback_days)}"
        f" AND {day_sql('r.received_at')} <= {TODAY_SQL}"
        " AND p.region_code = ANY($2::text[])"
        " AND ($1::text[] IS NULL OR r.to_service_id IN (SELECT id FROM services"
        " WHERE code = ANY($1::text[])))"
        " GROUP BY 1, 2 ORDER BY 1, 2",
        services,
        [region],
    )
    return await fetch_columns(
        connection, query, [("service", "int4"), ("tier", "int4"), ("count", "int8")]
    )


async def services(connection: Connection) -> list[tuple[str, int, int]]:
    """Every service: (code, id, slot minutes)."""
    rows = await connection.fetch("SELECT code, id, slot_minutes FROM services ORDER BY id")
    return [(row["code"], row["id"], row["slot_minutes"]) for row in rows]


async def clinic_now(connection: Connection) -> tuple[date, int]:
    """The clinics' today, and the minutes since their midnight."""
    row = await connection.fetchrow(
        f"SELECT {TODAY_SQL} AS today, (extract(epoch FROM (now() AT TIME ZONE"
        f" '{CLINIC_ZONE}')::time) / 60)::int AS minute"
    )
    assert row is not None
    return row["today"], row["minute"]
