"""Referral rules in the domain, on a real database: booking numbers (UBRNs) drawn afresh when
the one drawn is taken, with PostgreSQL's own generator seeded so that draws repeat."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from care_graph.auth import Role
from care_graph.domain import referrals
from care_graph.domain.booking import Actor
from care_graph.domain.waiting_times import Priority
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.seed.load import advance_identities
from tests.test_auth import WORLD

REFERRER = Actor("gp-smith", Role.REFERRER)
DRAWS = 5  # referrals.UBRN_DRAWS, spelt out as the error message spells it


async def _refer(connection: asyncpg.Connection[Any]) -> str:
    """Refer patient 1 to cardiology; the new referral's UBRN."""
    referral_id = await referrals.create_referral(
        connection,
        REFERRER,
        patient=1,
        to_service="CARDIOLOGY",
        priority=Priority.ROUTINE,
        referrer_name="Dr A Smith",
        referrer_kind="GP",
        constraints=referrals.Constraints(),
    )
    ubrn: str = await connection.fetchval("SELECT ubrn FROM referrals WHERE id = $1", referral_id)
    return ubrn


async def test_a_taken_ubrn_is_drawn_again_a_bounded_number_of_times(
    connection: asyncpg.Connection[Any],
) -> None:
    await connection.execute(WORLD)
    await advance_identities(connection)
    ubrns: list[str] = []
    for _ in range(DRAWS):
        # the generator starts over each time: every draw before the last one is taken
        await connection.execute("SELECT setseed(0.5)")
        ubrns.append(await _refer(connection))
    assert len(set(ubrns)) == DRAWS
    assert all(len(ubrn) == 12 and ubrn.isdigit() for ubrn in ubrns)

    await connection.execute("SELECT setseed(0.5)")  # now all of its first draws are taken
    with pytest.raises(CareGraphError) as refused:
        await _refer(connection)
    assert refused.value.code is ErrorCode.CONFLICT_RETRY_EXHAUSTED
    assert refused.value.message == "every one of 5 booking numbers drawn was taken; try again"
    written = await connection.fetchrow(
        "SELECT (SELECT count(*) FROM referrals) AS referrals,"
        " (SELECT count(*) FROM referral_clock_events) AS clock_events"
    )
    assert written is not None
    # the world's two referrals and one per draw, each with its clock started; none refused
    assert (written["referrals"], written["clock_events"]) == (2 + DRAWS, DRAWS)
    assert referrals.UBRN_DRAWS == DRAWS
