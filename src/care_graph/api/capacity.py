"""recommendCapacity and applyCapacityPlan: the capacity recommender from GraphQL
(care_graph.simulation.recommend, docs/rostering.md). The recommendation's draft roster is a
list of PublishRosterInput values, so that applyCapacityPlan (or publishRoster entry by entry)
applies it as it is."""

from __future__ import annotations

from datetime import date, time, timedelta

import strawberry

from care_graph.api.ids import encode_global_id
from care_graph.api.policy import CLINIC_STAFF
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.heavy import run_heavy
from care_graph.simulation import recommend as recommending
from care_graph.simulation.snapshot import snapshot
from care_graph.simulation.world import Assumptions

MIN_WEEKS, MAX_WEEKS = 2, 53


@strawberry.type(description="A weekly clinic the recommendation adds.")
class RecommendedClinic:
    staff_id: strawberry.ID
    site_id: strawberry.ID
    service: str
    weekday: int = strawberry.field(description="ISO weekday: 1 is Monday.")
    starts: time
    ends: time
    days: list[date] = strawberry.field(description="Every date it runs, within the rules.")
    slots: int
    breaches_avoided: int = strawberry.field(
        description="Breaches the matching model avoids by adding it to the clinics before it"
        " (read down the list: the diminishing-returns curve)."
    )


@strawberry.type(description="One entry of a draft roster: publishRoster's input, as it is.")
class RosterDraft:
    staff_id: strawberry.ID
    site_id: strawberry.ID
    service: str
    weekdays: list[int]
    starts: time
    ends: time
    first_day: date
    last_day: date


@strawberry.type(description="Weekly clinics that avoid the most breaches, and their roster.")
class CapacityRecommendation:
    region: str
    budget: int
    feasible: int = strawberry.field(description="Candidate clinics the rostering rules allow.")
    considered: int = strawberry.field(description="Candidates valued exactly by the matcher.")
    baseline_breaches: int = strawberry.field(
        description="Breaches the matching model sees on today's capacity over the weeks."
    )
    breaches_avoided: int
    clinics: list[RecommendedClinic]
    roster: list[RosterDraft]


async def recommend_capacity(
    info: strawberry.Info, region: str, budget: int, weeks: int
) -> CapacityRecommendation:
    """The recommendation for ``region`` (clinic staff only; run as heavy work: one at a time
    per worker, SERVICE_UNAVAILABLE while another runs)."""
    if info.context.viewer.role not in CLINIC_STAFF:
        raise CareGraphError(ErrorCode.FORBIDDEN, "capacity is planned by clinic staff")
    if not 1 <= budget <= recommending.MAX_BUDGET:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT, f"budget is 1 to {recommending.MAX_BUDGET} clinics"
        )
    if not MIN_WEEKS <= weeks <= MAX_WEEKS:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"weeks is {MIN_WEEKS} to {MAX_WEEKS}")
    world = await snapshot(info.context.loaders.connection, region)
    chosen = await run_heavy(
        recommending.recommend,
        world,
        Assumptions(horizon_days=weeks * 7),
        budget,
        model=info.context.cost_model,
    )
    return CapacityRecommendation(
        region=chosen.region,
        budget=chosen.budget,
        feasible=chosen.feasible,
        considered=chosen.considered,
        baseline_breaches=chosen.baseline_breaches,
        breaches_avoided=chosen.avoided,
        clinics=[
            RecommendedClinic(
                staff_id=strawberry.ID(encode_global_id("Staff", pick.candidate.staff)),
                site_id=strawberry.ID(encode_global_id("Site", pick.candidate.site)),
                service=pick.candidate.service,
                weekday=pick.candidate.weekday,
                starts=pick.candidate.starts,
                ends=pick.candidate.ends,
                days=[chosen.today + timedelta(days=day) for day in pick.candidate.days],
                slots=pick.slots,
                breaches_avoided=pick.avoided,
            )
            for pick in chosen.picks
        ],
        roster=[
            RosterDraft(
                staff_id=strawberry.ID(encode_global_id("Staff", entry["staff"])),
                site_id=strawberry.ID(encode_global_id("Site", entry["site"])),
                service=entry["service"],
                weekdays=entry["weekdays"],
                starts=time.fromisoformat(entry["starts"]),
                ends=time.fromisoformat(entry["ends"]),
                first_day=date.fromisoformat(entry["firstDay"]),
                last_day=date.fromisoformat(entry["lastDay"]),
            )
            for entry in chosen.roster()
        ],
    )
