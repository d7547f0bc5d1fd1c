"""Compile a validated GraphQL query into one SQL statement that builds the response's ``data``
as JSON inside PostgreSQL.

Selections become nested ``json_build_object`` calls, to-one links correlated subqueries and
lists keyset pages aggregated with ``json_agg``; every argument and variable becomes a bind
parameter. A plan (SQL text plus how to compute its parameters) depends only on the document,
the operation and the query's *shape* — which arguments are null, the values of enum and
Boolean variables — so it is cached under that key and reused with new variable values.

Anything the compiler does not cover (introspection, for one) raises ``NotCompilable`` and the
request goes to the resolver path instead.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLField,
    GraphQLFloat,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    get_named_type,
)
from graphql.execution.collect_fields import (
    FieldDetailsList,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues, get_argument_values

from care_graph.api.args import Arg, Params, RequestValues, plain
from care_graph.api.catalog import Catalog, TypeEntry
from care_graph.api.declare import Column, Computed, Nested, Root, RootRows, ToOne
from care_graph.api.ids import decode_global_id
from care_graph.api.lists import ListSpec, RowList, build_page, count_sql
from care_graph.api.policy import AUDIT_FUNCTION, Policy

_MAX_KEYS = 50  # json_build_object takes at most 100 arguments


class NotCompilable(Exception):
    """The compiler does not handle this query; the resolver path will."""


@dataclass(frozen=True, slots=True)
class Plan:
    """A compiled query: SQL returning the ``data`` object as JSON text, and its parameters;
    or, when the answer needs no data (``{ __typename }``), the answer itself."""

    sql: str
    params: Params
    static: bytes | None = None

    def values(self, request: RequestValues) -> list[Any]:
        """The bind parameters for one request's variables and viewer."""
        return self.params.values(request)

    @property
    def only_reads(self) -> bool:
        """Whether the statement writes nothing (no audited read), so a standby may run it."""
        return AUDIT_FUNCTION not in self.sql


def shape_of(variables: VariableValues) -> Any:
    """What of a request's variables decides the SQL text: nulls, enums and Booleans."""

    def shape(value: Any) -> Any:
        if value is None or isinstance(value, bool | enum.Enum):
            return value.value if isinstance(value, enum.Enum) else value
        if isinstance(value, dict):
            return tuple(sorted((key, shape(item)) for key, item in value.items()))
        if isinstance(value, list | tuple):
            return "list"
        return "value"

    return tuple(sorted((name, shape(value)) for name, value in variables.coerced.items()))


def _json_object(pairs: list[tuple[str, str]]) -> str:
    if len(pairs) > _MAX_KEYS:
        raise NotCompilable("too many fields in one selection")
    inner = ", ".join(f"'{key}', {expression}" for key, expression in pairs)
    return f"json_build_object({inner})"


class Compiler:
    """Turns (document, operation, variables) into a Plan, for one schema and catalog."""

    def __init__(self, schema: GraphQLSchema, catalog: Catalog) -> None:
        self.schema = schema
        self.catalog = catalog

    def compile(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: VariableValues,
        policy: Policy,
    ) -> Plan:
        """Compile one query operation under a role's policy; raises NotCompilable or an
        ApiError."""
        if operation.operation.value != "query":
            raise NotCompilable("only queries are compiled")
        return _Compilation(self, document, operation, variables, policy).run()


