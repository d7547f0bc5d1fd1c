"""A waiting list, day by day, under one booking policy.

Each day, in this order: the day's appointments happen (each patient attends, or does not and
waits again); patients who cancel today wait again and free their slots; today's referrals
arrive; the slots ``release_days`` ahead open for booking; then the policy books. Every
booking keeps the rules candidate edges keep (care_graph.matching.candidates: the service,
travel, earliest date and skill), for every policy alike.

- first-come-first-served and priority-greedy: waiting referrals in order each take their
  best open slot, at once (the compiled ``InOrder``);
- care_graph: the matcher's optimum over everyone waiting and every open slot, kept warm
  from day to day by its repairs (arrivals, freed and new slots); a planned booking is made
  once its slot is within ``commit_days``, so that until then a more pressing referral may
  take the slot instead. ``cold=True`` re-solves from scratch every day instead (the same
  optimum, for measuring what warmth saves).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from care_graph._matcher import InOrder
from care_graph.matcher import Matcher
from care_graph.matching.cost import TIER_ORDER
from care_graph.simulation.timeline import ATTEMPTS, Timeline
from care_graph.simulation.world import Assumptions, Policy

IntArray = npt.NDArray[np.int64]
FUTURE, WAITING, BOOKED, SEEN = 0, 1, 2, 3  # a referral's state
CLOSED, OPEN, TAKEN, GONE = 0, 1, 2, 3  # a slot's state
Report = Callable[[int, int], None]  # (days done, days in all)


@dataclass(frozen=True, slots=True)
class Percentiles:
    """The median and the 92nd percentile (the referral-to-treatment standard's measure) of
    waits in weeks; None when nobody is counted."""

    p50: float | None
    p92: float | None


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one replication of one policy came to over the horizon.

    A referral breaches within the horizon when its breach date falls inside it and it is
    not seen by then; referrals past their breach date at day 0 are counted apart.
    """

    policy: Policy
    seed: int
    horizon_days: int
    breaches: tuple[int, ...]  # by priority, most urgent first
    already_breached: int
    arrived: int
    seen: int
    waiting_at_end: int
    waits_seen: Percentiles  # clock start to appointment, of those seen
    mean_wait_days: float | None  # the same, on average, in days
    waits_at_end: Percentiles  # clock start to the horizon, of those still waiting
    list_size: tuple[int, ...]  # waiting or booked but not yet seen, at each day's end
    utilisation: float  # slots attended of the capacity that came to pass
    mean_travel_km: float | None
    no_shows: int
    cancellations: int
    first_day_seconds: float  # the policy's first day (for care_graph: a cold solve)
    seconds_per_day: float  # the policy's work on each later day, on average

    @property
    def total_breaches(self) -> int:
        """Breaches of every priority."""
        return sum(self.breaches)


def _percentiles(days: npt.NDArray[np.int64]) -> Percentiles:
    if len(days) == 0:
        return Percentiles(None, None)
    weeks = days / 7.0
    return Percentiles(
        round(float(np.percentile(weeks, 50)), 2), round(float(np.percentile(weeks, 92)), 2)
    )


class _Day:
    """The state of one run: who waits, who is booked where, which slots are open."""

    def __init__(self, timeline: Timeline, assumptions: Assumptions) -> None:
        self.t = timeline
        self.a = assumptions
        n_rows, n_slots = len(timeline.referrals["id"]), len(timeline.slots["days_until"])
        self.row_state = np.full(n_rows, FUTURE, dtype=np.int8)
        self.row_edge = np.full(n_rows, -1, dtype=np.int64)
        self.row_attempt = np.zeros(n_rows, dtype=np.int64)
        self.row_misses = np.zeros(n_rows, dtype=bool)
        self.seen_day = np.full(n_rows, -1, dtype=np.int64)
        self.slot_state = np.where(timeline.slots["open"] > 0, CLOSED, GONE).astype(np.int8)
        self.slot_holder = np.full(n_slots, -1, dtype=np.int64)
        self.open_flags = np.zeros(n_slots, dtype=np.uint8)
        days = timeline.slots["days_until"].astype(np.int64)
        self.slot_day = days
        by_day = np.argsort(days, kind="stable")
        self.slots_by_day = by_day
        self.slot_day_start = np.searchsorted(days[by_day], np.arange(days.max(initial=0) + 2))
        by_arrival = np.argsort(timeline.arrival_day, kind="stable")
        self.rows_by_arrival = by_arrival
        self.arrival_start = np.searchsorted(
            timeline.arrival_day[by_arrival], np.arange(-1, assumptions.horizon_days + 1)
        )
        self.cancelling: dict[int, list[tuple[int, int]]] = {}
        self.no_shows = 0
        self.cancellations = 0
        self.attended_slots = 0

    def slots_on(self, day: int) -> IntArray:
        """The slots of one day."""
        if day + 1 >= len(self.slot_day_start):
            return np.zeros(0, dtype=np.int64)
        first, last = self.slot_day_start[day], self.slot_day_start[day + 1]
        return self.slots_by_day[first:last]

    def arriving_on(self, day: int) -> IntArray:
        """The referrals that join the list on ``day`` (-1: the list at day 0)."""
        first, last = self.arrival_start[day + 1], self.arrival_start[day + 2]
        return self.rows_by_arrival[first:last]

    def book(self, rows: IntArray, edges: IntArray, today: int) -> None:
        """Book each of ``rows`` along its edge, and draw what the booking will come to."""
        if len(rows) == 0:
            return
        slots = self.t.slot[edges].astype(np.int64)
        self.row_state[rows] = BOOKED
        self.row_edge[rows] = edges
        self.slot_state[slots] = TAKEN
        self.slot_holder[slots] = rows
        self.open_flags[slots] = 0
        fate = self.t.fates[rows, np.minimum(self.row_attempt[rows], ATTEMPTS - 1)]
        self.row_attempt[rows] += 1
        self.row_misses[rows] = fate[:, 2] < self.a.no_show_rate
        room = self.slot_day[slots] - today - 1
        cancels = (fate[:, 0] < self.a.cancellation_rate) & (room >= 1)
        on_day = today + 1 + np.floor(fate[:, 1] * room).astype(np.int64)
        for row, slot, day in zip(
            rows[cancels].tolist(), slots[cancels].tolist(), on_day[cancels].tolist(), strict=True
        ):
            self.cancelling.setdefault(day, []).append((row, slot))

    def appointments(self, today: int) -> tuple[IntArray, IntArray]:
        """Today's slots pass: booked patients attend or wait again. Returns the slots that
        were still open (unused) and the referrals that did not attend."""
        todays = self.slots_on(today)
        held = todays[self.slot_state[todays] == TAKEN]
        unused = todays[self.slot_state[todays] == OPEN]
        holders = self.slot_holder[held]
        missed = holders[self.row_misses[holders]]
        attended = holders[~self.row_misses[holders]]
        self.row_state[attended] = SEEN
        self.seen_day[attended] = today
        self.row_state[missed] = WAITING
        self.row_edge[missed] = -1
        self.no_shows += len(missed)
        self.attended_slots += len(attended)
        self.slot_state[todays] = GONE
        self.open_flags[todays] = 0
        return unused, missed

    def cancellations_on(self, today: int) -> tuple[IntArray, IntArray]:
        """Patients who cancel today wait again; their slots open. Returns (rows, slots)."""
        pairs = [
            (row, slot)
            for row, slot in self.cancelling.pop(today, [])
            if self.row_state[row] == BOOKED and self.t.slot[self.row_edge[row]] == slot
        ]
        rows = np.array([row for row, _ in pairs], dtype=np.int64)
        slots = np.array([slot for _, slot in pairs], dtype=np.int64)
        self.row_state[rows] = WAITING
        self.row_edge[rows] = -1
        self.slot_state[slots] = OPEN
        self.slot_holder[slots] = -1
        self.open_flags[slots] = 1
        self.cancellations += len(rows)
        return rows, slots

    def release(self, today: int) -> IntArray:
        """The slots that open for booking today."""
        if today == 0:
            last = min(self.a.release_days + 1, len(self.slot_day_start) - 1)
            window = self.slots_by_day[: self.slot_day_start[last]]
        else:
            window = self.slots_on(today + self.a.release_days)
        opening: IntArray = window[self.slot_state[window] == CLOSED]
        self.slot_state[opening] = OPEN
        self.open_flags[opening] = 1
        return opening

    def in_system(self) -> int:
        """Referrals waiting, or booked and not yet seen."""
        return int(np.count_nonzero((self.row_state == WAITING) | (self.row_state == BOOKED)))


def run(
    timeline: Timeline,
    assumptions: Assumptions,
    policy: Policy,
    *,
    cold: bool = False,
    report: Report | None = None,
) -> Outcome:
    """Simulate ``assumptions.horizon_days`` days of ``timeline`` under ``policy``."""
    state = _Day(timeline, assumptions)
    t = timeline
    n_slots = len(t.slots["days_until"])
    tiers = t.referrals["tier"]
    in_order = (
        None if policy is Policy.CARE_GRAPH else InOrder(t.indptr, t.slot, t.weights, n_slots)
    )
    if policy is Policy.FIRST_COME_FIRST_SERVED:
        rank = np.lexsort((t.referrals["id"], -t.referrals["waited_days"]))
    else:
        rank = np.lexsort((t.referrals["id"], -t.referrals["waited_days"], tiers))
    position = np.empty(len(rank), dtype=np.int64)
    position[rank] = np.arange(len(rank))
    edge_rows = np.repeat(np.arange(len(t.referrals["id"])), np.diff(t.indptr))
    by_slot = np.argsort(t.slot, kind="stable")
    slot_ptr = np.zeros(n_slots + 1, dtype=np.int64)
    slot_ptr[1:] = np.cumsum(np.bincount(t.slot, minlength=n_slots))
    matcher: Matcher | None = None
    list_size: list[int] = []
    seconds: list[float] = []
    horizon = assumptions.horizon_days
    for today in range(horizon):
        unused, missed = state.appointments(today)
        cancelled, freed = state.cancellations_on(today)
        arriving = (
            state.arriving_on(today)
            if today
            else np.concatenate([state.arriving_on(-1), state.arriving_on(0)])
        )
        state.row_state[arriving] = WAITING
        opening = state.release(today)
        joined = np.concatenate([missed, cancelled, arriving])
        started = time.perf_counter()
        if policy is Policy.CARE_GRAPH:
            if matcher is None or cold:
                matcher = Matcher(
                    t.indptr,
                    t.slot,
                    t.weights,
                    n_slots,
                    tiers,
                    inactive_referrals=np.flatnonzero(state.row_state != WAITING),
                    unavailable_slots=np.flatnonzero(state.slot_state != OPEN),
                )
                if not cold:
                    matcher.prepare_incremental()
            else:
                matcher.remove_slots(unused)
                matcher.offer_slots(np.concatenate([freed, opening]))
                matcher.add_referrals(joined)
            columns = matcher.solver.match_col
            holding = np.flatnonzero((columns >= 0) & (columns < n_slots))
            due = holding[state.slot_day[columns[holding]] <= today + assumptions.commit_days]
            edges = matcher.solver.match_edge[due].copy()
            matcher.book(due)
            state.book(due, edges, today)
        else:
            assert in_order is not None
            if today == 0:
                candidates = np.flatnonzero(state.row_state == WAITING)
            else:
                fresh = np.concatenate([freed, opening])
                near = np.concatenate(
                    [edge_rows[by_slot[slot_ptr[s] : slot_ptr[s + 1]]] for s in fresh.tolist()]
                    or [np.zeros(0, dtype=np.int64)]
                )
                candidates = np.unique(np.concatenate([near, joined]))
                candidates = candidates[state.row_state[candidates] == WAITING]
            candidates = candidates[np.argsort(position[candidates], kind="stable")]
            chosen = in_order.book(candidates, state.open_flags)
            made = chosen >= 0
            state.book(candidates[made], chosen[made], today)
        seconds.append(time.perf_counter() - started)
        list_size.append(state.in_system())
        if report is not None:
            report(today + 1, horizon)
    return _outcome(state, policy, seconds, list_size)


def _outcome(state: _Day, policy: Policy, seconds: list[float], list_size: list[int]) -> Outcome:
    t, horizon = state.t, state.a.horizon_days
    breach_day = t.referrals["days_to_breach"].astype(np.int64)
    waited = t.referrals["waited_days"].astype(np.int64)
    arrived = t.arrival_day < horizon
    seen = state.row_state == SEEN
    in_time = seen & (state.seen_day <= breach_day)
    breached = arrived & (breach_day >= 0) & (breach_day < horizon) & ~in_time
    still = (state.row_state == WAITING) | (state.row_state == BOOKED)
    capacity = (state.slot_day >= 1) & (state.slot_day < horizon) & (t.slots["open"] > 0)
    travelled = t.km[state.row_edge[seen]]
    return Outcome(
        policy=policy,
        seed=t.seed,
        horizon_days=horizon,
        breaches=tuple(
            int(np.count_nonzero(breached & (t.referrals["tier"] == tier)))
            for tier in range(len(TIER_ORDER))
        ),
        already_breached=int(np.count_nonzero(breach_day[t.arrival_day < 0] < 0)),
        arrived=int(np.count_nonzero(t.arrival_day >= 0)),
        seen=int(np.count_nonzero(seen)),
        waiting_at_end=int(np.count_nonzero(still)),
        waits_seen=_percentiles(state.seen_day[seen] + waited[seen]),
        mean_wait_days=round(float(np.mean(state.seen_day[seen] + waited[seen])), 3)
        if seen.any()
        else None,
        waits_at_end=_percentiles(horizon + waited[still]),
        list_size=tuple(list_size),
        utilisation=round(state.attended_slots / max(int(np.count_nonzero(capacity)), 1), 4),
        mean_travel_km=round(float(travelled.mean()), 2) if len(travelled) else None,
        no_shows=state.no_shows,
        cancellations=state.cancellations,
        first_day_seconds=seconds[0] if seconds else 0.0,
        seconds_per_day=float(np.mean(seconds[1:])) if len(seconds) > 1 else 0.0,
    )
