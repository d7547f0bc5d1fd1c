"""Limits on what one GraphQL request may ask, all checked before any SQL: its size, depth,
aliases and estimated cost (tokens are capped by the parser). Pages are capped in lists.py and
run time by PostgreSQL's statement_timeout. docs/limits.md lists every limit."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    ValueNode,
    VariableNode,
    get_named_type,
)

from care_graph.api.declare import RootRows, sql_of
from care_graph.api.errors import ApiError, ApiErrorCode
from care_graph.config import Limits


def check_sizes(query: str, variables: Any, limits: Limits) -> ApiError | None:
    """INPUT_TOO_LARGE when the document's text (comments and whitespace included) or its
    variables (as JSON) are over their limits; checked before the document is parsed."""
    if len(query) > limits.max_document_bytes or (
        4 * len(query) > limits.max_document_bytes
        and len(query.encode("utf-8", "surrogatepass")) > limits.max_document_bytes
    ):
        return ApiError(
            ApiErrorCode.INPUT_TOO_LARGE,
            f"the document is over {limits.max_document_bytes} bytes",
        )
    if variables:
        try:
            size = len(orjson.dumps(variables))
        except TypeError:  # orjson writes at most 254 levels of nesting; no input type has more
            return ApiError(ApiErrorCode.INPUT_TOO_LARGE, "the variables nest too deep")
        if size > limits.max_variables_bytes:
            return ApiError(
                ApiErrorCode.INPUT_TOO_LARGE,
                f"the variables are over {limits.max_variables_bytes} bytes of JSON",
            )
    return None


def check_limits(document: DocumentNode, limits: Limits) -> list[ApiError]:
    """Errors for every limit the (already valid) document exceeds."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    errors = []
    depths: dict[str, int] = {}  # each fragment's depth, measured once
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            depth = _depth(definition.selection_set, fragments, depths)
            if depth > limits.max_depth:
                name = definition.name.value if definition.name else "anonymous"
                errors.append(
                    ApiError(
                        ApiErrorCode.QUERY_TOO_COMPLEX,
                        f"operation {name} nests {depth} levels deep;"
                        f" the limit is {limits.max_depth}",
                    )
                )
    aliases = _count_aliases(document)
    if aliases > limits.max_aliases:
        errors.append(
            ApiError(
                ApiErrorCode.QUERY_TOO_COMPLEX,
                f"the document uses {aliases} aliases; the limit is {limits.max_aliases}",
            )
        )
    return errors


def _depth(
    selection_set: SelectionSetNode | None,
    fragments: dict[str, FragmentDefinitionNode],
    depths: dict[str, int],
) -> int:
    """How many levels of fields the selection nests. Each fragment is measured once and
    remembered, so the work is linear in the document however often fragments are spread
    (validation has refused cycles already)."""
    if selection_set is None:
        return 0
    deepest = 0
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            deepest = max(deepest, 1 + _depth(selection.selection_set, fragments, depths))
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, depths))
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            if name not in depths and name in fragments:
                depths[name] = _depth(fragments[name].selection_set, fragments, depths)
            deepest = max(deepest, depths.get(name, 0))
    return deepest


def _count_aliases(document: DocumentNode) -> int:
    count = 0
    stack: list[SelectionSetNode] = [
        definition.selection_set
        for definition in document.definitions
        if isinstance(definition, OperationDefinitionNode | FragmentDefinitionNode)
    ]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FieldNode) and selection.alias is not None:
                count += 1
            selection_set = getattr(selection, "selection_set", None)
            if selection_set is not None:
                stack.append(selection_set)
    return count


# what a page costs when the document names no size (lists.DEFAULT_PAGE_SIZE, kept in step)
_UNSIZED_PAGE = 20
# a totalCount counts every row its filter matches: at the root, as many as two full pages;
# nested (a patient's referrals), a default page's worth
_ROOT_COUNT_COST = 200
_NESTED_COUNT_COST = 20
# a root row list (the capacity outlook) aggregates many rows into each of its own, as a
# totalCount at the root does
_AGGREGATE_COST = _ROOT_COUNT_COST
# an introspection root answers the whole schema (a few hundred types and fields)
_INTROSPECTION_COST = {"__schema": 500, "__type": 10}


def check_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    variables: Mapping[str, Any],
    budget: int,
    limits: Limits,
) -> ApiError | None:
    """QUERY_TOO_COMPLEX when the operation's estimated rows exceed ``budget``, INPUT_TOO_LARGE
    when a list argument holds more than ``limits.max_ids`` items; None when it may run.
    ``variables`` are the coerced values. Runs before any SQL."""
    estimate = _CostWalk(schema, document, variables, limits.max_ids)
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    try:
        cost = estimate.selection_cost(root, operation.selection_set)
    except _ListTooLong as error:
        return ApiError(
            ApiErrorCode.INPUT_TOO_LARGE,
            f"argument {error.argument} of {error.field} holds {error.length} items;"
            f" the limit is {limits.max_ids}",
        )
    if cost <= budget:
        return None
    return ApiError(
        ApiErrorCode.QUERY_TOO_COMPLEX,
        f"the operation could read about {cost} rows; the limit for this caller is {budget}."
        " Ask for smaller pages or fewer nested lists",
        extensions={"cost": cost, "limit": budget},
    )


def _longest_in(value: Any) -> int:
    """The most items of any list in a coerced variable's value."""
    if isinstance(value, list):
        return max([len(value), *(_longest_in(item) for item in value)])
    if isinstance(value, dict):
        return max([0, *(_longest_in(item) for item in value.values())])
    return 0


