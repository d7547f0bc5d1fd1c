"""The SQL of booking: locking, reading and writing referrals, slots, appointments, holds,
idempotency keys and audit events. Rows are always locked in the same order — referral, then
slot, then appointment — so that concurrent bookings cannot deadlock on each other."""

from __future__ import annotations

from typing import Any

import asyncpg

from care_graph.db import bookable, live
from care_graph.db.pool import Connection
from care_graph.domain.lifecycle import ReferralStatus
from care_graph.domain.statuses import AppointmentStatus, SlotStatus


async def lock_referral(connection: Connection, referral_id: int) -> asyncpg.Record | None:
    """The referral row, locked for update (None when there is none)."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT id, status, to_service_id, patient_id FROM referrals WHERE id = $1 FOR UPDATE",
        referral_id,
    )
    return row


async def lock_slot(connection: Connection, slot_id: int) -> asyncpg.Record | None:
    """The slot row, locked for update (None when there is none)."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT id, status, service_id, site_id, held_for_referral_id, starts_at,"
        " hold_expires_at FROM slots WHERE id = $1 FOR UPDATE",
        slot_id,
    )
    return row


async def held_slot(connection: Connection, referral_id: int) -> tuple[int, bool] | None:
    """The slot held for a referral (the latest, if ever several), and whether the hold is
    still live; None when none is held."""
    row = await connection.fetchrow(
        f"SELECT id, {bookable.live_hold('s')} AS live FROM slots s"
        f" WHERE held_for_referral_id = $1 AND status = '{SlotStatus.BUSY_TENTATIVE}'"
        " ORDER BY hold_expires_at DESC LIMIT 1",
        referral_id,
    )
    return None if row is None else (row["id"], row["live"])


async def broken_rules(
    connection: Connection, referral_id: int, slot_id: int
) -> list[bookable.Rule]:
    """The booking rules this (referral, slot) pair breaks, in the order they are reported."""
    row = await connection.fetchrow(
        f"SELECT {bookable.rule_columns('r', 's')} FROM referrals r, slots s"
        " WHERE r.id = $1 AND s.id = $2",
        referral_id,
        slot_id,
    )
    assert row is not None  # both rows were locked in this transaction
    return [rule for rule in bookable.RULES if not row[rule.name]]


async def lock_slots(connection: Connection, slot_ids: list[int]) -> None:
    """Lock these slot rows for update, in id order."""
    await connection.execute(
        "SELECT 1 FROM slots WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", slot_ids
    )


async def read_appointment(
    connection: Connection,
    appointment_id: int,
) -> asyncpg.Record | None:
    """The appointment row with its referral and slot ids, not locked: the caller locks those
    first, then the appointment (``lock_appointment``)."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT id, referral_id, slot_id, status FROM appointments WHERE id = $1", appointment_id
    )
    return row


async def lock_appointment(connection: Connection, appointment_id: int) -> asyncpg.Record:
    """Lock the appointment row (after its referral and slot) and read its current state."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT id, referral_id, slot_id, status FROM appointments WHERE id = $1 FOR UPDATE",
        appointment_id,
    )
    assert row is not None  # its id came from a row read in this transaction
    return row


async def insert_appointment(
    connection: Connection, referral_id: int, slot_id: int, actor: str, override: bool
) -> int:
    """A booked appointment; returns its id."""
    appointment_id: int = await connection.fetchval(
        "INSERT INTO appointments (referral_id, slot_id, status, booked_by, is_override)"
        " VALUES ($1, $2, $5, $3, $4) RETURNING id",
        referral_id,
        slot_id,
        actor,
        override,
        AppointmentStatus.BOOKED.value,
    )
    return appointment_id


def slot_notice(s: str, service_code: str | None = None, region: str | None = None) -> str:
    """SQL announcing slot row ``s``'s new state on the slots channel at commit; its
    service's code and its site's region are looked up unless the caller has them joined."""
    service_code = service_code or f"(SELECT code FROM services WHERE id = {s}.service_id)"
    region = region or f"(SELECT region_code FROM sites WHERE id = {s}.site_id)"
    return (
        f"pg_notify('{live.SLOTS}', json_build_object('slot', {s}.id,"
        f" 'serviceCode', {service_code}, 'region', {region},"
        f" 'status', {s}.status, 'startsAt', {s}.starts_at)::text)"
    )


def appointment_notice(a: str) -> str:
    """SQL announcing appointment row ``a``'s new state on the appointments channel."""
    return (
        f"pg_notify('{live.APPOINTMENTS}', (SELECT json_build_object('appointment', {a}.id,"
        f" 'referral', {a}.referral_id, 'slot', {a}.slot_id, 'status', {a}.status,"
        " 'patient', nr.patient_id, 'referrer', nr.referrer_subject)"
        f" FROM referrals nr WHERE nr.id = {a}.referral_id)::text)"
    )


