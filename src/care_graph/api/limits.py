"""Limits on what one GraphQL document may ask: depth and aliases (tokens are capped by the
parser). Pages are capped in lists.py and run time by PostgreSQL's statement_timeout."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class Limits:
    """The most a document may ask for."""

    max_depth: int = 15
    max_aliases: int = 50
    max_tokens: int = 5000


def check_limits(document: DocumentNode, limits: Limits) -> list[ApiError]:
    """Errors for every limit the (already valid) document exceeds."""
    fragments = {
        definition.name.value: definition
        for definition in document.definitions
        if isinstance(definition, FragmentDefinitionNode)
    }
    errors = []
    for definition in document.definitions:
        if isinstance(definition, OperationDefinitionNode):
            depth = _depth(definition.selection_set, fragments, 0)
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
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode], level: int
) -> int:
    if selection_set is None:
        return level
    deepest = level
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            if selection.selection_set is not None:
                deepest = max(deepest, _depth(selection.selection_set, fragments, level + 1))
            else:
                deepest = max(deepest, level + 1)
        elif isinstance(selection, InlineFragmentNode):
            deepest = max(deepest, _depth(selection.selection_set, fragments, level))
        elif isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                deepest = max(deepest, _depth(fragment.selection_set, fragments, level))
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
