"""The SQL of booking: locking, reading and writing referrals, slots, appointments, holds,
idempotency keys and audit events. Rows are always locked in the same order — referral, then
slot, then appointment — so that concurrent bookings cannot deadlock on each other."""

from __future__ import annotations

from typing import Any

import asyncpg

from care_graph.db.pool import Connection


async def lock_referral(connection: Connection, referral_id: int) -> asyncpg.Record | None:
    """The referral row, locked for update (None when there is none)."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT id, status, to_service_id, patient_id FROM referrals WHERE id = $1 FOR UPDATE",
        referral_id,
    )
    return row


async def lock_slot(connection: Connection, slot_id: int) -> asyncpg.Record | None:
    """The slot row, locked for update, with whether its hold (if any) has expired."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT id, status, service_id, site_id, held_for_referral_id, starts_at,"
        " hold_expires_at IS NOT NULL AND hold_expires_at <= now() AS hold_expired,"
        " starts_at <= now() AS in_the_past"
        " FROM slots WHERE id = $1 FOR UPDATE",
        slot_id,
    )
    return row


async def lock_slots(connection: Connection, slot_ids: list[int]) -> None:
    """Lock these slot rows for update, in id order."""
    await connection.execute(
        "SELECT 1 FROM slots WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", slot_ids
    )


async def lock_appointment(
    connection: Connection,
    appointment_id: int,
) -> asyncpg.Record | None:
    """The appointment row with its referral and slot ids (not locked: lock those first)."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT id, referral_id, slot_id, status FROM appointments WHERE id = $1", appointment_id
    )
    return row


async def relock_appointment(connection: Connection, appointment_id: int) -> asyncpg.Record:
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
        " VALUES ($1, $2, 'booked', $3, $4) RETURNING id",
        referral_id,
        slot_id,
        actor,
        override,
    )
    return appointment_id


async def set_slot_status(
    connection: Connection,
    slot_id: int,
    status: str,
    hold_minutes: int | None = None,
    held_for: int | None = None,
) -> None:
    """Set a slot's FHIR status (a hold gets an expiry and its referral) and announce the
    change on the slots channel when the transaction commits."""
    await connection.execute(
        "WITH changed AS (UPDATE slots SET status = $2, version = version + 1,"
        " hold_expires_at = CASE WHEN $3::int IS NULL THEN NULL"
        " ELSE now() + make_interval(mins => $3::int) END, held_for_referral_id = $4"
        " WHERE id = $1 RETURNING id, service_id, site_id, starts_at, status)"
        " SELECT pg_notify('care_graph_slots', json_build_object('slot', c.id,"
        " 'serviceCode', v.code, 'region', s.region_code, 'status', c.status,"
        " 'startsAt', c.starts_at)::text)"
        " FROM changed c JOIN services v ON v.id = c.service_id JOIN sites s ON s.id = c.site_id",
        slot_id,
        status,
        hold_minutes,
        held_for,
    )


async def announce_appointment(connection: Connection, appointment_id: int) -> None:
    """Announce an appointment's new state on the appointments channel at commit."""
    await connection.execute(
        "SELECT pg_notify('care_graph_appointments', json_build_object('appointment', a.id,"
        " 'referral', a.referral_id, 'slot', a.slot_id, 'status', a.status,"
        " 'patient', r.patient_id, 'referrer', r.referrer_subject)::text)"
        " FROM appointments a JOIN referrals r ON r.id = a.referral_id WHERE a.id = $1",
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
        "UPDATE appointments SET status = 'cancelled', cancellation_reason = $2,"
        " version = version + 1 WHERE id = $1",
        appointment_id,
        reason,
    )


async def claim_idempotency_key(
    connection: Connection, key: str, actor: str, operation: str, request_hash: str
) -> bool:
    """Claim a key for this transaction; False when another transaction already committed it
    (a concurrent claim waits for the first transaction to finish)."""
    claimed = await connection.fetchval(
        "INSERT INTO idempotency_keys (key, actor, operation, request_hash, response)"
        " VALUES ($1, $2, $3, $4, 'null') ON CONFLICT (key) DO NOTHING RETURNING true",
        key,
        actor,
        operation,
        request_hash,
    )
    return bool(claimed)


async def stored_response(connection: Connection, key: str) -> asyncpg.Record:
    """What was recorded under a key: the request's hash and the response."""
    row: asyncpg.Record | None = await connection.fetchrow(
        "SELECT request_hash, response FROM idempotency_keys WHERE key = $1", key
    )
    assert row is not None  # only asked after the key was found taken
    return row


