"""Which PostgreSQL care_graph talks to: DATABASE_URL if set, else its embedded server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from care_graph.config import Settings
from care_graph.db.embedded import EmbeddedPostgres


@contextmanager
def database_url(settings: Settings, *, keep_running: bool = False) -> Iterator[str]:
    """Yield the URL of the database to use, starting the embedded server when there is no
    ``DATABASE_URL``; the embedded server is stopped on exit unless ``keep_running``."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(settings.data_dir, keep_running=keep_running)
    url = server.start()
    try:
        yield url
    finally:
        if not keep_running:
            server.stop()
