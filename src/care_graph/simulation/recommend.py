"""Rosters that avoid the most breaches: which extra weekly clinics, run by which staff, would
see the most referrals before their breach dates over the horizon.

1. **Candidates.** Every weekly clinic a staff member of the region could add — a service
   they hold the skill for, at a site they may work at that offers it, on one weekday, in the
   morning or the afternoon session — on every date from ``lead_days`` ahead to the horizon
   that the rostering rules allow (care_graph.domain.rostering: leave, overlap, rest, weekly
   hours, against their published shifts and, past the published weeks, those weeks repeated
   as capacity is). One candidate per place (site, service, weekday, session): the staff
   member who could run it on the most dates.
2. **A shortlist.** Places ranked by the referrals the matcher's optimum leaves unseen by
   their breach date (on the baseline capacity, the list now and one replication's arrivals)
   that the clinic could see in time (within reach, skill held, dates allowing); the top
   ``max_candidates`` candidates go on.
3. **Exact marginal values.** One matching instance holds the baseline slots and every
   shortlisted candidate's slots, the candidates' slots withdrawn. A candidate's value is how
   many more referrals the optimum sees before breach once its slots are offered — the warm
   matcher's ``offer_slots`` repair, undone with ``remove_slots``. Greedy choice, lazily: a
   candidate's value is recomputed only when it reaches the top after others were chosen
   (values shrink as capacity is added, so a stale value is an upper bound, nearly always).
4. **Confirmation.** The chosen set becomes a scenario (care_graph.simulation.scenarios) that
   the simulator plays against the baseline, day by day with the dynamics the static instance
   leaves out (arrivals not yet known, release windows, cancellations and no-shows).

The instance knows every arrival of its replication in advance; the simulator does not, so
the model's breaches avoided are an optimistic ranking, the simulated ones the answer.
"""

from __future__ import annotations

import heapq
import time as clock
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from care_graph._matcher import haversine_km
from care_graph.domain.rostering import RosterRules, Shift, StaffRoster
from care_graph.matcher import Matcher
from care_graph.matching.candidates import candidate_edges, weigh
from care_graph.matching.cost import CostModel
from care_graph.simulation.scenarios import Scenario, Sessions, session_slots
from care_graph.simulation.study import Study, study
from care_graph.simulation.timeline import NO_PREFERENCES, Timeline, draw, repeats
from care_graph.simulation.world import Assumptions, Policy, World, take

