"""Rate limits: a token bucket per token subject, and per client address for requests without
a good token. A refused request is answered with RATE_LIMITED (HTTP 429 and ``Retry-After``)
before any work. Buckets live in the process by default; with ``CARE_GRAPH_RATE_STORE=
postgres`` every worker counts in the same buckets (db/rate_store.py)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass

from care_graph.api.errors import ApiError, ApiErrorCode, logger
from care_graph.auth import Viewer
from care_graph.config import Limits, RateStore
from care_graph.db import rate_store
from care_graph.db.pool import CONNECTION_FAULTS, ConnectionSource, unavailable

MAX_BUCKETS = 100_000  # in the process; the longest idle are forgotten first


@dataclass(frozen=True, slots=True)
class Bucket:
    """How fast a bucket refills and how much it holds."""

    per_second: float
    burst: float

    def retry_after(self, tokens: float) -> int:
        """Whole seconds until a bucket holding ``tokens`` holds one."""
        return max(1, math.ceil((1 - tokens) / self.per_second))


class RateLimited(ApiError):
    """RATE_LIMITED, and when to try again."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            ApiErrorCode.RATE_LIMITED,
            f"too many requests; try again in {retry_after} s",
            extensions={"retryAfter": retry_after},
        )
        self.retry_after = retry_after


class RateLimiter:
    """Decides, before any work, whether a caller may make one more request."""

    def __init__(
        self, limits: Limits, store: RateStore, pool: ConnectionSource | None = None
    ) -> None:
        self.subjects = Bucket(limits.requests_per_minute / 60, limits.request_burst)
        self.addresses = Bucket(
            limits.anonymous_requests_per_minute / 60,
            max(1, limits.anonymous_requests_per_minute // 4),
        )
        self.store = store
        self.pool = pool
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    async def check(self, viewer: Viewer | None, address: str | None) -> None:
        """Count one request of this caller; RateLimited when their bucket is empty."""
        if viewer is not None:
            key, bucket = f"subject:{viewer.subject}", self.subjects
        else:
            key, bucket = f"address:{address or 'unknown'}", self.addresses
        allowed, tokens = await self._take(key, bucket)
        if not allowed:
            logger.info("rate limited %s", key.partition(":")[0])
            raise RateLimited(bucket.retry_after(tokens))

    async def _take(self, key: str, bucket: Bucket) -> tuple[bool, float]:
        if self.store is RateStore.POSTGRES and self.pool is not None:
            try:
                async with self.pool.acquire() as connection:
                    return await rate_store.take_token(
                        connection, key, bucket.burst, bucket.per_second
                    )
            except CONNECTION_FAULTS:
                raise unavailable("the rate limits cannot be read") from None
        return self._take_here(key, bucket, time.monotonic())

    def _take_here(self, key: str, bucket: Bucket, now: float) -> tuple[bool, float]:
        tokens, then = self._buckets.pop(key, (bucket.burst, now))
        tokens = min(bucket.burst, tokens + (now - then) * bucket.per_second)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[key] = (tokens, now)  # the most recently used go last
        if len(self._buckets) > MAX_BUCKETS:
            self._buckets.popitem(last=False)
        return allowed, tokens
