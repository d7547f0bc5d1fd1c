"""The resolver path: strawberry resolves field by field, and per-request data loaders batch the
reads so that nothing is fetched row by row (no N+1). It answers what the compiler does not
handle, and it is the oracle the compiler is tested against.

Each loader batches one access pattern:
- ``node``: rows of one node type by primary key, one query per type per tick;
- ``page``: pages of one list with one set of arguments, for many parents at once (LATERAL);
- ``count``: totalCount of one list with one set of arguments, for many parents at once;
- ``computed``: a field with arguments, for many rows at once.

A root row list (``rows``) is one query per request, so it needs no loader.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import strawberry
from strawberry.dataloader import DataLoader

from care_graph.api.args import Arg, Params, RequestValues, plain
from care_graph.api.catalog import Catalog, TypeEntry
from care_graph.api.declare import Computed
from care_graph.api.ids import decode_global_id
from care_graph.api.lists import ListSpec, RowList, build_page, count_sql
from care_graph.api.policy import AUDITED_READS, policy_for
from care_graph.api.types import NODE_CLASSES, ROW_TYPES, PageInfo
from care_graph.auth import Viewer
from care_graph.db.pool import Connection
from care_graph.db.row_security import see_all_rows, see_as_viewer


@dataclass(slots=True)
class ResolvedPage:
    """One page as the resolver path holds it."""

    nodes: list[Any]
    cursors: list[str]
    has_more: bool
    forward: bool
    total_count: Callable[[], Awaitable[int]]

    def page_info(self) -> PageInfo:
        """Relay page info: a forward page knows what follows, a backward one what precedes."""
        return PageInfo(
            has_next_page=self.forward and self.has_more,
            has_previous_page=not self.forward and self.has_more,
            start_cursor=self.cursors[0] if self.cursors else None,
            end_cursor=self.cursors[-1] if self.cursors else None,
        )


def _frozen(value: Any) -> Any:
    return orjson.dumps(plain(value), option=orjson.OPT_SORT_KEYS, default=str)


class Loaders:
    """The data loaders of one request, made fresh per request so nothing leaks between them."""

    def __init__(
        self, connection: Connection, catalog: Catalog, viewer: Viewer, *, filtered: bool = True
    ) -> None:
        self.connection = connection
        self.catalog = catalog
        self.viewer = viewer
        self.policy = policy_for(viewer, filtered=filtered)
        self.request = RequestValues({}, viewer)
        self._loaders: dict[Any, DataLoader[Any, Any]] = {}
        self._lock = asyncio.Lock()  # loaders of one request share one connection
        self._reads: set[asyncio.Future[list[Any]]] = set()

    async def _fetch(self, sql: str, *values: Any) -> list[Any]:
        """Rows for the client, under the database's row security for this viewer as well as
        our own filters (the request's transaction is open; domain services see every row).

        A read once sent runs to its end even when the field that asked for it is cancelled
        (graphql-core cancels the siblings of a field whose error reaches their parent): a
        statement cut off mid-flight leaves the shared connection busy, and the reads after it
        and the request's commit would fail. ``settle`` waits for such reads."""
        read = asyncio.ensure_future(self._read(sql, *values))
        self._reads.add(read)
        read.add_done_callback(self._reads.discard)
        return await asyncio.shield(read)

    async def settle(self) -> None:
        """Wait for the reads still running for fields that were cancelled, so the request's
        transaction ends on an idle connection; their rows and errors go nowhere."""
        while self._reads:
            await asyncio.gather(*self._reads, return_exceptions=True)

    async def _read(self, sql: str, *values: Any) -> list[Any]:
        """One read as a savepoint of the request's transaction: a read PostgreSQL refuses (an
        argument it cannot take, a statement timeout) undoes only itself, so the reads after
        it still work and the audit events of the reads before it still commit."""
        viewer = self.viewer
        async with self._lock, self.connection.transaction():
            await see_as_viewer(self.connection, viewer.role, viewer.subject, viewer.patient_id)
            rows = list(await self.connection.fetch(sql, *values))
            await see_all_rows(self.connection)
            return rows

    def _loader(
        self,
        key: Any,
        batch: Callable[[list[Any]], Awaitable[Sequence[Any]]],
    ) -> DataLoader[Any, Any]:
        loader = self._loaders.get(key)
        if loader is None:
            loader = self._loaders[key] = DataLoader(load_fn=batch)
        return loader

    # --- nodes --------------------------------------------------------------------------
    async def node(self, type_name: str, key: int) -> Any:
        """The node of this type and primary key, or None."""
        found = await self.nodes(type_name, [key])
        return found[0]

    async def nodes(self, type_name: str, keys: list[int]) -> list[Any]:
        """Nodes of one type by primary key, in the order asked (None where missing)."""
        entry = self.catalog.types[type_name]
        loader = self._loader(("node", type_name), lambda ks: self._load_nodes(entry, ks))
        return list(await loader.load_many(keys))

    async def _load_nodes(self, entry: TypeEntry, keys: list[int]) -> list[Any]:
        params = Params()
        visible = self.policy.condition(entry.name, "t", params)
        values = params.values(self.request)
        where = f"t.id = ANY(${len(values) + 1}::bigint[])"
        if visible is not None:
            where += f" AND {visible}"
        rows = await self._fetch(
            f"SELECT {entry.row_sql('t')} FROM {entry.table} t WHERE {where}", *values, keys
        )
        record_type = AUDITED_READS.get(entry.name)
        if record_type is not None and rows:
            await self._fetch(
                "INSERT INTO audit_events (actor, actor_role, operation, record_type, record_id)"
                " SELECT $1, $2, 'READ', $3, unnest($4::bigint[])",
                self.viewer.subject,
                str(self.viewer.role),
                record_type,
                [row["__pk"] for row in rows],
            )
        cls = NODE_CLASSES[entry.name]
        by_key = {row["__pk"]: cls(row=dict(row)) for row in rows}
        return [by_key.get(key) for key in keys]

    async def node_by_global_id(self, global_id: str) -> Any:
        """The node a global ID names, or None for a malformed or unknown ID."""
        decoded = decode_global_id(str(global_id))
        if decoded is None or decoded[0] not in self.catalog.types:
            return None
        return await self.node(*decoded)

    # --- pages --------------------------------------------------------------------------
    async def page(self, spec: ListSpec, parent: Any, arguments: dict[str, Any]) -> ResolvedPage:
        """One page of ``spec`` under ``parent`` (None at the root) for these arguments."""
        args = {name: Arg.constant(value) for name, value in arguments.items()}
        parent_key = parent.row["__pk"] if parent is not None else 0
        parent_table = (
            self.catalog.types[type(parent).__name__].table if parent is not None else None
        )
        loader = self._loader(
            ("page", id(spec), parent_table, _frozen(arguments)),
            lambda keys: self._load_pages(spec, parent_table, args, keys),
        )
        keys, has_more, forward = await loader.load(parent_key)
        cursors = [cursor for _, cursor in keys]
        nodes = await self.nodes(spec.type_name, [key for key, _ in keys])

        async def total_count() -> int:
            count_loader = self._loader(
                ("count", id(spec), parent_table, _frozen(arguments)),
                lambda parents: self._load_counts(spec, parent_table, args, parents),
            )
            count: int = await count_loader.load(parent_key)
            return count

        return ResolvedPage(nodes, cursors, has_more, forward, total_count)

    async def _load_pages(
        self, spec: ListSpec, parent_table: str | None, args: dict[str, Arg], parents: list[int]
    ) -> list[Any]:
        params = Params()
        page = build_page(spec, args, params, "c", "p" if parent_table else None, self.policy)
        order = page.order_limit.split(" LIMIT ")[0]
        inner = (
            f"SELECT c.id, {page.cursor_sql} AS cursor,"
            f" row_number() OVER ({order}) AS n {page.from_where} {page.order_limit}"
        )
        values = params.values(self.request)
        if parent_table is None:
            rows = await self._fetch(f"SELECT 0 AS parent, x.* FROM ({inner}) x", *values)
        else:
            rows = await self._fetch(
                f"SELECT p.id AS parent, x.* FROM {parent_table} p CROSS JOIN LATERAL ({inner}) x"
                f" WHERE p.id = ANY(${len(values) + 1}::bigint[])",
                *values,
                parents,
            )
        grouped: dict[int, list[tuple[int, int, str]]] = {parent: [] for parent in parents}
        for row in rows:
            grouped[row["parent"]].append((row["n"], row["id"], row["cursor"]))
        results = []
        for parent in parents:
            found = sorted(grouped[parent])
            kept = found[: page.size]
            if not page.forward:
                kept.reverse()
            has_more = len(found) > page.size
            results.append(([(key, cursor) for _, key, cursor in kept], has_more, page.forward))
        return results

    async def _load_counts(
        self, spec: ListSpec, parent_table: str | None, args: dict[str, Arg], parents: list[int]
    ) -> list[int]:
        params = Params()
        counted = count_sql(spec, args, params, "c", "p" if parent_table else None, self.policy)
        values = params.values(self.request)
        if parent_table is None:
            rows = await self._fetch(f"SELECT {counted} AS total", *values)
            return [int(rows[0]["total"])]
        rows = await self._fetch(
            f"SELECT p.id, {counted} AS total FROM {parent_table} p"
            f" WHERE p.id = ANY(${len(values) + 1}::bigint[])",
            *values,
            parents,
        )
        totals = {row["id"]: row["total"] for row in rows}
        return [totals.get(parent, 0) for parent in parents]

    # --- root row lists ---------------------------------------------------------------------
    async def rows(self, spec: RowList, arguments: dict[str, Any]) -> list[Any]:
        """The plain rows of ``spec`` for these arguments, in its order (FORBIDDEN to a viewer
        who is not among its readers)."""
        params = Params()
        args = {name: Arg.constant(value) for name, value in arguments.items()}
        source = spec.sql(args, params, self.policy, "o")
        entry = self.catalog.rows[spec.type_name]
        rows = await self._fetch(
            f"SELECT {entry.row_sql('o')} {source} ORDER BY o.id", *params.values(self.request)
        )
        cls = ROW_TYPES[spec.type_name]
        return [cls(row=dict(row)) for row in rows]

    # --- fields with arguments ------------------------------------------------------------
    async def computed(self, obj: Any, info: strawberry.Info, **arguments: Any) -> Any:
        """A field with arguments (e.g. distanceKm), for this object."""
        entry = self.catalog.types[type(obj).__name__]
        declaration = entry.fields[info.field_name]
        assert isinstance(declaration, Computed)
        loader = self._loader(
            ("computed", entry.name, info.field_name, _frozen(arguments)),
            lambda keys: self._load_computed(entry, declaration, arguments, keys),
        )
        return await loader.load(obj.row["__pk"])

    async def _load_computed(
        self, entry: TypeEntry, declaration: Computed, arguments: dict[str, Any], keys: list[int]
    ) -> list[Any]:
        params = Params()
        placeholders = {name: params.add(Arg.constant(value)) for name, value in arguments.items()}
        expression = declaration.sql.format(t="t", **placeholders)
        values = params.values(self.request)
        rows = await self._fetch(
            f"SELECT t.id, {expression} AS value FROM {entry.table} t"
            f" WHERE t.id = ANY(${len(values) + 1}::bigint[])",
            *values,
            keys,
        )
        by_key = {row["id"]: row["value"] for row in rows}
        return [by_key.get(key) for key in keys]
