"""Propose a matching for a scope of the waiting list: read what waits and what is free, build
candidate edges, weigh them with the cost model, solve exactly, and explain the result —
each assignment's cost breakdown, each unmatched referral's reason, and summary figures."""

from __future__ import annotations

import secrets
import time
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

import numpy as np

from care_graph.db import matching_store as store
from care_graph.db.pool import Connection
from care_graph.domain.waiting_times import Priority
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.matcher import Matcher
from care_graph.matching.candidates import Arrays, candidate_edges, weigh
from care_graph.matching.cost import TIER_ORDER, CostModel

MAX_LISTED = 1000  # assignments and unmatched referrals a kept plan shows, most urgent first
PLAN_LIFETIME_HOURS = 24  # a plan older than this is proposed again rather than committed


@dataclass(frozen=True, slots=True)
class Scope:
    """Which part of the waiting list to match."""

    services: list[str] | None = None
    regions: list[str] | None = None
    horizon_days: int = 56
    site_ids: list[int] | None = None  # slots at these sites only (staff bound to sites)


class Unplaced(StrEnum):
    """Why a plan leaves a referral waiting."""

    NO_CAPACITY = "NO_CAPACITY_WITHIN_REACH"  # no slot it may take is in scope
    TAKEN = "SLOTS_WENT_TO_OTHERS"  # every slot it may take went to someone else


@dataclass(frozen=True, slots=True)
class Assignment:
    """A referral the plan books into a slot, and the points that chose it."""

    referral: int
    slot: int
    priority: Priority
    weight: int
    km: float
    days_until: int
    breakdown: dict[str, int]  # the cost model's terms (CostModel.components), summing to weight


@dataclass(frozen=True, slots=True)
class Unmatched:
    """A referral the plan leaves waiting, and why; with the slots it may take all taken, the
    best of them and who it went to."""

    referral: int
    reason: Unplaced
    priority: Priority
    best_slot: int | None = None
    went_to: int | None = None
    went_to_priority: Priority | None = None


@dataclass(frozen=True, slots=True)
class Spread:
    """Mean and 95th percentile of a figure over the plan's assignments (None with none)."""

    mean: float | None
    p95: float | None


@dataclass(frozen=True, slots=True)
class PriorityCount:
    """How many referrals of a priority the plan matches and leaves waiting."""

    priority: Priority
    matched: int
    unmatched: int


@dataclass(frozen=True, slots=True)
class Summary:
    """The plan in figures (see ``_summary`` for what each counts)."""

    referrals: int
    matched: int
    by_priority: tuple[PriorityCount, ...]  # most urgent first
    seen_before_breach: int
    breaches_avoided: int
    breaches_expected: int
    already_breached: int
    travel_km: Spread
    days_to_appointment: Spread

    def counts_of(self, priority: Priority) -> PriorityCount:
        """The counts of one priority."""
        return next(count for count in self.by_priority if count.priority is priority)


@dataclass(slots=True)
class Plan:
    """A proposed matching, explained."""

    assignments: list[Assignment]
    unmatched: list[Unmatched]
    summary: Summary
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON values, as it is kept and as ``care-graph match --output`` writes it."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Plan:
        """The plan ``to_json`` made (also one kept before plans were typed, whose counts by
        priority were an object keyed by priority)."""
        summary = dict(data["summary"])
        by_priority = summary["by_priority"]
        if isinstance(by_priority, dict):
            by_priority = [{"priority": name, **counts} for name, counts in by_priority.items()]
        summary["by_priority"] = tuple(
            PriorityCount(Priority(item["priority"]), item["matched"], item["unmatched"])
            for item in by_priority
        )
        summary["travel_km"] = Spread(**summary["travel_km"])
        summary["days_to_appointment"] = Spread(**summary["days_to_appointment"])
        return cls(
            assignments=[
                Assignment(**{**item, "priority": Priority(item["priority"])})
                for item in data["assignments"]
            ],
            unmatched=[_unmatched_from_json(item) for item in data["unmatched"]],
            summary=Summary(**summary),
            timings=dict(data.get("timings", {})),
        )


Listed = TypeVar("Listed", Assignment, Unmatched)


def _unmatched_from_json(item: dict[str, Any]) -> Unmatched:
    went_to_priority = item.get("went_to_priority")
    return Unmatched(
        referral=item["referral"],
        reason=Unplaced(item["reason"]),
        priority=Priority(item["priority"]),
        best_slot=item.get("best_slot"),
        went_to=item.get("went_to"),
        went_to_priority=None if went_to_priority is None else Priority(went_to_priority),
    )


