"""The SQL of rate limits shared through PostgreSQL (migration 0016): take one token from a
bucket, atomically, however many workers ask at once."""

from __future__ import annotations

from care_graph.db.pool import Connection

_TAKE = """
INSERT INTO rate_buckets AS b (key, tokens, allowed, updated_at)
VALUES ($1, $2::float8 - 1, true, clock_timestamp())
ON CONFLICT (key) DO UPDATE SET
    tokens = cg_refilled(b.tokens, b.updated_at, $2, $3)
        - CASE WHEN cg_refilled(b.tokens, b.updated_at, $2, $3) >= 1 THEN 1 ELSE 0 END,
    allowed = cg_refilled(b.tokens, b.updated_at, $2, $3) >= 1,
    updated_at = clock_timestamp()
RETURNING allowed, tokens
"""

_FORGET_IDLE = "DELETE FROM rate_buckets WHERE updated_at < clock_timestamp() - $1::interval"


async def take_token(
    connection: Connection, key: str, burst: float, per_second: float
) -> tuple[bool, float]:
    """Take one token from ``key``'s bucket if it holds one: whether it did, and the tokens
    left (below 1 when refused)."""
    row = await connection.fetchrow(_TAKE, key, burst, per_second)
    assert row is not None
    return bool(row["allowed"]), float(row["tokens"])


async def forget_idle_buckets(connection: Connection, idle: str = "1 hour") -> int:
    """Drop the buckets nobody has used for ``idle``; how many went."""
    status: str = await connection.execute(_FORGET_IDLE, idle)
    return int(status.split()[-1])