async def set_slot_status(
    connection: Connection,
    slot_id: int,
    status: SlotStatus,
    hold_minutes: int | None = None,
    held_for: int | None = None,
) -> None:
    """Set a slot's FHIR status (a hold gets an expiry and its referral) and announce the
    change on the slots channel when the transaction commits."""
    await connection.execute(
        "WITH changed AS (UPDATE slots SET status = $2, version = version + 1,"
        " hold_expires_at = CASE WHEN $3::int IS NULL THEN NULL"
        " ELSE now() + make_interval(mins => $3::int) END, held_for_referral_id = $4"
        " WHERE id = $1 RETURNING *)"
        f" SELECT {slot_notice('c')} FROM changed c",
        slot_id,
        status.value,
        hold_minutes,
        held_for,
    )


async def release_holds(
    connection: Connection,
    *,
    referral_ids: list[int] | None = None,
    keep_slot: int | None = None,
    limit: int | None = None,
) -> list[tuple[int, int]]:
    """Free the slots held for these referrals (but ``keep_slot``), live or lapsed; with no
    referrals, up to ``limit`` slots whose hold has lapsed, skipping rows another
    transaction holds. Announced at commit; returns (slot, referral it was held for)."""
    # a sweep passes over rows others hold; a referral's own holds are waited for
    skip = " SKIP LOCKED" if referral_ids is None else ""
    rows = await connection.fetch(
        f"""
        WITH held AS (
            SELECT id, held_for_referral_id FROM slots
            WHERE held_for_referral_id IS NOT NULL AND status = '{SlotStatus.BUSY_TENTATIVE}'
              AND CASE WHEN $1::bigint[] IS NULL THEN hold_expires_at <= now()
                       ELSE held_for_referral_id = ANY($1::bigint[]) END
              AND id IS DISTINCT FROM $2
            ORDER BY id LIMIT $3 FOR UPDATE{skip}),
        released AS (
            UPDATE slots s SET status = '{SlotStatus.FREE}', hold_expires_at = NULL,
                held_for_referral_id = NULL, version = version + 1
            FROM held WHERE s.id = held.id
            RETURNING s.*, held.held_for_referral_id AS held_for)
        SELECT id, held_for, {slot_notice("released")} FROM released ORDER BY id
        """,
        referral_ids,
        keep_slot,
        limit,
    )
    return [(row["id"], row["held_for"]) for row in rows]


async def announce_appointment(connection: Connection, appointment_id: int) -> None:
    """Announce an appointment's new state on the appointments channel at commit."""
    await connection.execute(
        f"SELECT {appointment_notice('a')} FROM appointments a WHERE a.id = $1",
        appointment_id,
    )


async def set_referral_status(connection: Connection, referral_id: int, status: str) -> None:
    """Move a referral to a status (the domain has checked the transition)."""
    await connection.execute(
        "UPDATE referrals SET status = $2, version = version + 1, updated_at = now() WHERE id = $1",
        referral_id,
        status,
    )


async def cancel_appointment_row(connection: Connection, appointment_id: int, reason: str) -> None:
    """Mark an appointment cancelled with its reason."""
    await connection.execute(
        "UPDATE appointments SET status = $3, cancellation_reason = $2,"
        " version = version + 1 WHERE id = $1",
        appointment_id,
        reason,
        AppointmentStatus.CANCELLED.value,
    )


async def claim_idempotency_key(
    connection: Connection, key: str, actor: str, operation: str, request_hash: str
) -> bool:
    """Claim a key for this transaction; False when another transaction already committed it
    (a concurrent claim waits for the first transaction to finish)."""
    claimed = await connection.fetchval(
        "INSERT INTO idempotency_keys (key, actor, operation, request_hash, response)"
        " VALUES ($1, $2, $3, $4, 'null') ON CONFLICT (actor, key) DO NOTHING RETURNING true",
        key,
        actor,
        operation,
        request_hash,
    )
    return bool(claimed)


async def stored_response(connection: Connection, actor: str, key: str) -> asyncpg.Record:
    """What was recorded under an actor's key: the request's hash and the response."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT request_hash, response FROM idempotency_keys WHERE actor = $1 AND key = $2",
        actor,
        key,
    )
    assert row is not None  # only asked after the key was found taken
    return row


async def store_response(connection: Connection, actor: str, key: str, response: Any) -> None:
    """Record the response given under an actor's key."""
    await connection.execute(
        "UPDATE idempotency_keys SET response = $3 WHERE actor = $1 AND key = $2",
        actor,
        key,
        response,
    )


