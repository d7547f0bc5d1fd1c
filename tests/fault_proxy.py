"""A TCP proxy between the app and PostgreSQL that cuts connections for real, at moments
chosen by a seeded random generator: before a COMMIT reaches the server, while the server
runs it, after it ran but before its answer comes back, and anywhere else in the stream.

The app connects to the proxy as it would to PostgreSQL (``url``); each client connection is
piped to a connection of its own to the server. A cut aborts both sockets, so the app sees a
reset and the server a lost client, as in a real network fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

CHUNK = 65536


class Cut(Enum):
    """Where in a connection's life a cut falls."""

    BEFORE_COMMIT = "before commit"  # the server never sees the COMMIT: rolled back
    DURING_COMMIT = "during commit"  # the COMMIT is sent, the socket dies at once
    AFTER_COMMIT = "after commit"  # the server committed; its answer is lost on the way back
    MID_STREAM = "mid-stream"  # any other message, either way, cut half-way


@dataclass(eq=False)  # links are kept in a set, by identity
class _Link:
    """One client connection and its server connection."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter
    cut_on_reply: bool = False

    def abort(self) -> None:
        for writer in (self.client, self.server):
            writer.transport.abort()


@dataclass
class FaultProxy:
    """Pipes connections to ``host:port`` (or the socket at ``unix_path``): of the chunks
    that carry a COMMIT, ``commit_cut_rate`` are cut, and ``stream_cut_rate`` of all others.
    ``cuts`` counts what was done."""

    host: str | None
    port: int
    rng: random.Random
    unix_path: str | None = None
    commit_cut_rate: float = 0.0
    stream_cut_rate: float = 0.0
    cuts: Counter[Cut] = field(default_factory=Counter)
    _links: set[_Link] = field(default_factory=set)
    _server: asyncio.Server | None = None

    @classmethod
    def to(cls, url: str, *, seed: int) -> FaultProxy:
        """A proxy to the PostgreSQL server of ``url``, over TCP or its Unix socket."""
        parts = urlsplit(url)
        socket_dir = parse_qs(parts.query).get("host", [parts.hostname or ""])[0]
        port = parts.port or 5432
        if socket_dir.startswith("/"):
            return cls(None, port, random.Random(seed), unix_path=f"{socket_dir}/.s.PGSQL.{port}")
        return cls(socket_dir or "localhost", port, random.Random(seed))

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    def url(self, url: str) -> str:
        """``url`` pointing at this proxy instead of the server."""
        assert self._server is not None, "start() first"
        port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{port}" if credentials else f"127.0.0.1:{port}"
        query = urlencode(
            [(name, value) for name, value in parse_qsl(parts.query) if name != "host"]
        )
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    def calm(self) -> None:
        """Stop cutting; connections already piped go on."""
        self.commit_cut_rate = self.stream_cut_rate = 0.0

    def cut_all(self) -> None:
        """Cut every connection now."""
        for link in list(self._links):
            link.abort()

    async def close(self) -> None:
        """Stop listening and cut what is left."""
        if self._server is not None:
            self._server.close()
        self.cut_all()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self.unix_path is not None:
                upstream_reader, upstream_writer = await asyncio.open_unix_connection(
                    self.unix_path
                )
            else:
                upstream_reader, upstream_writer = await asyncio.open_connection(
                    self.host, self.port
                )
        except OSError:
            writer.transport.abort()
            return
        link = _Link(writer, upstream_writer)
        self._links.add(link)
        try:
            await asyncio.gather(
                self._pipe_up(link, reader), self._pipe_down(link, upstream_reader)
            )
        finally:
            self._links.discard(link)
            link.abort()

    def _cut(self, link: _Link, cut: Cut) -> None:
        self.cuts[cut] += 1
        link.abort()

    async def _forward(self, link: _Link, to: asyncio.StreamWriter, chunk: bytes) -> bool:
        """Pass a chunk on, or (``stream_cut_rate`` of the time) half of it and cut; False
        once cut."""
        if self.rng.random() < self.stream_cut_rate:
            to.write(chunk[: len(chunk) // 2])
            self._cut(link, Cut.MID_STREAM)
            return False
        to.write(chunk)
        await to.drain()
        return True

    async def _pipe_up(self, link: _Link, reader: asyncio.StreamReader) -> None:
        """Client to server, where COMMITs are cut before, during or after."""
        with contextlib.suppress(OSError):
            while chunk := await reader.read(CHUNK):
                if b"COMMIT" in chunk and self.rng.random() < self.commit_cut_rate:
                    cut = self.rng.choice((Cut.BEFORE_COMMIT, Cut.DURING_COMMIT, Cut.AFTER_COMMIT))
                    if cut is Cut.BEFORE_COMMIT:
                        self._cut(link, cut)
                        return
                    link.server.write(chunk)
                    await link.server.drain()
                    if cut is Cut.DURING_COMMIT:
                        self._cut(link, cut)
                        return
                    link.cut_on_reply = True  # AFTER_COMMIT: counted when the answer is dropped
                elif not await self._forward(link, link.server, chunk):
                    return
        link.abort()

    async def _pipe_down(self, link: _Link, reader: asyncio.StreamReader) -> None:
        """Server to client, where the answer to a COMMIT may be lost."""
        with contextlib.suppress(OSError):
            while chunk := await reader.read(CHUNK):
                if link.cut_on_reply:
                    self._cut(link, Cut.AFTER_COMMIT)
                    return
                if not await self._forward(link, link.client, chunk):
                    return
        link.abort()