class _Compilation:
    """The state of compiling one operation: fragments, variables, parameters, aliases."""

    def __init__(
        self,
        compiler: Compiler,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: VariableValues,
        policy: Policy,
    ) -> None:
        self.policy = policy
        self.schema = compiler.schema
        self.catalog = compiler.catalog
        self.operation = operation
        self.variables = variables
        self.fragments = {
            definition.name.value: FragmentDetails(definition)
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.params = Params()
        self._aliases = itertools.count()

    def alias(self, prefix: str) -> str:
        return f"{prefix}{next(self._aliases)}"

    def run(self) -> Plan:
        query_type = self.schema.query_type
        assert query_type is not None
        grouped = collect_fields(
            self.schema, self.fragments, self.variables, query_type, self.operation
        ).grouped_field_set
        pairs = []
        for key, details in grouped.items():
            name = details[0].node.name.value
            if name == "__typename":
                pairs.append((key, "'Query'"))
                continue
            if name not in query_type.fields:  # __schema, __type: introspection
                raise NotCompilable(f"root field {name}")
            field = query_type.fields[name]
            declaration = self.catalog.root.get(name)
            if isinstance(declaration, Root):
                pairs.append((key, self.connection(declaration.spec, field, details, None)))
            elif isinstance(declaration, RootRows):
                pairs.append((key, self.rows(declaration.spec, field, details)))
            elif name in ("node", "nodes"):
                pairs.append((key, self.nodes(field, details, many=name == "nodes")))
            elif name == "me":
                pairs.append((key, self.me(details)))
            else:
                raise NotCompilable(f"root field {name}")
        if all(expression == "'Query'" for _, expression in pairs):
            static = "{" + ",".join(f'"{key}":"Query"' for key, _ in pairs) + "}"
            return Plan("", self.params, static.encode())
        return Plan(f"SELECT {_json_object(pairs)}::text", self.params)

    # --- arguments --------------------------------------------------------------------------
    def arguments(self, field: GraphQLField, details: FieldDetailsList) -> dict[str, Arg]:
        node = details[0].node

        def getter_for(name: str) -> Callable[[RequestValues], Any]:
            return lambda request: plain(
                get_argument_values(field, node, request.variables).get(name)
            )

        current = get_argument_values(field, node, self.variables)
        return {
            _snake(name): Arg(plain(current.get(name)), getter_for(name)) for name in field.args
        }

    # --- objects ----------------------------------------------------------------------------
    def object_json(self, entry: TypeEntry, alias: str, details: FieldDetailsList) -> str:
        object_type = self.schema.get_type(entry.name)
        assert isinstance(object_type, GraphQLObjectType)
        grouped = collect_subfields(
            self.schema, self.fragments, self.variables, self.operation, object_type, details
        ).grouped_field_set
        pairs = []
        for key, field_details in grouped.items():
            name = field_details[0].node.name.value
            if name == "__typename":
                pairs.append((key, f"'{entry.name}'"))
                continue
            field = object_type.fields[name]
            pairs.append((key, self.field_sql(entry, alias, field, field_details, name)))
        return _json_object(pairs)

    def field_sql(
        self,
        entry: TypeEntry,
        alias: str,
        field: GraphQLField,
        details: FieldDetailsList,
        name: str,
    ) -> str:
        declaration = entry.fields.get(name)
        if isinstance(declaration, Column):
            return _as_json(declaration.sql.format(t=alias), field)
        if isinstance(declaration, Computed):
            args = self.arguments(field, details)
            placeholders = {_camel(arg): self.params.add(value) for arg, value in args.items()}
            return _as_json(declaration.sql.format(t=alias, **placeholders), field)
        if isinstance(declaration, ToOne):
            target = self.catalog.types[declaration.target]
            return self.one(target, declaration.key_sql.format(t=alias), details)
        if isinstance(declaration, Nested):
            return self.connection(declaration.spec, field, details, alias)
        raise NotCompilable(f"field {entry.name}.{name}")

    # --- lists ------------------------------------------------------------------------------
    def connection(
        self,
        spec: ListSpec,
        field: GraphQLField,
        details: FieldDetailsList,
        parent_alias: str | None,
    ) -> str:
        args = self.arguments(field, details)
        alias = self.alias("t")
        page = build_page(spec, args, self.params, alias, parent_alias, self.policy)
        size = page.size_placeholder
        rows = self.alias("pg")
        output_order = f"{rows}.n {'ASC' if page.forward else 'DESC'}"
        reverse_order = f"{rows}.n {'DESC' if page.forward else 'ASC'}"
        in_page = f"FILTER (WHERE {rows}.n <= {size})"
        entry = self.catalog.types[spec.type_name]
        connection_type = get_named_type(field.type)
        assert isinstance(connection_type, GraphQLObjectType)
        grouped = collect_subfields(
            self.schema, self.fragments, self.variables, self.operation, connection_type, details
        ).grouped_field_set
        position = f"row_number() OVER ({page.order_limit.split(' LIMIT ')[0]})"
        columns = [f"{position} AS n"]

        def node_column(node_details: FieldDetailsList) -> str:
            # built only for rows inside the page: not for the extra row that tells whether
            # there is more, which must neither cost a JSON object nor count as read
            column = self.alias("obj")
            body = self.policy.audited(
                entry.name, alias, self.object_json(entry, alias, node_details), self.params
            )
            columns.append(f"CASE WHEN {position} <= {size} THEN {body} END AS {column}")
            return column

        wants_cursor = False
        pairs = []
        for key, field_details in grouped.items():
            name = field_details[0].node.name.value
            sub_type = (
                get_named_type(connection_type.fields[name].type) if name != "__typename" else None
            )
            if name == "__typename":
                pairs.append((key, f"'{connection_type.name}'"))
            elif name == "nodes":
                column = node_column(field_details)
                pairs.append(
                    (
                        key,
                        f"coalesce(json_agg({rows}.{column} ORDER BY {output_order})"
                        f" {in_page}, '[]')",
                    )
                )
            elif name == "edges":
                assert isinstance(sub_type, GraphQLObjectType)
                edge_pairs = []
                for edge_key, edge_details in collect_subfields(
                    self.schema,
                    self.fragments,
                    self.variables,
                    self.operation,
                    sub_type,
                    field_details,
                ).grouped_field_set.items():
                    edge_field = edge_details[0].node.name.value
                    if edge_field == "cursor":
                        wants_cursor = True
                        edge_pairs.append((edge_key, f"{rows}.cur"))
                    elif edge_field == "node":
                        edge_pairs.append((edge_key, f"{rows}.{node_column(edge_details)}"))
                    else:
                        edge_pairs.append((edge_key, f"'{sub_type.name}'"))
                pairs.append(
                    (
                        key,
                        f"coalesce(json_agg({_json_object(edge_pairs)} ORDER BY"
                        f" {output_order}) {in_page}, '[]')",
                    )
                )
            elif name == "pageInfo":
                assert isinstance(sub_type, GraphQLObjectType)
                info_pairs = []
                for info_key, info_details in collect_subfields(
                    self.schema,
                    self.fragments,
                    self.variables,
                    self.operation,
                    sub_type,
                    field_details,
                ).grouped_field_set.items():
                    info_field = info_details[0].node.name.value
                    more = f"count(*) > {size}"
                    if info_field == "hasNextPage":
                        info_pairs.append((info_key, more if page.forward else "false"))
                    elif info_field == "hasPreviousPage":
                        info_pairs.append((info_key, "false" if page.forward else more))
                    elif info_field in ("startCursor", "endCursor"):
                        wants_cursor = True
                        order = output_order if info_field == "startCursor" else reverse_order
                        info_pairs.append(
                            (info_key, f"(array_agg({rows}.cur ORDER BY {order}) {in_page})[1]")
                        )
                    else:
                        info_pairs.append((info_key, f"'{sub_type.name}'"))
                pairs.append((key, _json_object(info_pairs)))
            elif name == "totalCount":
                pairs.append(
                    (
                        key,
                        count_sql(
                            spec, args, self.params, self.alias("c"), parent_alias, self.policy
                        ),
                    )
                )
            else:
                raise NotCompilable(f"connection field {name}")
        if wants_cursor:
            columns.append(f"{page.cursor_sql} AS cur")
        # GROUP BY (): one row even when the selection holds no aggregate (only __typename or
        # totalCount), and even when the page is empty.
        return (
            f"(SELECT {_json_object(pairs)} FROM (SELECT {', '.join(columns)}"
            f" {page.from_where} {page.order_limit}) {rows} GROUP BY ())"
        )

    def rows(self, spec: RowList, field: GraphQLField, details: FieldDetailsList) -> str:
        """A root list of plain rows: each row an object, in the source's ``id`` order."""
        alias = self.alias("r")
        source = spec.sql(self.arguments(field, details), self.params, self.policy, alias)
        body = self.object_json(self.catalog.rows[spec.type_name], alias, details)
        return f"(SELECT coalesce(json_agg({body} ORDER BY {alias}.id), '[]') {source})"

    # --- me, node(id:) and nodes(ids:) --------------------------------------------------------
    def one(self, entry: TypeEntry, key_sql: str, details: FieldDetailsList) -> str:
        """The object of ``entry``'s type whose id is ``key_sql``, if the viewer may see it
        (null otherwise), its read audited where that type's reads are."""
        inner = self.alias("o")
        where = f"{inner}.id = {key_sql}"
        visible = self.policy.condition(entry.name, inner, self.params)
        if visible is not None:
            where += f" AND {visible}"
        body = self.policy.audited(
            entry.name, inner, self.object_json(entry, inner, details), self.params
        )
        return f"(SELECT {body} FROM {entry.table} {inner} WHERE {where})"

    def me(self, details: FieldDetailsList) -> str:
        """The patient record the viewer's token speaks for (null for other roles)."""
        patient = self.params.add(Arg(None, lambda request: request.viewer.patient_id))
        return self.one(self.catalog.types["Patient"], f"{patient}::bigint", details)

    def nodes(self, field: GraphQLField, details: FieldDetailsList, *, many: bool) -> str:
        arg = self.arguments(field, details)["ids" if many else "id"]
        as_list: Callable[[Any], list[Any]] = (
            (lambda ids: list(ids)) if many else (lambda one: [one])
        )
        types = self.params.add(arg, lambda ids: [_type_of(one) for one in as_list(ids)])
        keys = self.params.add(arg, lambda ids: [_key_of(one) for one in as_list(ids)])
        cases = [
            f"WHEN '{entry.name}' THEN {self.one(entry, 'i.key', details)}"
            for entry in self.catalog.types.values()
        ]
        case = f"CASE i.type_name {' '.join(cases)} END"
        source = (
            f"unnest({types}::text[], {keys}::bigint[]) WITH ORDINALITY AS i(type_name, key, n)"
        )
        if many:
            return f"(SELECT coalesce(json_agg({case} ORDER BY i.n), '[]') FROM {source})"
        return f"(SELECT {case} FROM {source})"


def _type_of(global_id: Any) -> str | None:
    decoded = decode_global_id(str(global_id))
    return decoded[0] if decoded else None


def _key_of(global_id: Any) -> int | None:
    decoded = decode_global_id(str(global_id))
    return decoded[1] if decoded else None


def _as_json(expression: str, field: GraphQLField) -> str:
    """Floats and date-times are written exactly as the API's own JSON encoder writes them
    (51.0, not 51; six fractional digits or none), so both paths give the same bytes."""
    named = get_named_type(field.type)
    if named is GraphQLFloat:
        return f"cg_float(({expression})::float8)"
    if named.name == "DateTime":
        return f"cg_timestamp(({expression})::timestamptz)"
    return expression


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