async def audit(
    connection: Connection,
    actor: str,
    role: str,
    operation: str,
    record_type: str,
    record_id: int | None,
    detail: Any = None,
) -> None:
    """One audit event, in the caller's transaction."""
    await connection.execute(
        "INSERT INTO audit_events (actor, actor_role, operation, record_type, record_id, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6)",
        actor,
        role,
        operation,
        record_type,
        record_id,
        detail,
    )


TRAVEL_KM = "great_circle_km(home.latitude, home.longitude, site.latitude, site.longitude)"


async def book_pairs(
    connection: Connection,
    referral_ids: list[int],
    slot_ids: list[int],
    actor: str,
    role: str,
    site_ids: list[int] | None = None,
) -> list[tuple[int, int, int]]:
    """Book many (referral, slot) pairs in one statement under the rules of one booking
    (db/bookable.py), for site-bound staff only at their sites, and only for referrals that
    hold no live offer of another slot (they wait for their answer); rows are locked in id
    order, referrals first, and the unique indexes settle any race. Returns (appointment,
    referral, slot) of each booking made; pairs that no longer hold are skipped."""
    # referrals before slots, as every single booking locks them: one statement locking both
    # would take them in whatever order its plan reads them, and could deadlock with one
    await connection.execute(
        "SELECT FROM referrals WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", referral_ids
    )
    rows = await connection.fetch(
        f"""
        WITH wanted AS (
            SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS w(referral_id, slot_id)),
        waiting AS (
            SELECT {", ".join(bookable.REFERRAL_COLUMNS)} FROM referrals
            WHERE id IN (SELECT referral_id FROM wanted) ORDER BY id FOR UPDATE),
        offered AS (
            SELECT {", ".join(bookable.SLOT_COLUMNS)} FROM slots
            WHERE id IN (SELECT slot_id FROM wanted)
              AND ($5::int[] IS NULL OR site_id = ANY($5::int[]))
            ORDER BY id FOR UPDATE),
        offers_out AS MATERIALIZED (  -- live offers to these referrals, once, by the index
            {bookable.live_offers_to("$1::bigint[]")}),
        -- each wanted slot beside its referral's row, before any slot is joined: the planner
        -- sees every CTE here as a row or two, and left free to, a generic plan joins all
        -- the batch's referrals to all its slots of the same service first (400,000 rows)
        asked AS MATERIALIZED (
            SELECT w.slot_id, r.* FROM wanted w JOIN waiting r ON r.id = w.referral_id),
        fit AS (
            SELECT DISTINCT ON (r.slot_id) r.id AS referral_id, r.slot_id
            FROM asked r JOIN offered s ON s.id = r.slot_id
            JOIN patients home ON home.id = r.patient_id JOIN sites site ON site.id = s.site_id
            WHERE {bookable.bookable("r", "s", km=TRAVEL_KM)}
              AND NOT EXISTS (SELECT 1 FROM offers_out o
                  WHERE o.referral_id = r.id AND o.slot_id <> r.slot_id)
            ORDER BY r.slot_id, r.id),
        booked AS (
            INSERT INTO appointments (referral_id, slot_id, booked_by)
            SELECT referral_id, slot_id, $3 FROM fit
            ON CONFLICT DO NOTHING
            RETURNING *),
        slots_taken AS (
            UPDATE slots SET status = '{SlotStatus.BUSY}', hold_expires_at = NULL,
                held_for_referral_id = NULL, version = version + 1
            WHERE id IN (SELECT slot_id FROM booked) RETURNING *),
        referrals_booked AS (
            UPDATE referrals SET status = '{ReferralStatus.BOOKED}', version = version + 1,
                updated_at = now()
            WHERE id IN (SELECT referral_id FROM booked) RETURNING id),
        audited AS (
            INSERT INTO audit_events (actor, actor_role, operation, record_type, record_id,
                                      detail)
            SELECT $3, $4, 'BOOK', 'appointment', id,
                   json_build_object('referral', referral_id, 'slot', slot_id, 'plan', true)
            FROM booked RETURNING 1),
        slot_events AS (
            SELECT {slot_notice("t", "v.code", "g.region_code")} FROM slots_taken t
            JOIN services v ON v.id = t.service_id JOIN sites g ON g.id = t.site_id),
        appointment_events AS (SELECT {appointment_notice("b")} FROM booked b)
        SELECT id, referral_id, slot_id FROM booked
        WHERE (SELECT count(*) FROM slot_events) >= 0
          AND (SELECT count(*) FROM appointment_events) >= 0
        """,
        referral_ids,
        slot_ids,
        actor,
        role,
        site_ids,
    )
    return [(row["id"], row["referral_id"], row["slot_id"]) for row in rows]