@dataclass(slots=True)
class Instance:
    """What a plan is made from: the arrays read, the candidate edges and their weights."""

    referrals: dict[str, Any]
    slots: dict[str, Any]
    indptr: Any
    slot: Any
    km: Any
    weights: Any
    parts: dict[str, Any]
    chosen: Any  # the optimal plan's edge per referral, -1 where unmatched


def pairs_of(plan: Plan) -> list[tuple[int, int]]:
    """The (referral, slot) pairs a plan books."""
    return [(item.referral, item.slot) for item in plan.assignments]


def listed(plan: Plan) -> Plan:
    """The plan with its first ``MAX_LISTED`` assignments and unmatched referrals, most urgent
    first: what a person is shown of it."""
    rank = {priority: tier for tier, priority in enumerate(TIER_ORDER)}

    def first(items: list[Listed]) -> list[Listed]:
        return sorted(items, key=lambda item: rank[item.priority])[:MAX_LISTED]

    return replace(plan, assignments=first(plan.assignments), unmatched=first(plan.unmatched))


async def keep(connection: Connection, plan: Plan, proposed_by: str) -> tuple[str, Plan]:
    """Keep a proposed plan (its pairs, and what is shown of it) so that exactly this plan
    can be committed later; returns its key, new for every proposal, and what is shown."""
    key = f"plan:{secrets.token_hex(20)}"
    shown = listed(plan)
    await store.save_plan(connection, key, proposed_by, pairs_of(plan), shown.to_json())
    return key, shown


async def kept(connection: Connection, key: str) -> tuple[Plan, list[tuple[int, int]]]:
    """A kept plan (as shown when proposed) and its pairs, if it is fresh enough to commit."""
    row = await store.load_plan(connection, key)
    if row is None:
        raise CareGraphError(ErrorCode.NOT_FOUND, "no such plan: propose one first")
    if row["age_hours"] > PLAN_LIFETIME_HOURS:
        raise CareGraphError(
            ErrorCode.PLAN_EXPIRED,
            f"the plan was proposed over {PLAN_LIFETIME_HOURS} hours ago: propose again",
        )
    pairs = list(zip(row["referral_ids"], row["slot_ids"], strict=True))
    return Plan.from_json(row["shown"]), pairs


async def propose(connection: Connection, scope: Scope, model: CostModel | None = None) -> Plan:
    """The optimal plan for ``scope`` now; nothing is written."""
    plan, _ = await propose_with_instance(connection, scope, model)
    return plan


async def _read(connection: Connection, scope: Scope) -> tuple[Arrays, ...]:
    """What matching reads of a scope: waiting referrals, open slots, sites, each clinician's
    skills, preferred sites."""
    skills = await store.skill_codes(connection)
    referrals = await store.waiting_referrals(
        connection, scope.services, scope.regions, skills, [str(p) for p in TIER_ORDER]
    )
    slots = await store.free_slots(
        connection, scope.services, scope.regions, scope.horizon_days, scope.site_ids
    )
    sites = await store.sites(connection)
    masks = await store.staff_skill_masks(connection, skills)
    preferences = await store.preferred_sites(connection, scope.services, scope.regions)
    return referrals, slots, sites, masks, preferences


async def feasible_pairs(connection: Connection, scope: Scope) -> set[tuple[int, int]]:
    """Every (referral, slot) pair, by id, that matching may choose from in ``scope``: the
    candidate builder's view of the booking rules, for checking it against theirs."""
    referrals, slots, sites, masks, preferences = await _read(connection, scope)
    candidates = candidate_edges(referrals, slots, sites, masks, preferences, every_slot=True)
    rows = np.repeat(np.arange(len(referrals["id"])), np.diff(candidates.indptr))
    return set(
        zip(
            referrals["id"][rows].tolist(),
            slots["id"][candidates.slot].tolist(),
            strict=True,
        )
    )


