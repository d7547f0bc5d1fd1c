"""runMatching: the matcher from GraphQL (domain/planning.py). PROPOSE returns the optimal
plan for a scope of the waiting list, explained, and keeps it under a key; COMMIT books a kept
plan (or a fresh one), skipping and reporting pairs that bookings made meanwhile have
overtaken (domain/commit.py)."""

from __future__ import annotations

from enum import Enum

import strawberry

from care_graph.api.enums import Priority
from care_graph.api.ids import encode_global_id
from care_graph.db.pool import OneConnection
from care_graph.domain import planning
from care_graph.domain.booking import Actor
from care_graph.domain.commit import Committed
from care_graph.matching.plan import MAX_LISTED, Plan, Scope


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


def _gid(type_name: str, key: int | None) -> strawberry.ID | None:
    return None if key is None else strawberry.ID(encode_global_id(type_name, key))


def _plan_type(plan: Plan, key: str, committed: Committed | None) -> MatchingPlan:
    """The GraphQL form of a plan as shown (``matching.plan.listed``)."""
    summary = plan.summary
    return MatchingPlan(
        plan_key=key,
        committed=None
        if committed is None
        else CommitResult(
            booked=len(committed.booked),
            skipped=[
                SkippedPair(
                    referral_id=strawberry.ID(encode_global_id("Referral", referral)),
                    slot_id=strawberry.ID(encode_global_id("Slot", slot)),
                )
                for referral, slot in committed.skipped
            ],
        ),
        summary=MatchingSummary(
            referrals=summary.referrals,
            matched=summary.matched,
            by_priority=[
                PriorityCount(
                    priority=count.priority,
                    matched=count.matched,
                    unmatched=count.unmatched,
                )
                for count in summary.by_priority
            ],
            seen_before_breach=summary.seen_before_breach,
            breaches_avoided=summary.breaches_avoided,
            breaches_expected=summary.breaches_expected,
            already_breached=summary.already_breached,
            mean_travel_km=summary.travel_km.mean,
            p95_travel_km=summary.travel_km.p95,
            mean_days_to_appointment=summary.days_to_appointment.mean,
            p95_days_to_appointment=summary.days_to_appointment.p95,
            seconds=round(plan.timings["total"], 3),
        ),
        assignments=[
            PlannedAssignment(
                referral_id=strawberry.ID(encode_global_id("Referral", item.referral)),
                slot_id=strawberry.ID(encode_global_id("Slot", item.slot)),
                priority=item.priority,
                weight=item.weight,
                km=item.km,
                days_until=item.days_until,
                breakdown=CostBreakdown(**item.breakdown),
            )
            for item in plan.assignments
        ],
        unmatched=[
            UnmatchedReferral(
                referral_id=strawberry.ID(encode_global_id("Referral", item.referral)),
                priority=item.priority,
                reason=item.reason.value,
                best_slot_id=_gid("Slot", item.best_slot),
                went_to_referral_id=_gid("Referral", item.went_to),
            )
            for item in plan.unmatched
        ],
    )


async def run_matching(
    info: strawberry.Info, scope: MatchingScope, mode: MatchingMode, plan_key: str | None
) -> MatchingPlan:
    """Propose the plan for a scope and keep it; in COMMIT mode book it, or book the plan kept
    under ``plan_key`` (clinic staff only: domain/planning.py)."""
    viewer = info.context.viewer
    matched = await planning.run_matching(
        OneConnection(info.context.loaders.connection),
        Actor(viewer.subject, viewer.role, None, viewer.site_ids),
        scope=Scope(scope.services, scope.regions, scope.horizon_days),
        plan_key=plan_key,
        commit=mode is MatchingMode.COMMIT,
        model=info.context.cost_model,
    )
    return _plan_type(matched.shown, matched.key, matched.committed)
