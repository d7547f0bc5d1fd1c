"""The SQL of matching: what is waiting and what is free, in a scope, read as arrays."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from care_graph.clinic_time import TODAY_SQL, day_sql
from care_graph.db import bookable
from care_graph.db.arrays import fetch_columns
from care_graph.db.live import OFFERS
from care_graph.db.pool import Connection
from care_graph.errors import CareGraphError, ErrorCode

Arrays = dict[str, npt.NDArray[Any]]

_SCOPE_REFERRALS = (
    " AND ($1::text[] IS NULL OR r.to_service_id IN (SELECT id FROM services"
    " WHERE code = ANY($1::text[])))"
    " AND ($2::text[] IS NULL OR p.region_code = ANY($2::text[]))"
)
_SCOPE_SLOTS = (
    " AND ($1::text[] IS NULL OR s.service_id IN (SELECT id FROM services"
    " WHERE code = ANY($1::text[])))"
    " AND ($2::text[] IS NULL OR s.site_id IN (SELECT id FROM sites"
    " WHERE region_code = ANY($2::text[])))"
)


def code_array(values: list[str] | None) -> str:
    """A text[] literal for COPY, which takes no bind parameters (codes are [A-Z0-9_])."""
    if values is None:
        return "NULL"
    for value in values:
        if not value.replace("_", "").isalnum():
            raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"not a code: {value!r}")
    return "ARRAY[" + ",".join(f"'{value}'" for value in values) + "]"


def scoped(sql: str, services: list[str] | None, regions: list[str] | None) -> str:
    """``sql`` with its ``$1`` (service codes) and ``$2`` (region codes) written in as
    literals, for COPY."""
    return sql.replace("$1::text[]", f"{code_array(services)}::text[]").replace(
        "$2::text[]", f"{code_array(regions)}::text[]"
    )


async def waiting_referrals(
    connection: Connection,
    services: list[str] | None,
    regions: list[str] | None,
    skills: list[str],
    priorities: list[str],
) -> Arrays:
    """Accepted referrals with no appointment in play and no offer awaiting an answer, with
    their patient's home; tiers and skills are positions in ``priorities`` and ``skills``."""
    query = scoped(
        "SELECT r.id::int8, r.to_service_id::int4,"
        f" (array_position({code_array(priorities)}::text[], r.priority) - 1)::int4,"
        f" ({TODAY_SQL} - {day_sql('r.clock_start')})::int4,"
        f" (r.breach_date - {TODAY_SQL})::int4,"
        f" coalesce(r.earliest_date - {TODAY_SQL}, -100000)::int4,"
        " coalesce(r.max_travel_km, 1e9)::float8,"
        f" coalesce(array_position({code_array(skills)}::text[], r.required_skill) - 1,"
        " -1)::int4,"
        " p.latitude::float8, p.longitude::float8"
        " FROM referrals r JOIN patients p ON p.id = r.patient_id"
        f" WHERE {bookable.referral_waits('r')} AND NOT {bookable.awaits_offer_answer('r')}"
        + _SCOPE_REFERRALS
        + " ORDER BY r.id",
        services,
        regions,
    )
    return await fetch_columns(
        connection,
        query,
        [
            ("id", "int8"),
            ("service", "int4"),
            ("tier", "int4"),
            ("waited_days", "int4"),
            ("days_to_breach", "int4"),
            ("earliest_day", "int4"),
            ("max_km", "float8"),
            ("skill", "int4"),
            ("latitude", "float8"),
            ("longitude", "float8"),
        ],
    )


async def preferred_sites(
    connection: Connection, services: list[str] | None, regions: list[str] | None
) -> Arrays:
    """(referral, site) for every site a waiting referral's patient asked for, by referral."""
    query = scoped(
        "SELECT r.id::int8, unnest(r.preferred_site_ids)::int4"
        " FROM referrals r JOIN patients p ON p.id = r.patient_id"
        f" WHERE {bookable.referral_waits('r')} AND cardinality(r.preferred_site_ids) > 0"
        + _SCOPE_REFERRALS
        + " ORDER BY 1, 2",
        services,
        regions,
    )
    return await fetch_columns(connection, query, [("referral", "int8"), ("site", "int4")])


async def free_slots(
    connection: Connection,
    services: list[str] | None,
    regions: list[str] | None,
    horizon_days: int,
    site_ids: list[int] | None = None,
) -> Arrays:
    """Slots open to anyone (free, or held with a lapsed hold) from now to the horizon, at
    ``site_ids`` only when given."""
    sites_wanted = (
        ""
        if site_ids is None
        else (
            " AND s.site_id = ANY(ARRAY["
            + ",".join(str(int(site)) for site in site_ids)
            + "]::int[])"
        )
    )
    query = scoped(
        "SELECT s.id::int8, s.service_id::int4, s.site_id::int4, s.staff_id::int4,"
        " (extract(epoch FROM s.starts_at - now()) / 60)::int8,"
        f" ({day_sql('s.starts_at')} - {TODAY_SQL})::int4"
        f" FROM slots s WHERE {bookable.slot_open('s')} AND s.starts_at > now()"
        f" AND s.starts_at < now() + interval '{int(horizon_days)} days'"
        + _SCOPE_SLOTS
        + sites_wanted
        + " ORDER BY s.id",
        services,
        regions,
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
        ],
    )


async def sites(connection: Connection) -> Arrays:
    """Every site's position."""
    return await fetch_columns(
        connection,
        "SELECT id::int4, latitude::float8, longitude::float8 FROM sites ORDER BY id",
        [("id", "int4"), ("latitude", "float8"), ("longitude", "float8")],
    )


