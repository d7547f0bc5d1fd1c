"""The settings PostgreSQL's row-level security reads (migration 0015): whose rows a statement
may see. The API's pool logs in as ``care_graph_app`` with ``care_graph.rows = all``, because
domain services act across patients by design (an offer goes to the next patient waiting); the
two paths that read for a client, the compiled statement and the resolver's loaders, switch to
the caller's rows for just the statements they run, so a row filter of ours that failed would
still not hand a client a foreign row."""

from __future__ import annotations

from care_graph.db.pool import Connection

APP_ROLE = "care_graph_app"

# the pool's session defaults: the API's role, and every row for the domain services
SESSION_SETTINGS = {"role": APP_ROLE, "care_graph.rows": "all"}

_AS_VIEWER = """SELECT set_config('care_graph.rows', 'viewer', true),
    set_config('care_graph.role', $1, true),
    set_config('care_graph.subject', $2, true),
    set_config('care_graph.patient', coalesce($3::bigint::text, ''), true)"""
_ALL_ROWS = "SELECT set_config('care_graph.rows', 'all', true)"


async def see_as_viewer(
    connection: Connection, role: str, subject: str, patient_id: int | None
) -> None:
    """From here to the end of the transaction (or until ``see_all_rows``), statements see only
    the rows this caller may read. Must run inside a transaction."""
    await connection.execute(_AS_VIEWER, role, subject, patient_id)


async def see_all_rows(connection: Connection) -> None:
    """Back to every row, for the domain services, until the transaction ends."""
    await connection.execute(_ALL_ROWS)