IntArray = npt.NDArray[np.int64]
Report = Callable[[int, int], None]  # (steps done, steps in all)
CLINIC_SESSIONS = ((time(9, 0), time(13, 0)), (time(13, 30), time(17, 30)))  # morning, afternoon
WEEKDAYS = (1, 2, 3, 4, 5)
MAX_BUDGET = 100
SIMPLE_RULE = "simple rule"  # the scenario of sessions placed by simple_rule
MAX_CANDIDATES = 2_000
CANDIDATE_DEGREE = (8, 32)  # edges a referral gets into one candidate's slots (routine, urgent)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A weekly clinic one staff member could add: ``service`` at ``site`` on ISO weekday
    ``weekday`` from ``starts`` to ``ends``, on ``days`` (counted from today)."""

    staff: int
    site: int
    service: str
    weekday: int
    starts: time
    ends: time
    days: tuple[int, ...]

    @property
    def place(self) -> tuple[int, str, int, time]:
        """Where and when, whoever runs it."""
        return self.site, self.service, self.weekday, self.starts

    def shift(self, today: date, day: int) -> Shift:
        """Its shift on ``day``."""
        return Shift.on(today + timedelta(days=day), self.starts, self.ends)

    def within(self, roster: StaffRoster, today: date) -> Candidate:
        """The same clinic on those of its dates that ``roster`` (its staff member's) allows."""
        return self.with_days(
            tuple(
                day
                for day in self.days
                if roster.breaks(self.shift(today, day), site=self.site, service=self.service)
                is None
            )
        )

    def with_days(self, days: tuple[int, ...]) -> Candidate:
        """The same clinic on other dates."""
        return Candidate(
            self.staff, self.site, self.service, self.weekday, self.starts, self.ends, days
        )

    def runs(self) -> list[tuple[int, int]]:
        """Its dates as runs of consecutive weeks: (first day, last day)."""
        runs: list[tuple[int, int]] = []
        for day in self.days:
            if runs and day - runs[-1][1] == 7:
                runs[-1] = (runs[-1][0], day)
            else:
                runs.append((day, day))
        return runs

    def sessions(self, today: date) -> list[Sessions]:
        """As scenario patterns, one per run of weeks."""
        return [
            Sessions(
                self.service,
                self.site,
                today + timedelta(days=first),
                today + timedelta(days=last),
                self.staff,
                (self.weekday,),
                self.starts,
                self.ends,
            )
            for first, last in self.runs()
        ]

    def roster(self, today: date) -> list[dict[str, Any]]:
        """As ``publishRoster`` inputs (ids as numbers), one per run of weeks."""
        return [
            {
                "staff": self.staff,
                "site": self.site,
                "service": self.service,
                "weekdays": [self.weekday],
                "starts": self.starts.isoformat("minutes"),
                "ends": self.ends.isoformat("minutes"),
                "firstDay": (today + timedelta(days=first)).isoformat(),
                "lastDay": (today + timedelta(days=last)).isoformat(),
            }
            for first, last in self.runs()
        ]


@dataclass(frozen=True, slots=True)
class Pick:
    """A chosen candidate and the breaches the model avoids by adding it to those chosen
    before it (the diminishing-returns curve, read down the picks)."""

    candidate: Candidate
    avoided: int
    slots: int


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The sessions chosen, in the order chosen, and what choosing them took."""

    region: str
    today: date
    budget: int
    feasible: int  # candidates the rostering rules allow
    considered: int  # candidates valued by the matcher
    baseline_breaches: int  # breaches the model sees on the baseline capacity
    picks: tuple[Pick, ...]
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def avoided(self) -> int:
        """Breaches the model avoids with every pick."""
        return sum(pick.avoided for pick in self.picks)

    def scenario(self, name: str = "recommended") -> Scenario:
        """The picks as a what-if scenario for the simulator."""
        return _scenario(name, [pick.candidate for pick in self.picks], self.today)

    def roster(self) -> list[dict[str, Any]]:
        """The draft roster: ``publishRoster`` inputs that add the picks as they are."""
        return [entry for pick in self.picks for entry in pick.candidate.roster(self.today)]

    def to_json(self) -> dict[str, Any]:
        """The recommendation as JSON values: the picks in order, each with its breaches
        avoided, and the draft roster."""
        return {
            "region": self.region,
            "today": self.today.isoformat(),
            "budget": self.budget,
            "feasible": self.feasible,
            "considered": self.considered,
            "baselineBreaches": self.baseline_breaches,
            "avoided": self.avoided,
            "picks": [
                {
                    "staff": pick.candidate.staff,
                    "site": pick.candidate.site,
                    "service": pick.candidate.service,
                    "weekday": pick.candidate.weekday,
                    "starts": pick.candidate.starts.isoformat("minutes"),
                    "ends": pick.candidate.ends.isoformat("minutes"),
                    "days": [
                        (self.today + timedelta(days=day)).isoformat()
                        for day in pick.candidate.days
                    ],
                    "slots": pick.slots,
                    "avoided": pick.avoided,
                }
                for pick in self.picks
            ],
            "roster": self.roster(),
            "seconds": {name: round(value, 3) for name, value in self.seconds.items()},
        }


def _scenario(name: str, chosen: list[Candidate], today: date) -> Scenario:
    return Scenario(name, tuple(s for candidate in chosen for s in candidate.sessions(today)))


def as_scenario(name: str, chosen: list[Candidate], today: date) -> Scenario:
    """Candidates as a what-if scenario (for comparing another choice of the same size)."""
    return _scenario(name, chosen, today)


def projected_shifts(world: World, horizon_days: int) -> dict[int, list[Shift]]:
    """Each staff member's shifts over the horizon: the published ones, and past the last
    published day the published weeks repeated, as capacity is projected."""
    today = world.today.toordinal()
    published = world.published_days()
    period = published // 7 * 7
    shifts: dict[int, list[Shift]] = {}
    for staff, worked in world.shifts.items():
        mine = shifts.setdefault(staff, [])
        for shift in worked:
            offset = shift.day - today
            if offset > horizon_days:
                continue
            mine.append(shift)
            if not 1 <= offset <= period:
                continue
            for by in repeats(published, horizon_days):
                if published < offset + by <= horizon_days:
                    mine.append(Shift(shift.day + by, shift.starts, shift.ends))
    return shifts


def candidates(
    world: World,
    assumptions: Assumptions,
    *,
    lead_days: int = 14,
    rules: RosterRules | None = None,
) -> list[Candidate]:
    """Every weekly clinic the region's staff could add within the rostering rules, one per
    place (the staff member able to run it on the most dates; the lowest id on a tie)."""
    horizon = assumptions.horizon_days
    if not 1 <= lead_days < horizon:
        raise ValueError("added clinics start 1 day ahead to within the horizon")
    code_of = {service_id: code for code, (service_id, _) in world.services.items()}
    wanted = set(world.waiting["service"].tolist()) | {s for s, _ in world.arrivals}
    shifts = projected_shifts(world, horizon)
    best: dict[tuple[int, str, int, time], Candidate] = {}
    for terms in world.staff:
        roster = StaffRoster.of(terms, shifts.get(terms.staff, []), rules)
        sites = {terms.base_site, *terms.other_sites}
        places = sorted(
            (site, code_of[service])
            for site, service in world.site_services
            if site in sites and service in wanted and code_of.get(service) in terms.skills
        )
        for site, service in places:
            for weekday in WEEKDAYS:
                first = (
                    lead_days + (weekday - (world.today + timedelta(lead_days)).isoweekday()) % 7
                )
                for starts, ends in CLINIC_SESSIONS:
                    every_week = tuple(range(first, horizon, 7))
                    found = Candidate(
                        terms.staff, site, service, weekday, starts, ends, every_week
                    ).within(roster, world.today)
                    if not found.days:
                        continue
                    held = best.get(found.place)
                    if held is None or len(found.days) > len(held.days):
                        best[found.place] = found
    return sorted(best.values(), key=lambda c: (c.site, c.service, c.weekday, c.starts))


def _unseen(
    breach_days: IntArray, horizon: int, slot_days: IntArray, columns: npt.NDArray[np.int32]
) -> npt.NDArray[np.bool_]:
    """Which referrals breach within the horizon unseen in time when each holds the slot
    ``columns`` gives (-1, or past the slots, for none)."""
    counted = (breach_days >= 0) & (breach_days < horizon)
    held = (columns >= 0) & (columns < len(slot_days))
    day = np.full(len(columns), np.iinfo(np.int64).max, dtype=np.int64)
    day[held] = slot_days[columns[held]]
    return np.asarray(counted & (day > breach_days))


class _Rosters:
    """The rosters of staff given clinics so far, so that each further clinic of theirs
    keeps the rules with the earlier ones."""

    def __init__(self, world: World, horizon: int, rules: RosterRules | None) -> None:
        self.world = world
        self.rules = rules
        self.shifts = projected_shifts(world, horizon)
        self.terms = {terms.staff: terms for terms in world.staff}
        self.rosters: dict[int, StaffRoster] = {}

    def allowed(self, candidate: Candidate) -> Candidate:
        """The candidate on the dates its staff member's roster still allows."""
        roster = self.rosters.get(candidate.staff)
        return candidate if roster is None else candidate.within(roster, self.world.today)

    def give(self, candidate: Candidate) -> None:
        """Add the candidate's clinics to its staff member's roster."""
        roster = self.rosters.get(candidate.staff)
        if roster is None:
            roster = self.rosters[candidate.staff] = StaffRoster.of(
                self.terms[candidate.staff], self.shifts.get(candidate.staff, []), self.rules
            )
        for day in candidate.days:
            roster.add(candidate.shift(self.world.today, day))


def shortlist(
    world: World,
    timeline: Timeline,
    columns: npt.NDArray[np.int32],
    found: list[Candidate],
    horizon: int,
    max_candidates: int,
    lead_days: int,
) -> list[Candidate]:
    """The ``max_candidates`` candidates at the places with the most referrals left unseen
    in time (by the baseline optimum ``columns``) that their clinics could see in time:
    breaching after the clinics begin and not before their earliest date, living within their
    maximum travel of the site, and needing no skill the candidate's staff member lacks."""
    referrals = timeline.referrals
    breach = referrals["days_to_breach"].astype(np.int64)
    slot_days = timeline.slots["days_until"].astype(np.int64)
    helpable = (
        _unseen(breach, horizon, slot_days, columns)
        & (breach >= lead_days)
        & (referrals["earliest_day"] <= breach)
    )
    site_row = {int(site): k for k, site in enumerate(world.sites["id"].tolist())}
    masks = dict(
        zip(world.staff_masks["staff"].tolist(), world.staff_masks["mask"].tolist(), strict=True)
    )
    skill = referrals["skill"].astype(np.int64)
    demand: dict[tuple[int, str, int], int] = {}
    for site, service, staff in sorted({(c.site, c.service, c.staff) for c in found}):
        service_id = world.services[service][0]
        held = (skill < 0) | ((masks.get(staff, 0) >> np.maximum(skill, 0)) & 1 == 1)
        rows = np.flatnonzero(helpable & held & (referrals["service"] == service_id))
        k = site_row[site]
        km = haversine_km(
            referrals["latitude"][rows],
            referrals["longitude"][rows],
            np.full(len(rows), world.sites["latitude"][k]),
            np.full(len(rows), world.sites["longitude"][k]),
        )
        demand[(site, service, staff)] = int(np.count_nonzero(km <= referrals["max_km"][rows]))
    ranked = sorted(
        found,
        key=lambda c: (-demand[(c.site, c.service, c.staff)], -len(c.days), c.place, c.staff),
    )
    return [c for c in ranked if demand[(c.site, c.service, c.staff)] > 0][:max_candidates]


@dataclass(slots=True)
class _Instance:
    """The baseline slots and every candidate's, in one warm matcher."""

    timeline: Timeline
    matcher: Matcher
    breach_days: IntArray  # of each referral, read once: unseen() runs twice per valuation
    graph: tuple[IntArray, npt.NDArray[np.int32], IntArray]  # indptr, slot, weight
    withheld: IntArray  # slots off offer at the start: taken ones, and every candidate's
    slot_days: IntArray
    candidate_slots: list[IntArray]  # slot indexes of each candidate, by its days
    candidate_days: list[IntArray]  # the day of each of those slots
    horizon: int

    def unseen(self) -> int:
        """Referrals the current optimum leaves unseen by their breach date."""
        columns = self.matcher.solver.match_col
        unseen = _unseen(self.breach_days, self.horizon, self.slot_days, columns)
        return int(np.count_nonzero(unseen))

    def slots_of(self, index: int, days: tuple[int, ...]) -> IntArray:
        """Candidate ``index``'s slots on ``days``."""
        chosen = np.isin(self.candidate_days[index], np.array(days, dtype=np.int64))
        slots: IntArray = self.candidate_slots[index][chosen]
        return slots

    def value(self, slots: IntArray) -> int:
        """Breaches avoided by offering ``slots``, the matcher left as it was found."""
        before = self.unseen()
        self.matcher.offer_slots(slots)
        after = self.unseen()
        self.matcher.remove_slots(slots)
        return before - after


def _instance(
    world: World,
    timeline: Timeline,
    shortlisted: list[Candidate],
    model: CostModel,
    horizon: int,
) -> _Instance:
    """One matching instance over the baseline and the shortlisted candidates' slots."""
    referrals, base = timeline.referrals, timeline.slots
    n_base = len(base["days_until"])
    rows = [np.repeat(np.arange(len(referrals["id"])), np.diff(timeline.indptr))]
    columns = [timeline.slot.astype(np.int64)]
    weights = [timeline.weights]
    days = [base["days_until"].astype(np.int64)]
    candidate_slots, candidate_days = [], []
    next_slot = n_base
    for candidate in shortlisted:
        slots = session_slots(
            world,
            candidate.service,
            candidate.site,
            candidate.staff,
            list(candidate.days),
            candidate.starts,
            candidate.ends,
        )
        members = np.flatnonzero(referrals["service"] == world.services[candidate.service][0])
        sub = take(referrals, members)
        edges = candidate_edges(
            sub,
            slots,
            world.sites,
            world.staff_masks,
            NO_PREFERENCES,
            max_degree=CANDIDATE_DEGREE[0],
            urgent_degree=CANDIDATE_DEGREE[1],
        )
        edge_weights, _ = weigh(model, sub, slots, edges)
        rows.append(members[np.repeat(np.arange(len(members)), np.diff(edges.indptr))])
        columns.append(edges.slot.astype(np.int64) + next_slot)
        weights.append(edge_weights)
        count = len(slots["days_until"])
        candidate_slots.append(np.arange(next_slot, next_slot + count, dtype=np.int64))
        candidate_days.append(slots["days_until"].astype(np.int64))
        days.append(slots["days_until"].astype(np.int64))
        next_slot += count
    row = np.concatenate(rows)
    order = np.argsort(row, kind="stable")
    indptr = np.zeros(len(referrals["id"]) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum(np.bincount(row, minlength=len(referrals["id"])))
    closed = np.flatnonzero(base["open"] == 0)
    withheld = np.concatenate([closed, np.arange(n_base, next_slot, dtype=np.int64)])
    graph = (
        indptr,
        np.concatenate(columns)[order].astype(np.int32),
        np.concatenate(weights)[order],
    )
    matcher = Matcher(*graph, next_slot, referrals["tier"], unavailable_slots=withheld)
    matcher.prepare_incremental()
    return _Instance(
        timeline,
        matcher,
        referrals["days_to_breach"].astype(np.int64),
        graph,
        withheld,
        np.concatenate(days),
        candidate_slots,
        candidate_days,
        horizon,
    )


def recommend(
    world: World,
    assumptions: Assumptions,
    budget: int,
    *,
    max_candidates: int = 400,
    lead_days: int = 14,
    seed: int = 1,
    model: CostModel | None = None,
    rules: RosterRules | None = None,
    found: list[Candidate] | None = None,
    report: Report | None = None,
) -> Recommendation:
    """Up to ``budget`` weekly clinics, chosen one by one for the breaches each avoids on top
    of those chosen before; fewer when no further candidate avoids any. ``found``: the
    candidates, when the caller has made them already (``candidates`` with the same
    assumptions, lead days and rules)."""
    if not 1 <= budget <= MAX_BUDGET:
        raise ValueError(f"the budget is 1 to {MAX_BUDGET} sessions")
    if not 1 <= max_candidates <= MAX_CANDIDATES:
        raise ValueError(f"1 to {MAX_CANDIDATES} candidates are valued")
    model = model or CostModel()
    horizon = assumptions.horizon_days
    seconds: dict[str, float] = {}
    started = clock.perf_counter()
    if found is None:
        found = candidates(world, assumptions, lead_days=lead_days, rules=rules)
    timeline = draw(world, assumptions, seed, model)
    baseline = Matcher(
        timeline.indptr,
        timeline.slot,
        timeline.weights,
        len(timeline.slots["days_until"]),
        timeline.referrals["tier"],
        unavailable_slots=np.flatnonzero(timeline.slots["open"] == 0),
    )
    columns = baseline.solver.match_col.copy()
    listed = shortlist(world, timeline, columns, found, horizon, max_candidates, lead_days)
    seconds["candidates"] = clock.perf_counter() - started
    started = clock.perf_counter()
    instance = _instance(world, timeline, listed, model, horizon)
    baseline_breaches = instance.unseen()
    seconds["instance"] = clock.perf_counter() - started
    started = clock.perf_counter()
    picks = _choose(world, instance, listed, budget, rules, report)
    seconds["choose"] = clock.perf_counter() - started
    return Recommendation(
        region=world.region,
        today=world.today,
        budget=budget,
        feasible=len(found),
        considered=len(listed),
        baseline_breaches=baseline_breaches,
        picks=tuple(picks),
        seconds=seconds,
    )


def _choose(
    world: World,
    instance: _Instance,
    listed: list[Candidate],
    budget: int,
    rules: RosterRules | None,
    report: Report | None,
) -> list[Pick]:
    """Lazy greedy choice over the instance (see the module's docstring)."""
    rosters = _Rosters(world, instance.horizon, rules)
    current = list(listed)
    steps = len(listed) + budget
    done = 0
    heap: list[tuple[int, int, int]] = []  # (-value, candidate, picks when valued)
    for index, candidate in enumerate(listed):
        slots = instance.slots_of(index, candidate.days)
        heapq.heappush(heap, (-instance.value(slots), index, 0))
        done += 1
        if report is not None:
            report(done, steps)
    picks: list[Pick] = []
    while heap and len(picks) < budget:
        negative, index, stamp = heapq.heappop(heap)
        if -negative <= 0:
            break
        if stamp != len(picks):  # valued before the last pick: value it again
            candidate = current[index] = rosters.allowed(current[index])
            slots = instance.slots_of(index, candidate.days)
            heapq.heappush(heap, (-instance.value(slots) if len(slots) else 0, index, len(picks)))
            continue
        candidate = current[index]
        slots = instance.slots_of(index, candidate.days)
        before = instance.unseen()
        instance.matcher.offer_slots(slots)
        picks.append(Pick(candidate, before - instance.unseen(), len(slots)))
        rosters.give(candidate)
        done += 1
        if report is not None:
            report(done, steps)
    if report is not None:
        report(steps, steps)
    return picks


def simple_rule(
    world: World, found: list[Candidate], budget: int, rules: RosterRules | None = None
) -> list[Candidate]:
    """``budget`` candidates placed as a planner without a matcher might: at the sites with
    the longest waiting lists for their service (each referral counted at its nearest site
    offering the service), one clinic per site in turn down that ranking, and the clinics of
    a site spread over the weekdays and sessions (each runs every week, so they are spread
    evenly over the weeks)."""
    lists = waiting_nearest(world, {c.service for c in found})
    by_site: dict[tuple[int, str], list[Candidate]] = {}
    for candidate in found:
        by_site.setdefault((candidate.site, candidate.service), []).append(candidate)
    ranked = sorted(
        (key for key in by_site if lists.get(key, 0) > 0), key=lambda key: (-lists[key], key)
    )
    for rank, key in enumerate(ranked):  # each site's first clinic on another day than the last's
        spread = _spread(by_site[key])
        turn = rank % len(spread)
        by_site[key] = spread[turn:] + spread[:turn]
    rosters = _Rosters(world, max((d for c in found for d in c.days), default=0) + 1, rules)
    chosen: list[Candidate] = []
    round_ = 0
    while len(chosen) < budget and any(round_ < len(by_site[key]) for key in ranked):
        for key in ranked:
            if len(chosen) == budget:
                break
            if round_ < len(by_site[key]):
                candidate = rosters.allowed(by_site[key][round_])
                if candidate.days:
                    rosters.give(candidate)
                    chosen.append(candidate)
        round_ += 1
    return chosen


def waiting_nearest(world: World, services: set[str] | None = None) -> dict[tuple[int, str], int]:
    """The waiting list of each (site, service code), each referral counted at the nearest
    site offering its service (of ``services``, or all)."""
    waiting = world.waiting
    site_row = {int(site): k for k, site in enumerate(world.sites["id"].tolist())}
    lists: dict[tuple[int, str], int] = {}
    for service in sorted(world.services if services is None else services):
        service_id = world.services[service][0]
        offering = sorted(site for site, sid in world.site_services if sid == service_id)
        rows = np.flatnonzero(waiting["service"] == service_id)
        if not offering or not len(rows):
            continue
        k = np.array([site_row[site] for site in offering])
        km = haversine_km(
            np.repeat(waiting["latitude"][rows], len(k)),
            np.repeat(waiting["longitude"][rows], len(k)),
            np.tile(world.sites["latitude"][k], len(rows)),
            np.tile(world.sites["longitude"][k], len(rows)),
        ).reshape(len(rows), len(k))
        nearest = np.bincount(km.argmin(axis=1), minlength=len(k))
        for site, count in zip(offering, nearest.tolist(), strict=True):
            lists[(site, service)] = count
    return lists


def _spread(clinics: list[Candidate]) -> list[Candidate]:
    """Clinics reordered so that consecutive ones fall on different weekdays: Monday
    morning, Wednesday afternoon, Friday morning, Tuesday afternoon, ..."""
    order = {(1, 0): 0, (3, 1): 1, (5, 0): 2, (2, 1): 3, (4, 0): 4,
             (1, 1): 5, (3, 0): 6, (5, 1): 7, (2, 0): 8, (4, 1): 9}  # fmt: skip
    return sorted(clinics, key=lambda c: order[(c.weekday, int(c.starts.hour >= 13))])


def confirm(
    world: World,
    assumptions: Assumptions,
    recommendation: Recommendation,
    *,
    compare: list[Candidate] | None = None,
    policies: tuple[Policy, ...] = (Policy.CARE_GRAPH, Policy.FIRST_COME_FIRST_SERVED),
    replications: int = 3,
    seed: int = 1,
    model: CostModel | None = None,
    report: Callable[[str], Report] | None = None,
) -> Study:
    """The simulator's verdict: the baseline, the recommended sessions and (``compare``) the
    same number placed by the simple rule, under each policy on the same seeds."""
    scenarios = [Scenario(), recommendation.scenario()]
    if compare is not None:
        scenarios.append(as_scenario(SIMPLE_RULE, compare, world.today))
    return study(
        world,
        assumptions,
        policies=policies,
        scenarios=scenarios,
        replications=replications,
        seed=seed,
        model=model,
        report=report,
    )