async def propose_with_instance(
    connection: Connection,
    scope: Scope,
    model: CostModel | None = None,
    *,
    every_slot: bool = False,
) -> tuple[Plan, Instance]:
    """The optimal plan and the instance it was solved on (for comparisons, which want
    ``every_slot`` feasible as a candidate rather than the usual sparse choice)."""
    model = model or CostModel()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    referrals, slots, sites, masks, preferences = await _read(connection, scope)
    timings["read"] = time.perf_counter() - started

    mark = time.perf_counter()
    candidates = candidate_edges(referrals, slots, sites, masks, preferences, every_slot=every_slot)
    weights, parts = weigh(model, referrals, slots, candidates)
    timings["candidates"] = time.perf_counter() - mark

    mark = time.perf_counter()
    matcher = Matcher(
        candidates.indptr, candidates.slot, weights, len(slots["id"]), referrals["tier"]
    )
    matching = matcher.result()
    timings["solve"] = time.perf_counter() - mark

    mark = time.perf_counter()
    plan = _explain(
        referrals,
        slots,
        candidates.indptr,
        candidates.slot,
        candidates.km,
        weights,
        parts,
        matching.assignment,
        matcher.solver.match_edge,
        scope.horizon_days,
    )
    timings["explain"] = time.perf_counter() - mark
    timings["total"] = time.perf_counter() - started
    plan.timings = timings
    chosen = np.where(matching.assignment >= 0, matcher.solver.match_edge, -1)
    instance = Instance(
        referrals, slots, candidates.indptr, candidates.slot, candidates.km, weights, parts, chosen
    )
    return plan, instance


def _explain(
    referrals: dict[str, Any],
    slots: dict[str, Any],
    indptr: Any,
    slot: Any,
    km: Any,
    weights: Any,
    parts: dict[str, Any],
    assignment: Any,
    match_edge: Any,
    horizon_days: int,
) -> Plan:
    matched = assignment >= 0
    edge = np.where(matched, match_edge, 0)
    assignments = [
        Assignment(
            referral=int(referrals["id"][row]),
            slot=int(slots["id"][assignment[row]]),
            priority=TIER_ORDER[int(referrals["tier"][row])],
            weight=int(weights[edge[row]]),
            km=round(float(km[edge[row]]), 1),
            days_until=int(slots["days_until"][assignment[row]]),
            breakdown={name: int(values[edge[row]]) for name, values in parts.items()},
        )
        for row in np.flatnonzero(matched).tolist()
    ]
    taken_by = np.full(len(slots["id"]), -1, dtype=np.int64)
    taken_by[assignment[matched]] = np.flatnonzero(matched)
    unmatched = []
    for row in np.flatnonzero(~matched).tolist():
        referral = int(referrals["id"][row])
        priority = TIER_ORDER[int(referrals["tier"][row])]
        first, last = int(indptr[row]), int(indptr[row + 1])
        if first == last:
            unmatched.append(Unmatched(referral, Unplaced.NO_CAPACITY, priority))
            continue
        best = first + int(np.argmax(weights[first:last]))
        winner = int(taken_by[slot[best]])
        unmatched.append(
            Unmatched(
                referral,
                Unplaced.TAKEN,
                priority,
                best_slot=int(slots["id"][slot[best]]),
                went_to=int(referrals["id"][winner]) if winner >= 0 else None,
                went_to_priority=TIER_ORDER[int(referrals["tier"][winner])]
                if winner >= 0
                else None,
            )
        )
    return Plan(assignments, unmatched, _summary(referrals, assignments, unmatched, horizon_days))


def _summary(
    referrals: dict[str, Any],
    assignments: list[Assignment],
    unmatched: list[Unmatched],
    horizon_days: int,
) -> Summary:
    """The plan in figures. A referral is seen before breach when its slot falls on or before
    its breach date; a breach is avoided when that breach date falls within the horizon, and
    still expected when the plan sees it after that date or, with the date within the horizon,
    not at all. Referrals already past their breach date are counted apart, not as expected."""
    breach_of = dict(
        zip(referrals["id"].tolist(), referrals["days_to_breach"].tolist(), strict=True)
    )
    in_time = [item for item in assignments if item.days_until <= breach_of[item.referral]]
    return Summary(
        referrals=len(assignments) + len(unmatched),
        matched=len(assignments),
        by_priority=tuple(
            PriorityCount(
                priority,
                sum(1 for item in assignments if item.priority is priority),
                sum(1 for item in unmatched if item.priority is priority),
            )
            for priority in TIER_ORDER
        ),
        seen_before_breach=len(in_time),
        breaches_avoided=sum(1 for item in in_time if breach_of[item.referral] <= horizon_days),
        breaches_expected=sum(
            1 for item in assignments if 0 <= breach_of[item.referral] < item.days_until
        )
        + sum(1 for item in unmatched if 0 <= breach_of[item.referral] <= horizon_days),
        already_breached=sum(1 for days in breach_of.values() if days < 0),
        travel_km=_spread([item.km for item in assignments]),
        days_to_appointment=_spread([item.days_until for item in assignments]),
    )


def _spread(values: list[float] | list[int]) -> Spread:
    """Mean and 95th percentile (None when there is nothing to measure)."""
    if not values:
        return Spread(None, None)
    return Spread(round(float(np.mean(values)), 1), round(float(np.percentile(values, 95)), 1))
