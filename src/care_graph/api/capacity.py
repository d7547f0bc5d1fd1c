"""recommendCapacity, applyCapacityPlan and simulateCapacity: the capacity recommender and
the simulator from GraphQL (care_graph.simulation; docs/rostering.md, docs/simulation.md).
The recommendation's draft roster is a list of PublishRosterInput values, so that
applyCapacityPlan (or publishRoster entry by entry) applies it as it is; a scenario input is
checked where scenario files are (Scenario.from_json)."""

from __future__ import annotations

import math
from datetime import date, time, timedelta

import strawberry

from care_graph.api.ids import encode_global_id, key_of_type
from care_graph.api.policy import CLINIC_STAFF
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.heavy import run_heavy
from care_graph.simulation import recommend as recommending
from care_graph.simulation.scenarios import Scenario
from care_graph.simulation.snapshot import snapshot
from care_graph.simulation.study import Interval, study
from care_graph.simulation.world import Assumptions, Policy

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
                staff_id=strawberry.ID(encode_global_id("Staff", pick.candidate.staff)),
                site_id=strawberry.ID(encode_global_id("Site", pick.candidate.site)),
                service=pick.candidate.service,
                weekdays=[pick.candidate.weekday],
                starts=pick.candidate.starts,
                ends=pick.candidate.ends,
                first_day=chosen.today + timedelta(days=first),
                last_day=chosen.today + timedelta(days=last),
            )
            for pick in chosen.picks
            for first, last in pick.candidate.runs()
        ],
    )


MAX_GRAPHQL_REPLICATIONS = 10


@strawberry.input(description="A weekly pattern of clinics a scenario adds or removes.")
class ScenarioSessionsInput:
    service: str
    site_id: strawberry.ID
    first_day: date
    last_day: date
    staff_id: strawberry.ID | None = strawberry.field(
        default=None, description="Who runs them: required to add, optional to remove."
    )
    weekdays: list[int] = strawberry.field(
        default_factory=lambda: [1, 2, 3, 4, 5], description="ISO weekdays: 1 is Monday."
    )
    starts: time = time(9, 0)
    ends: time = time(13, 0)


@strawberry.input(description="Referrals arriving at this factor of the recorded rate.")
class ArrivalFactorInput:
    service: str = strawberry.field(description="A service code, or * for every service.")
    factor: float


@strawberry.input(description="A what-if scenario, as a scenario file describes one.")
class ScenarioInput:
    name: str
    add: list[ScenarioSessionsInput] = strawberry.field(default_factory=list)
    remove: list[ScenarioSessionsInput] = strawberry.field(default_factory=list)
    travel_factor: float = 1.0
    arrival_factors: list[ArrivalFactorInput] = strawberry.field(default_factory=list)


@strawberry.type(
    description="A mean over replications with its 95% confidence interval (null where"
    " nothing was counted, e.g. the wait of a list that emptied)."
)
class Estimate:
    mean: float | None
    low: float | None
    high: float | None


@strawberry.type(description="What one scenario came to over the weeks (care_graph's booking).")
class SimulatedScenario:
    name: str
    breaches: Estimate
    urgent_breaches: Estimate = strawberry.field(description="URGENT and TWO_WEEK_WAIT.")
    seen: Estimate
    p92_weeks_waiting: Estimate
    utilisation: Estimate
    mean_travel_km: Estimate
    breaches_against_baseline: Estimate | None = strawberry.field(
        description="Paired by seed (common random numbers); null for the baseline itself."
    )


def _scenario(value: ScenarioInput) -> Scenario:
    """The scenario, checked where scenario files are (Scenario.from_json)."""

    def sessions(item: ScenarioSessionsInput) -> dict[str, object]:
        pattern: dict[str, object] = {
            "service": item.service,
            "site": _key(item.site_id, "Site"),
            "weekdays": item.weekdays,
            "starts": item.starts.isoformat("minutes"),
            "ends": item.ends.isoformat("minutes"),
            "from": item.first_day.isoformat(),
            "to": item.last_day.isoformat(),
        }
        if item.staff_id is not None:
            pattern["staff"] = _key(item.staff_id, "Staff")
        return pattern

    try:
        return Scenario.from_json(
            {
                "name": value.name,
                "add": [sessions(item) for item in value.add],
                "remove": [sessions(item) for item in value.remove],
                "travel_factor": value.travel_factor,
                "arrival_factors": {f.service: f.factor for f in value.arrival_factors},
            }
        )
    except ValueError as error:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"the scenario: {error}") from None


def _key(global_id: strawberry.ID, type_name: str) -> int:
    key = key_of_type(str(global_id), type_name)
    if key is None:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"not a {type_name} id")
    return key


def _estimate(value: Interval) -> Estimate:
    def shown(number: float) -> float | None:
        return None if math.isnan(number) else number

    return Estimate(mean=shown(value.mean), low=shown(value.low), high=shown(value.high))


async def simulate_capacity(
    info: strawberry.Info,
    region: str,
    scenario: ScenarioInput | None,
    weeks: int,
    replications: int,
) -> list[SimulatedScenario]:
    """The baseline and (when given) the scenario over ``weeks`` weeks, ``replications``
    times on common random numbers (clinic staff only; run as heavy work)."""
    if info.context.viewer.role not in CLINIC_STAFF:
        raise CareGraphError(ErrorCode.FORBIDDEN, "capacity is planned by clinic staff")
    if not 1 <= weeks <= MAX_WEEKS:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"weeks is 1 to {MAX_WEEKS}")
    if not 1 <= replications <= MAX_GRAPHQL_REPLICATIONS:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT, f"replications is 1 to {MAX_GRAPHQL_REPLICATIONS}"
        )
    scenarios = [Scenario()]
    if scenario is not None:
        scenarios.append(_scenario(scenario))
        if scenarios[1].name == "baseline":
            raise CareGraphError(ErrorCode.INVALID_ARGUMENT, "name the scenario: not baseline")
    world = await snapshot(info.context.loaders.connection, region)
    try:
        result = await run_heavy(
            study,
            world,
            Assumptions(horizon_days=weeks * 7),
            policies=(Policy.CARE_GRAPH,),
            scenarios=scenarios,
            replications=replications,
            model=info.context.cost_model,
        )
    except ValueError as error:
        raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"the scenario: {error}") from None
    answers = []
    for one in scenarios:
        figures = result.summary(one.name, Policy.CARE_GRAPH)
        against = (
            None
            if one.name == "baseline"
            else result.difference(one.name, Policy.CARE_GRAPH, "baseline")["breaches"]
        )
        answers.append(
            SimulatedScenario(
                name=one.name,
                breaches=_estimate(figures["breaches"]),
                urgent_breaches=_estimate(figures["urgent_breaches"]),
                seen=_estimate(figures["seen"]),
                p92_weeks_waiting=_estimate(figures["p92_weeks_waiting"]),
                utilisation=_estimate(figures["utilisation"]),
                mean_travel_km=_estimate(figures["mean_travel_km"]),
                breaches_against_baseline=None if against is None else _estimate(against),
            )
        )
    return answers