async def store_response(connection: Connection, key: str, response: Any) -> None:
    """Record the response given under a key."""
    await connection.execute(
        "UPDATE idempotency_keys SET response = $2 WHERE key = $1", key, response
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


async def book_pairs(
    connection: Connection,
    referral_ids: list[int],
    slot_ids: list[int],
    actor: str,
    role: str,
    site_ids: list[int] | None = None,
) -> list[tuple[int, int, int]]:
    """Book many (referral, slot) pairs in one statement under the same rules as one booking:
    the referral waits (ACCEPTED), the slot is on offer (free, a lapsed hold, or held for this
    referral), in the future, for the referral's service and, for site-bound staff, at one of
    their sites; rows are locked in id order, referrals first, and the
    unique indexes settle any race. Returns (appointment, referral, slot) of each booking made;
    pairs that no longer hold are skipped."""
    # referrals before slots, as every single booking locks them: one statement locking both
    # would take them in whatever order its plan reads them, and could deadlock with one
    await connection.execute(
        "SELECT FROM referrals WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE", referral_ids
    )
    rows = await connection.fetch(
        """
        WITH wanted AS (
            SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS w(referral_id, slot_id)),
        waiting AS (
            SELECT id, to_service_id FROM referrals
            WHERE id IN (SELECT referral_id FROM wanted) AND status = 'ACCEPTED'
            ORDER BY id FOR UPDATE),
        offered AS (
            SELECT id, service_id, status, hold_expires_at, held_for_referral_id FROM slots
            WHERE id IN (SELECT slot_id FROM wanted) AND starts_at > now()
              AND status IN ('free', 'busy-tentative')
              AND ($5::int[] IS NULL OR site_id = ANY($5::int[]))
            ORDER BY id FOR UPDATE),
        held_elsewhere AS MATERIALIZED (  -- live offers to these referrals, by the index
            SELECT held_for_referral_id AS referral_id, id AS slot_id FROM slots
            WHERE held_for_referral_id = ANY($1::bigint[]) AND status = 'busy-tentative'
              AND hold_expires_at > now()),
        fit AS (
            SELECT DISTINCT ON (w.slot_id) w.referral_id, w.slot_id
            FROM wanted w JOIN waiting r ON r.id = w.referral_id
            JOIN offered s ON s.id = w.slot_id AND s.service_id = r.to_service_id
            WHERE (s.status = 'free' OR s.hold_expires_at <= now()
                   OR s.held_for_referral_id = w.referral_id)
              -- a referral offered another slot since the plan was made waits for its answer
              AND NOT EXISTS (SELECT 1 FROM held_elsewhere e
                  WHERE e.referral_id = w.referral_id AND e.slot_id <> w.slot_id)
            ORDER BY w.slot_id, w.referral_id),
        booked AS (
            INSERT INTO appointments (referral_id, slot_id, booked_by)
            SELECT referral_id, slot_id, $3 FROM fit
            ON CONFLICT DO NOTHING
            RETURNING id, referral_id, slot_id),
        slots_taken AS (
            UPDATE slots SET status = 'busy', hold_expires_at = NULL,
                held_for_referral_id = NULL, version = version + 1
            WHERE id IN (SELECT slot_id FROM booked) RETURNING id),
        referrals_booked AS (
            UPDATE referrals SET status = 'BOOKED', version = version + 1, updated_at = now()
            WHERE id IN (SELECT referral_id FROM booked) RETURNING id),
        audited AS (
            INSERT INTO audit_events (actor, actor_role, operation, record_type, record_id,
                                      detail)
            SELECT $3, $4, 'BOOK', 'appointment', id,
                   json_build_object('referral', referral_id, 'slot', slot_id, 'plan', true)
            FROM booked RETURNING 1),
        slot_events AS (
            SELECT pg_notify('care_graph_slots', json_build_object('slot', s.id,
                'serviceCode', v.code, 'region', t.region_code, 'status', 'busy',
                'startsAt', s.starts_at)::text)
            FROM booked b JOIN slots s ON s.id = b.slot_id
            JOIN services v ON v.id = s.service_id JOIN sites t ON t.id = s.site_id),
        appointment_events AS (
            SELECT pg_notify('care_graph_appointments', json_build_object('appointment', b.id,
                'referral', b.referral_id, 'slot', b.slot_id, 'status', 'booked',
                'patient', r.patient_id, 'referrer', r.referrer_subject)::text)
            FROM booked b JOIN referrals r ON r.id = b.referral_id)
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