class _ListTooLong(Exception):
    def __init__(self, field: str, argument: str, length: int) -> None:
        super().__init__(field, argument, length)
        self.field, self.argument, self.length = field, argument, length


class _CostWalk:
    """Estimated rows an operation reads: a page multiplies what it selects by its size, a list
    argument (``nodes(ids:)``) by its length, a root row list by the rows its arguments ask
    for (plus what it aggregates), any other object counts one row, and the
    connection's own wrappers (edges, node, pageInfo) count none. Each fragment is costed once
    per type it is spread into (a fragment's cost does not depend on where it is spread), so
    the walk is linear in the document; validation has refused fragment cycles."""

    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, Any],
        max_list: int,
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.max_list = max_list
        self.fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        self.fragment_costs: dict[str, int] = {}
        self.fragment_counts: dict[str, bool] = {}

    def _counts(self, selection_set: SelectionSetNode) -> bool:
        """Whether the selection asks for totalCount, directly or through its fragments (each
        fragment looked into once)."""
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                if selection.name.value == "totalCount":
                    return True
            elif isinstance(selection, InlineFragmentNode):
                if self._counts(selection.selection_set):
                    return True
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name not in self.fragment_counts:
                    self.fragment_counts[name] = False  # a cycle, refused by validation anyway
                    fragment = self.fragments.get(name)
                    self.fragment_counts[name] = fragment is not None and self._counts(
                        fragment.selection_set
                    )
                if self.fragment_counts[name]:
                    return True
        return False

    def selection_cost(self, parent: GraphQLNamedType, selection_set: SelectionSetNode) -> int:
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self._field_cost(parent, selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selection_cost(inner or parent, selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode):
                total += self._fragment_cost(selection.name.value)
        return total

    def _fragment_cost(self, name: str) -> int:
        if name not in self.fragment_costs:
            fragment = self.fragments.get(name)
            inner = self.schema.get_type(fragment.type_condition.name.value) if fragment else None
            self.fragment_costs[name] = (
                self.selection_cost(inner, fragment.selection_set) if fragment and inner else 0
            )
        return self.fragment_costs[name]

    def _field_cost(self, parent: GraphQLNamedType, node: FieldNode) -> int:
        name = node.name.value
        if name in _INTROSPECTION_COST:
            return _INTROSPECTION_COST[name]
        definition = (
            parent.fields.get(name)
            if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType)
            else None
        )
        arguments = {argument.name.value: argument.value for argument in node.arguments or ()}
        rows = 1
        for argument, value in arguments.items():
            longest = self._longest_list(value)  # anywhere in it, input objects included
            if longest > self.max_list:
                raise _ListTooLong(f"{parent.name}.{name}", argument, longest)
            length = self._list_length(value)
            if length is not None:
                rows = max(rows, length)
        if definition is None or node.selection_set is None:
            return 0  # a scalar, an enum or __typename: read with its row
        inner = get_named_type(definition.type)
        below = self.selection_cost(inner, node.selection_set)
        if "first" in definition.args or "last" in definition.args:
            rows = self._page_size(arguments)
        row_list = _row_list(definition)
        if row_list is not None:
            given = {name: self._value(value) for name, value in arguments.items()}
            return _AGGREGATE_COST + row_list.spec.rows(given) * (1 + below)
        if parent.name.endswith(("Connection", "Edge")):
            return below  # edges, node, nodes: the page's rows, counted by its field
        counted = 0
        if inner.name.endswith("Connection") and self._counts(node.selection_set):
            # a count reads every row its filter matches, however small the page: a list at
            # the root may match a table, a nested one only its parent's rows
            counted = _ROOT_COUNT_COST if parent is self.schema.query_type else _NESTED_COUNT_COST
        return counted + max(rows, 1) * (1 + below)  # a page of none still searches for it

    def _page_size(self, arguments: dict[str, ValueNode]) -> int:
        for name in ("first", "last"):
            value = self._value(arguments.get(name))
            if isinstance(value, int) and value >= 0:
                return value
        return _UNSIZED_PAGE

    def _list_length(self, node: ValueNode) -> int | None:
        if isinstance(node, ListValueNode):
            return len(node.values)
        if isinstance(node, VariableNode):
            value = self.variables.get(node.name.value)
            return len(value) if isinstance(value, list) else None
        return None

    def _longest_list(self, node: ValueNode) -> int:
        """The most items of any list in an argument's value, nested ones included."""
        if isinstance(node, ListValueNode):
            return max([len(node.values), *(self._longest_list(item) for item in node.values)])
        if isinstance(node, ObjectValueNode):
            return max([0, *(self._longest_list(field.value) for field in node.fields)])
        if isinstance(node, VariableNode):
            return _longest_in(self.variables.get(node.name.value))
        return 0

    def _value(self, node: ValueNode | None) -> Any:
        if isinstance(node, VariableNode):
            return self.variables.get(node.name.value)
        if isinstance(node, IntValueNode) and len(node.value) <= 12:  # first/last: an Int
            return int(node.value)
        if isinstance(node, StringValueNode):
            return node.value
        return None


def _row_list(definition: Any) -> RootRows | None:
    """The root row list a field declares, if it is one."""
    strawberry_field = definition.extensions.get("strawberry-definition")
    declaration = sql_of(strawberry_field.metadata) if strawberry_field is not None else None
    return declaration if isinstance(declaration, RootRows) else None
