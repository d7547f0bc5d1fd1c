"""runMatching: the matcher from GraphQL. PROPOSE returns the optimal plan for a scope of the
waiting list, explained, and keeps it under a key; COMMIT books a kept plan (or a fresh one),
skipping and reporting pairs that bookings made meanwhile have overtaken (domain/commit.py)."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from care_graph.api.enums import Priority
from care_graph.api.ids import encode_global_id
from care_graph.db.pool import OneConnection
from care_graph.domain.booking import Actor
from care_graph.domain.commit import MAY_MATCH, commit_plan
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.matching.plan import MAX_LISTED, Plan, Scope, keep, kept, pairs_of, propose


@strawberry.enum(description="What runMatching does with the plan.")
class MatchingMode(Enum):
    PROPOSE = "PROPOSE"
    COMMIT = "COMMIT"


@strawberry.input(description="Which part of the waiting list to match.")
class MatchingScope:
    services: list[str] | None = strawberry.field(default=None, description="Service codes.")
    regions: list[str] | None = strawberry.field(default=None, description="Region codes.")
    horizon_days: int = strawberry.field(default=56, description="Slots up to this far ahead.")


@strawberry.type(description="The points that made up an assignment's weight.")
class CostBreakdown:
    waiting: int
    breach_risk: int
    in_time: int
    travel: int
    delay: int
    preference: int


@strawberry.type(description="A referral the plan would book into a slot.")
class PlannedAssignment:
    referral_id: strawberry.ID
    slot_id: strawberry.ID
    priority: Priority
    weight: int
    km: float
    days_until: int
    breakdown: CostBreakdown


@strawberry.type(description="A referral the plan leaves waiting, and why.")
class UnmatchedReferral:
    referral_id: strawberry.ID
    priority: Priority
    reason: str = strawberry.field(
        description="NO_CAPACITY_WITHIN_REACH, or SLOTS_WENT_TO_OTHERS (see wentTo)"
    )
    best_slot_id: strawberry.ID | None
    went_to_referral_id: strawberry.ID | None


@strawberry.type(description="How many of a priority the plan matches.")
class PriorityCount:
    priority: Priority
    matched: int
    unmatched: int


@strawberry.type(description="The plan in figures.")
class MatchingSummary:
    referrals: int
    matched: int
    by_priority: list[PriorityCount]
    seen_before_breach: int = strawberry.field(
        description="Matched to a slot on or before the referral's breach date."
    )
    breaches_avoided: int = strawberry.field(
        description="Seen before a breach date that falls within the horizon."
    )
    breaches_expected: int = strawberry.field(
        description="Seen after the breach date, or not seen with it within the horizon."
    )
    already_breached: int = strawberry.field(description="Waiting past the breach date already.")
    mean_travel_km: float | None = strawberry.field(description="Null when nothing is matched.")
    p95_travel_km: float | None
    mean_days_to_appointment: float | None
    p95_days_to_appointment: float | None
    seconds: float


@strawberry.type(description="A planned pair that no longer held when the plan was committed.")
class SkippedPair:
    referral_id: strawberry.ID
    slot_id: strawberry.ID


@strawberry.type(description="What committing the plan booked.")
class CommitResult:
    booked: int
    skipped: list[SkippedPair]


@strawberry.type(description="An optimal matching of a scope of the waiting list.")
class MatchingPlan:
    plan_key: str = strawberry.field(
        description="Commit exactly this plan with runMatching(mode: COMMIT, planKey:);"
        " committing it again books nothing."
    )
    summary: MatchingSummary
    committed: CommitResult | None = strawberry.field(description="Set in COMMIT mode.")
    assignments: list[PlannedAssignment] = strawberry.field(
        description=f"The first {MAX_LISTED} assignments, most urgent first."
    )
    unmatched: list[UnmatchedReferral] = strawberry.field(
        description=f"The first {MAX_LISTED} referrals left waiting, most urgent first."
    )


def _plan_type(plan: Plan, key: str, committed: CommitResult | None = None) -> MatchingPlan:
    """The GraphQL form of a plan as listed (``matching.plan.listed``)."""
    summary = plan.summary

    def gid(type_name: str, key: Any) -> strawberry.ID | None:
        return None if key is None else strawberry.ID(encode_global_id(type_name, int(key)))

    return MatchingPlan(
        plan_key=key,
        committed=committed,
        summary=MatchingSummary(
            referrals=summary["referrals"],
            matched=summary["matched"],
            by_priority=[
                PriorityCount(
                    priority=Priority(name),
                    matched=counts["matched"],
                    unmatched=counts["unmatched"],
                )
                for name, counts in summary["by_priority"].items()
            ],
            seen_before_breach=summary["seen_before_breach"],
            breaches_avoided=summary["breaches_avoided"],
            breaches_expected=summary["breaches_expected"],
            already_breached=summary["already_breached"],
            mean_travel_km=summary["travel_km"]["mean"],
            p95_travel_km=summary["travel_km"]["p95"],
            mean_days_to_appointment=summary["days_to_appointment"]["mean"],
            p95_days_to_appointment=summary["days_to_appointment"]["p95"],
            seconds=round(plan.timings["total"], 3),
        ),
        assignments=[
            PlannedAssignment(
                referral_id=strawberry.ID(encode_global_id("Referral", item["referral"])),
                slot_id=strawberry.ID(encode_global_id("Slot", item["slot"])),
                priority=Priority(item["priority"]),
                weight=item["weight"],
                km=item["km"],
                days_until=item["days_until"],
                breakdown=CostBreakdown(**item["breakdown"]),
            )
            for item in plan.assignments
        ],
        unmatched=[
            UnmatchedReferral(
                referral_id=strawberry.ID(encode_global_id("Referral", item["referral"])),
                priority=Priority(item["priority"]),
                reason=item["reason"],
                best_slot_id=gid("Slot", item.get("best_slot")),
                went_to_referral_id=gid("Referral", item.get("went_to")),
            )
            for item in plan.unmatched
        ],
    )


async def run_matching(
    info: strawberry.Info, scope: MatchingScope, mode: MatchingMode, plan_key: str | None
) -> MatchingPlan:
    """Propose the plan for a scope and keep it; in COMMIT mode book it, or book the plan kept
    under ``plan_key`` (clinic staff only)."""
    viewer = info.context.viewer
    if str(viewer.role) not in MAY_MATCH:
        raise CareGraphError(ErrorCode.FORBIDDEN, "matching is run by clinic staff")
    if not 1 <= scope.horizon_days <= 366:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "the horizon is 1 to 366 days")
    connection = info.context.loaders.connection
    if plan_key is None:
        sites = None if viewer.site_ids is None else list(viewer.site_ids)
        proposed = await propose(
            connection,
            Scope(scope.services, scope.regions, scope.horizon_days, sites),
            info.context.cost_model,
        )
        pairs = pairs_of(proposed)
        plan_key, plan = await keep(connection, proposed, viewer.subject)
    elif mode is MatchingMode.PROPOSE:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "a planKey is for COMMIT")
    else:
        plan, pairs = await kept(connection, plan_key)
    if mode is MatchingMode.PROPOSE:
        return _plan_type(plan, plan_key)
    done = await commit_plan(
        OneConnection(connection),
        Actor(viewer.subject, viewer.role, None, viewer.site_ids),
        pairs,
        key=plan_key,
    )
    skipped = [
        SkippedPair(
            referral_id=strawberry.ID(encode_global_id("Referral", referral)),
            slot_id=strawberry.ID(encode_global_id("Slot", slot)),
        )
        for referral, slot in done.skipped
    ]
    return _plan_type(plan, plan_key, CommitResult(booked=len(done.booked), skipped=skipped))
