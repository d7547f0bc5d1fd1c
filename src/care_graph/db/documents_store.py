"""The SQL of trusted documents (migration 0017)."""

from __future__ import annotations

from care_graph.db.pool import Connection


async def find_document(connection: Connection, sha256: str) -> str | None:
    """The trusted document with this hash, or None."""
    found: str | None = await connection.fetchval(
        "SELECT document FROM trusted_documents WHERE sha256 = $1", sha256
    )
    return found


async def add_document(connection: Connection, sha256: str, document: str, source: str) -> bool:
    """Trust a document; False when it was trusted already."""
    status: str = await connection.execute(
        "INSERT INTO trusted_documents (sha256, document, source) VALUES ($1, $2, $3)"
        " ON CONFLICT (sha256) DO NOTHING",
        sha256,
        document,
        source,
    )
    return status.endswith(" 1")


async def list_documents(connection: Connection) -> list[tuple[str, str, str]]:
    """Every trusted document's hash, source and when it was added, oldest first."""
    rows = await connection.fetch(
        "SELECT sha256, source, to_char(added_at, 'YYYY-MM-DD HH24:MI') AS added"
        " FROM trusted_documents ORDER BY added_at, sha256"
    )
    return [(row["sha256"], row["source"], row["added"]) for row in rows]
