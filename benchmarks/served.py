"""The app under uvicorn as a process of its own, for the benchmarks that load it over real
connections: no access log, and no rate limit in the way of a few busy clients."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import IO

import httpx

from care_graph.testing import free_port


def start_app(
    url: str,
    settings: dict[str, str] | None = None,
    output: IO[bytes] | None = None,
    workers: int = 1,
) -> tuple[int, subprocess.Popen[bytes]]:
    """The app on the database at ``url``, with more environment ``settings``, in
    ``workers`` processes; its port and process. ``output`` takes what it prints (nothing is
    kept without one)."""
    port = free_port()
    env = {**os.environ, "DATABASE_URL": url, "CARE_GRAPH_REQUEST_BURST": str(10**9)}
    env |= settings or {}
    command = [sys.executable, "-m", "uvicorn", "care_graph.app:create_app", "--factory"]
    command += ["--port", str(port), "--workers", str(workers)]
    command += ["--log-level", "warning", "--no-access-log"]
    destination = output if output is not None else subprocess.DEVNULL
    return port, subprocess.Popen(command, env=env, stdout=destination, stderr=subprocess.STDOUT)


async def until_ready(port: int, server: subprocess.Popen[bytes], within_s: float = 60) -> None:
    """Return once ``/readyz`` says ready; SystemExit if the server exits or takes too long."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
        for _ in range(int(within_s * 10)):
            if server.poll() is not None:
                raise SystemExit(f"the server exited with status {server.returncode}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit(f"the server did not become ready within {within_s:.0f} s")


def stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server, gracefully if it will."""
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
