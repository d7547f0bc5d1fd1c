"""The first step of a graceful shutdown, taken before uvicorn's own.

On SIGTERM or SIGINT uvicorn stops listening, lets requests in flight finish and closes every
WebSocket with 1012. A subscriber should instead hear 1001 (going away: reconnect, perhaps to
another worker), and before the server stops listening. So the app puts its own handler in
front of uvicorn's: it runs the app's farewell (bounded), then hands the signal on.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)
FAREWELL_S = 2.0  # the longest the farewell may hold up uvicorn's shutdown

Handler = Callable[[int, FrameType | None], Any]


def before_server_stops(farewell: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run ``farewell`` when SIGTERM or SIGINT arrives, before the server's own handler sees the
    signal; returns the function that puts the server's handlers back.

    Called from the app's lifespan, where uvicorn's handlers are already in place. An app
    served from another thread (the tests' live servers) has no signals, and nothing is done.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    originals: dict[int, Handler] = {}
    for sig in SIGNALS:
        original = signal.getsignal(sig)
        if callable(original):
            originals[sig] = original
    pending: set[asyncio.Task[None]] = set()  # held, so the task is not collected
    signalled: list[int] = []

    async def farewell_then(original: Handler, signum: int) -> None:
        try:
            async with asyncio.timeout(FAREWELL_S):
                await farewell()
        except TimeoutError:
            logger.warning("saying goodbye took over %.0f s; shutting down anyway", FAREWELL_S)
        except Exception:  # the server must still stop
            logger.exception("saying goodbye failed; shutting down anyway")
        finally:
            original(signum, None)

    def handle(signum: int, frame: FrameType | None) -> None:
        original = originals[signum]
        if signalled:  # a second signal goes straight on (uvicorn: a second Ctrl-C forces exit)
            original(signum, frame)
            return
        signalled.append(signum)

        # a signal handler runs between two bytecodes of whatever the loop was doing: only
        # hand the loop work through its thread-safe door
        def begin() -> None:
            pending.add(loop.create_task(farewell_then(original, signum)))

        loop.call_soon_threadsafe(begin)

    for signum in originals:
        signal.signal(signum, handle)

    def restore() -> None:
        for signum, original in originals.items():
            signal.signal(signum, original)

    return restore
