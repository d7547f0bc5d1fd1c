"""Limits on what one GraphQL document may ask: depth and aliases (tokens are capped by the
parser). Pages are capped in lists.py and run time by PostgreSQL's statement_timeout."""

from __future__ import annotations

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
)

from care_graph.api.errors import ApiError, ApiErrorCode
from care_graph.config import Limits


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
