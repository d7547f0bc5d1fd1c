"""Scalars the API takes more narrowly than strawberry's own, where the database would not keep
a value as it was sent.

``Date``: asyncpg sends ``date.min`` (0001-01-01) and ``date.max`` (9999-12-31) as PostgreSQL's
``-infinity`` and ``infinity``. Kept, such a date read back as "-infinity" on the compiled path
(PostgreSQL writes the JSON) and as 0001-01-01 on the resolver path; a roster on it made shifts
from infinity to infinity. So those two days are refused wherever a Date is taken, as any other
value that is not a date is (BAD_USER_INPUT in variables, GRAPHQL_VALIDATION_FAILED in the
document). The name and description stay strawberry's, so the SDL does not change.

Example::

    strawberry.Schema(query=Query, config=StrawberryConfig(scalar_map=SCALARS))
"""

from __future__ import annotations

import datetime as dt

import strawberry
from graphql import GraphQLError
from strawberry.types.scalar import ScalarDefinition

# the days asyncpg stores as -infinity and infinity
UNSTORABLE_DAYS = (dt.date.min, dt.date.max)


def parse_date(value: object) -> dt.date:
    """An ISO date other than the two asyncpg turns into infinities; a coercion error (as
    strawberry's own Date words it) otherwise."""
    if not isinstance(value, str):
        raise GraphQLError(f'Value cannot represent a Date: "{value}". Expected a string.')
    try:
        day = dt.date.fromisoformat(value)
    except ValueError as error:
        raise GraphQLError(f'Value cannot represent a Date: "{value}". {error}') from None
    if day in UNSTORABLE_DAYS:
        raise GraphQLError(
            f'Value cannot represent a Date: "{value}". Dates from 0001-01-02 to 9999-12-30'
            " are taken"
        )
    return day


DATE = strawberry.scalar(
    name="Date",
    description="Date (isoformat)",
    serialize=dt.date.isoformat,
    parse_value=parse_date,
)

SCALARS: dict[object, ScalarDefinition] = {dt.date: DATE}
