"""Matching as clinic staff run it, from GraphQL and the command line alike: propose the
optimal plan for a scope of the waiting list and keep it under a key, and commit a plan — the
one just proposed, or one kept earlier — in batches (domain/commit.py). Staff bound to sites
plan and book at their sites only."""

from __future__ import annotations

from dataclasses import dataclass, replace

from care_graph.db import booking_store
from care_graph.db.pool import Connection, ConnectionSource
from care_graph.domain.booking import Actor
from care_graph.domain.commit import Committed, check_may_match, commit_plan
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.matching.cost import CostModel
from care_graph.matching.plan import (
    Instance,
    Plan,
    Scope,
    keep,
    kept,
    pairs_of,
    propose_with_instance,
)

MAX_HORIZON_DAYS = 366  # a year of slots ahead, and a day


@dataclass(frozen=True, slots=True)
class Matched:
    """What a run of matching did: the plan's key, the plan (whole when proposed in this run;
    as shown when it was kept earlier), what is shown of it, what committing it booked, and
    the instance it was solved on (None for a kept plan)."""

    key: str
    plan: Plan
    shown: Plan
    committed: Committed | None
    instance: Instance | None


def check_scope(scope: Scope) -> None:
    """Refuse a scope matching cannot plan for."""
    if not 1 <= scope.horizon_days <= MAX_HORIZON_DAYS:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT, f"the horizon is 1 to {MAX_HORIZON_DAYS} days"
        )


async def _audit_reads(
    connection: Connection, actor: Actor, plan_key: str, instance: Instance
) -> None:
    """Proposing reads the home of every waiting patient in scope (for travel): one audit
    event names the referrals whose patients were read, and the plan it was read for."""
    await booking_store.audit(
        connection,
        actor.subject,
        str(actor.role),
        "READ",
        "referral",
        None,
        {"purpose": "matching", "plan": plan_key, "referrals": instance.referrals["id"].tolist()},
    )


async def run_matching(
    database: ConnectionSource,
    actor: Actor,
    *,
    scope: Scope | None = None,
    plan_key: str | None = None,
    commit: bool = False,
    model: CostModel | None = None,
    workers: int = 1,
    every_slot: bool = False,
) -> Matched:
    """Propose the plan for ``scope`` and keep it, and with ``commit`` book it; or book the
    plan kept under ``plan_key``. Clinic staff only. ``workers``: connections of ``database``
    booking batches at once; ``every_slot``: every feasible slot a candidate (for
    comparisons)."""
    check_may_match(actor)
    if plan_key is not None and not commit:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "a plan key is for committing")
    instance = None
    async with database.acquire() as connection:
        if plan_key is None:
            scope = scope or Scope()
            check_scope(scope)
            if actor.site_ids is not None:
                scope = replace(scope, site_ids=list(actor.site_ids))
            plan, instance = await propose_with_instance(
                connection, scope, model, every_slot=every_slot
            )
            pairs = pairs_of(plan)
            async with connection.transaction():
                plan_key, shown = await keep(connection, plan, actor.subject)
                await _audit_reads(connection, actor, plan_key, instance)
        else:
            shown, pairs = await kept(connection, plan_key)
            plan = shown
    committed = None
    if commit:
        committed = await commit_plan(database, actor, pairs, key=plan_key, workers=workers)
    return Matched(plan_key, plan, shown, committed, instance)