async def staff_skill_masks(connection: Connection, skills: list[str]) -> Arrays:
    """Each staff member's skills as a bit mask over ``skills``."""
    return await fetch_columns(
        connection,
        "SELECT staff_id::int4, coalesce(sum(1::int8 << (array_position("
        f"{code_array(skills)}::text[], skill_code) - 1)), 0)::int8"
        " FROM staff_skills GROUP BY staff_id ORDER BY staff_id",
        [("staff", "int4"), ("mask", "int8")],
    )


async def skill_codes(connection: Connection) -> list[str]:
    """Every skill code, in a fixed order (their bit positions)."""
    rows = await connection.fetch("SELECT code FROM skills ORDER BY code")
    codes = [row["code"] for row in rows]
    if len(codes) > 62:
        raise ValueError("more than 62 skills do not fit a 64-bit mask")
    return codes


async def candidates_for_slots(
    connection: Connection, slot_ids: list[int], excluded_referrals: list[int]
) -> list[Any]:
    """Each (open slot, waiting referral — as ``waiting_referrals`` has them) pair that
    keeps every booking rule (db/bookable.py), but for referrals in ``excluded_referrals``;
    and what the cost model weighs. Only referrals whose reach box holds the slot's site are
    looked at (migration 0011), found through their index."""
    rows: list[Any] = await connection.fetch(
        """
        WITH freed AS (
            SELECT id, service_id, site_id, staff_id, starts_at FROM slots
            WHERE id = ANY($1::bigint[]) AND """
        + bookable.slot_open("slots")
        + """ AND starts_at > now()),
        places AS (
            SELECT DISTINCT f.service_id, t.id AS site_id, t.latitude, t.longitude
            FROM freed f JOIN sites t ON t.id = f.site_id),
        reach AS MATERIALIZED (  -- each waiting referral near a freed slot's site, measured
            SELECT r.id, r.priority, r.to_service_id, r.clock_start, r.breach_date,
                   r.earliest_date, r.required_skill, r.preferred_site_ids, l.site_id,
                   great_circle_km(p.latitude, p.longitude, l.latitude, l.longitude) AS km,
                   r.max_travel_km
            FROM places l
            JOIN referrals r ON r.to_service_id = l.service_id
             AND r.reach @> box(point(l.longitude, l.latitude), point(l.longitude, l.latitude))
            -- each patient by key: OFFSET 0 keeps the planner from hashing the whole
            -- patients table for a few thousand lookups
            CROSS JOIN LATERAL (SELECT latitude, longitude FROM patients
                                WHERE id = r.patient_id OFFSET 0) p
            WHERE r.id <> ALL($2::bigint[]) AND """
        + bookable.referral_waits("r")
        + " AND NOT "
        + bookable.awaits_offer_answer("r")
        + f""")
        SELECT s.id AS slot_id, w.id, w.priority,
               ({TODAY_SQL} - {day_sql("w.clock_start")}) AS waited_days,
               (w.breach_date - {TODAY_SQL}) AS days_to_breach,
               ({day_sql("s.starts_at")} - {TODAY_SQL}) AS days_until,
               w.km, s.site_id = ANY(w.preferred_site_ids) AS preferred
        FROM freed s
        JOIN reach w ON w.site_id = s.site_id AND w.to_service_id = s.service_id
        WHERE {bookable.within_travel("w", "w.km")}
          AND {bookable.not_before_earliest("w", "s")} AND {bookable.skill_held("w", "s")}
        ORDER BY w.id, s.id
        """,
        slot_ids,
        excluded_referrals,
    )
    return rows


async def serialize_offers(connection: Connection, slot_ids: list[int]) -> None:
    """Make offers of the same services' slots wait for each other until commit, so that two
    at once cannot both choose the same waiting referral (a referral has one service)."""
    await connection.execute(
        "SELECT pg_advisory_xact_lock(hashtext('care_graph.offers'), service_id)"
        " FROM (SELECT DISTINCT service_id FROM slots WHERE id = ANY($1::bigint[])"
        " ORDER BY service_id) s",
        slot_ids,
    )


async def announce_offer(connection: Connection, slot_id: int, referral_id: int) -> None:
    """Tell subscribers (at commit) that a slot is being offered to a referral."""
    await connection.execute(
        f"SELECT pg_notify('{OFFERS}', json_build_object('slot', s.id,"
        " 'referral', r.id, 'patient', r.patient_id, 'referrer', r.referrer_subject,"
        " 'expires', s.hold_expires_at, 'startsAt', s.starts_at)::text)"
        " FROM slots s, referrals r WHERE s.id = $1 AND r.id = $2",
        slot_id,
        referral_id,
    )


async def save_plan(
    connection: Connection,
    key: str,
    proposed_by: str,
    pairs: list[tuple[int, int]],
    shown: dict[str, Any],
) -> None:
    """Keep a proposed plan under its key, and let go of plans a week past proposing."""
    await connection.execute(
        "DELETE FROM matching_plans WHERE proposed_at < now() - interval '7 days'"
    )
    await connection.execute(
        "INSERT INTO matching_plans (key, proposed_by, referral_ids, slot_ids, shown)"
        " VALUES ($1, $2, $3::bigint[], $4::bigint[], $5)",
        key,
        proposed_by,
        [referral for referral, _ in pairs],
        [slot for _, slot in pairs],
        shown,
    )


async def load_plan(connection: Connection, key: str) -> Any:
    """A kept plan's pairs, what was shown of it, and its age in hours; None if unknown."""
    return await connection.fetchrow(
        "SELECT referral_ids, slot_ids, shown,"
        " extract(epoch FROM now() - proposed_at) / 3600 AS age_hours"
        " FROM matching_plans WHERE key = $1",
        key,
    )
