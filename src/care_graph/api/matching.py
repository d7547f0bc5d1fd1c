"""runMatching: the matcher from GraphQL. PROPOSE returns the optimal plan for a scope of the
waiting list, explained; COMMIT also books it (domain/commit.py), skipping and reporting pairs
that bookings made meanwhile have overtaken."""

from __future__ import annotations

from enum import Enum
from typing import Any

import strawberry

from care_graph.api.enums import Priority
from care_graph.api.ids import encode_global_id
from care_graph.db.pool import OneConnection
from care_graph.domain.booking import Actor
from care_graph.domain.commit import commit_plan
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.matching.plan import Plan, Scope, propose

MAY_MATCH = frozenset({"clinician", "scheduler", "admin"})
MAX_LISTED = 1000


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
    seen_before_breach: int
    breaches_expected: int
    mean_travel_km: float
    p95_travel_km: float
    mean_days_to_appointment: float
    p95_days_to_appointment: float
    seconds: float


@strawberry.type(description="A planned pair that no longer held when the plan was committed.")
class SkippedPair:
    referral_id: strawberry.ID
    slot_id: strawberry.ID


@strawberry.type(description="What committing the plan booked.")
class CommitResult:
    plan_key: str = strawberry.field(description="Committing the same plan again books nothing.")
    booked: int
    skipped: list[SkippedPair]


@strawberry.type(description="An optimal matching of a scope of the waiting list.")
class MatchingPlan:
    summary: MatchingSummary
    committed: CommitResult | None = strawberry.field(description="Set in COMMIT mode.")
    assignments: list[PlannedAssignment] = strawberry.field(
        description=f"The first {MAX_LISTED} assignments, most urgent first."
    )
    unmatched: list[UnmatchedReferral] = strawberry.field(
        description=f"The first {MAX_LISTED} referrals left waiting, most urgent first."
    )


def _plan_type(plan: Plan, committed: CommitResult | None = None) -> MatchingPlan:
    summary = plan.summary
    tier = {name: index for index, name in enumerate(("URGENT", "TWO_WEEK_WAIT", "ROUTINE"))}
    assignments = sorted(plan.assignments, key=lambda item: tier[item["priority"]])[:MAX_LISTED]
    unmatched = sorted(plan.unmatched, key=lambda item: tier[item["priority"]])[:MAX_LISTED]

    def gid(type_name: str, key: Any) -> strawberry.ID | None:
        return None if key is None else strawberry.ID(encode_global_id(type_name, int(key)))

    return MatchingPlan(
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
            breaches_expected=summary["breaches_expected"],
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
            for item in assignments
        ],
        unmatched=[
            UnmatchedReferral(
                referral_id=strawberry.ID(encode_global_id("Referral", item["referral"])),
                priority=Priority(item["priority"]),
                reason=item["reason"],
                best_slot_id=gid("Slot", item.get("best_slot")),
                went_to_referral_id=gid("Referral", item.get("went_to")),
            )
            for item in unmatched
        ],
    )


async def run_matching(
    info: strawberry.Info, scope: MatchingScope, mode: MatchingMode
) -> MatchingPlan:
    """Propose the plan for a scope, and in COMMIT mode book it (clinic staff only)."""
    if str(info.context.viewer.role) not in MAY_MATCH:
        raise CareGraphError(ErrorCode.FORBIDDEN, "matching is run by clinic staff")
    if not 1 <= scope.horizon_days <= 366:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "the horizon is 1 to 366 days")
    connection = info.context.loaders.connection
    plan = await propose(connection, Scope(scope.services, scope.regions, scope.horizon_days))
    if mode is MatchingMode.PROPOSE:
        return _plan_type(plan)
    viewer = info.context.viewer
    done = await commit_plan(
        OneConnection(connection),
        Actor(viewer.subject, str(viewer.role), None, viewer.site_ids),
        [(item["referral"], item["slot"]) for item in plan.assignments],
    )
    skipped = [
        SkippedPair(
            referral_id=strawberry.ID(encode_global_id("Referral", referral)),
            slot_id=strawberry.ID(encode_global_id("Slot", slot)),
        )
        for referral, slot in done.skipped
    ]
    return _plan_type(
        plan, CommitResult(plan_key=done.plan_key, booked=len(done.booked), skipped=skipped)
    )
