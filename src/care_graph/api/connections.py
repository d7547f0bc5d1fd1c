"""Connection fields, made from one list declaration instead of written out per field.

Every list field takes the same arguments — first/after, last/before, a filter and an ordering
of its own types — and resolves the same way; ``connection`` builds the strawberry field. This
module deliberately does not postpone annotations: the resolver's argument types must be the
real classes passed in, for strawberry to read them off its signature.
"""

from typing import Any

import strawberry

from care_graph.api.declare import SQL, Nested, Root
from care_graph.api.lists import ListSpec


def connection(
    node: type,
    spec: ListSpec,
    filter_type: type,
    order_type: Any,
    default_order: Any,
    *,
    description: str,
    nested: bool,
) -> Any:
    """A Relay connection field over ``spec``: a root list, or one nested under its parent."""
    from care_graph.api.types import Connection

    async def resolve(
        root: Any,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: filter_type | None = None,  # type: ignore[valid-type]
        order_by: order_type = default_order,
    ) -> Connection[node]:  # type: ignore[valid-type]
        arguments = {
            "first": first,
            "after": after,
            "last": last,
            "before": before,
            "filter": filter,
            "order_by": order_by,
        }
        parent = root if nested else None
        return Connection(page=await info.context.loaders.page(spec, parent, arguments))

    declaration = Nested(spec) if nested else Root(spec)
    return strawberry.field(resolver=resolve, description=description, metadata={SQL: declaration})
