"""Planning work that takes seconds of CPU (a simulation, a capacity recommendation) asked for
over HTTP: one at a time per worker process, in a thread so that the worker's event loop goes
on serving everything else; a second is refused at once with SERVICE_UNAVAILABLE rather than
queued, so that no caller can pile work up behind it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool

from care_graph.errors import CareGraphError, ErrorCode

T = TypeVar("T")
_ONE_AT_A_TIME = asyncio.Semaphore(1)  # never waited on (refused instead): no loop is bound


async def run_heavy(work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(*args, **kwargs)`` in a thread, unless other heavy work runs on this worker."""
    if _ONE_AT_A_TIME.locked():
        raise CareGraphError(
            ErrorCode.SERVICE_UNAVAILABLE,
            "a simulation or recommendation is running on this worker; try again shortly",
        )
    async with _ONE_AT_A_TIME:
        return await run_in_threadpool(work, *args, **kwargs)
