"""What the schema declares, read back once from the built GraphQL schema: for each node type,
its table and the SQL declaration of each field, keyed by GraphQL name, and the same for the
plain row types of root row lists. Both execution paths look fields up here."""

from __future__ import annotations

from dataclasses import dataclass, field

from graphql import GraphQLObjectType, GraphQLSchema

from care_graph.api.declare import Column, Declaration, ToOne, sql_of
from care_graph.api.types import NODE_TABLES, ROW_TYPES


@dataclass(slots=True)
class TypeEntry:
    """One node type: its table and its fields' declarations."""

    name: str
    table: str
    fields: dict[str, Declaration] = field(default_factory=dict)

    def row_sql(self, alias: str) -> str:
        """The select list the resolver path loads for this type: every column, every link key."""
        parts = [f"{alias}.id AS __pk"]
        for name, declaration in self.fields.items():
            if isinstance(declaration, Column):
                parts.append(f'({declaration.sql.format(t=alias)}) AS "{name}"')
            elif isinstance(declaration, ToOne):
                parts.append(f'{declaration.key_sql.format(t=alias)} AS "__{name}"')
        return ", ".join(parts)


@dataclass(slots=True)
class Catalog:
    """Node types by name, plain row types by name (their ``table`` empty: rows of a query,
    never looked up by id), and the root fields' declarations."""

    types: dict[str, TypeEntry]
    root: dict[str, Declaration]
    rows: dict[str, TypeEntry] = field(default_factory=dict)

    @classmethod
    def from_schema(cls, schema: GraphQLSchema) -> Catalog:
        """Read every declaration out of the built schema."""
        types = {name: _entry(schema, name, table) for name, table in NODE_TABLES.items()}
        rows = {name: _entry(schema, name, "") for name in ROW_TYPES}
        query = schema.query_type
        assert query is not None
        return cls(types, _declarations(query), rows)


def _entry(schema: GraphQLSchema, name: str, table: str) -> TypeEntry:
    graphql_type = schema.get_type(name)
    assert isinstance(graphql_type, GraphQLObjectType)
    return TypeEntry(name, table, _declarations(graphql_type))


def _declarations(graphql_type: GraphQLObjectType) -> dict[str, Declaration]:
    found = {}
    for name, graphql_field in graphql_type.fields.items():
        definition = graphql_field.extensions.get("strawberry-definition")
        declaration = sql_of(definition.metadata) if definition is not None else None
        if declaration is not None:
            found[name] = declaration
    return found
