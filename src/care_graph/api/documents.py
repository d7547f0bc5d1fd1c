"""Which documents the API runs, before any is parsed.

In production (``CARE_GRAPH_DOCUMENTS=trusted``) only trusted documents run: those added with
`care-graph documents add`, named by the sha256 of their text. A client sends the document
itself, or only its hash in ``extensions.persistedQuery`` (the automatic persisted queries
protocol: ``{"version": 1, "sha256Hash": "…"}``). In development any document runs, and a
document sent once with its hash can be sent by hash alone afterwards.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from care_graph.api.errors import ApiError, ApiErrorCode
from care_graph.config import DocumentPolicy
from care_graph.db import documents_store
from care_graph.db.pool import CONNECTION_FAULTS, ConnectionSource, unavailable
from care_graph.lru import Lru

_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_of(document: str) -> str:
    """The hash a document is trusted and persisted under: sha256 of its UTF-8 text, in hex."""
    return hashlib.sha256(document.encode("utf-8", "surrogatepass")).hexdigest()


class Documents:
    """Resolves a request's document (its text, or the hash of one known) under the policy."""

    def __init__(
        self, policy: DocumentPolicy, pool: ConnectionSource | None = None, size: int = 1024
    ) -> None:
        self.policy = policy
        self.pool = pool
        self._known: Lru[str, str] = Lru(size)  # hash -> text: trusted, or sent (development)

    async def resolve(self, query: str | None, extensions: dict[str, Any] | None) -> str:
        """The document to run; ApiError when there is none, or it may not run here."""
        wanted = _persisted_hash(extensions)
        if query is None:
            if wanted is None:
                raise ApiError(ApiErrorCode.BAD_REQUEST, 'the request needs a "query"')
            known = await self._look_up(wanted)
            if known is None:
                raise ApiError(
                    ApiErrorCode.PERSISTED_QUERY_NOT_FOUND,
                    "no document is known by this hash: send it with the query",
                )
            return known
        digest = sha256_of(query) if wanted is not None or self._trusted_only else None
        if wanted is not None and digest != wanted:
            raise ApiError(
                ApiErrorCode.BAD_REQUEST, "extensions.persistedQuery.sha256Hash is not the query's"
            )
        if digest is not None:
            if self._trusted_only:
                if await self._look_up(digest) is None:
                    raise ApiError(
                        ApiErrorCode.DOCUMENT_NOT_TRUSTED,
                        "this server runs trusted documents only; this one is not among them",
                    )
            else:
                self._known.put(digest, query)
        return query

    @property
    def _trusted_only(self) -> bool:
        return self.policy is DocumentPolicy.TRUSTED

    async def _look_up(self, digest: str) -> str | None:
        known = self._known.get(digest)
        if known is not None or not self._trusted_only or self.pool is None:
            return known
        try:
            async with self.pool.acquire() as connection:
                found = await documents_store.find_document(connection, digest)
        except CONNECTION_FAULTS:
            raise unavailable("the trusted documents cannot be read") from None
        if found is not None:
            self._known.put(digest, found)
        return found


def _persisted_hash(extensions: dict[str, Any] | None) -> str | None:
    persisted = (extensions or {}).get("persistedQuery")
    if persisted is None:
        return None
    if not isinstance(persisted, dict) or persisted.get("version") != 1:
        raise ApiError(
            ApiErrorCode.BAD_REQUEST, "extensions.persistedQuery must be version 1 with a hash"
        )
    digest = persisted.get("sha256Hash")
    if not isinstance(digest, str) or _SHA256.fullmatch(digest) is None:
        raise ApiError(
            ApiErrorCode.BAD_REQUEST, "sha256Hash must be 64 lower-case hexadecimal digits"
        )
    return digest
