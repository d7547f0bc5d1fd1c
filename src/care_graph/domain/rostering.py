"""Rostering rules: the hard constraints every shift added to a roster keeps, whoever adds it
(a person publishing a roster, or the capacity recommender drafting one).

- the staff member holds the service's skill, and the site offers the service;
- the site is their base site or one of the sites they may work at;
- they are not on leave that day;
- the shift overlaps none of their shifts;
- rest: at least 11 hours between working days, and a day's work (first start to last end,
  a lunch break inside it) spans at most 13 hours, so that every 24 hours hold 11 of rest;
- at most their contracted hours, and never more than 48, in a week (Monday to Sunday; a
  shift counts in the week it starts).

Days are the clinics' calendar dates as ordinals (``date.toordinal()``) and times minutes on
their wall clock, so the rules need no database and no time zone: the one place they live.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, time
from enum import StrEnum

MINUTES_A_DAY = 24 * 60


class RuleBroken(StrEnum):
    """Which rule a shift would break."""

    SKILL = "SKILL"  # the staff member lacks the service's skill
    SITE_SERVICE = "SITE_SERVICE"  # the site does not offer the service
    SITE = "SITE"  # not a site the staff member may work at
    LEAVE = "LEAVE"
    OVERLAP = "OVERLAP"
    REST = "REST"
    WEEKLY_HOURS = "WEEKLY_HOURS"


EXPLANATIONS = {
    RuleBroken.SKILL: "the staff member does not hold the service's skill",
    RuleBroken.SITE_SERVICE: "the site does not offer the service",
    RuleBroken.SITE: "the staff member may not work at that site",
    RuleBroken.LEAVE: "the staff member is on leave that day",
    RuleBroken.OVERLAP: "the shift overlaps a shift the staff member already works",
    RuleBroken.REST: "the shift leaves less than 11 hours' rest between working days",
    RuleBroken.WEEKLY_HOURS: "the shift takes the week past the staff member's contracted hours",
}


@dataclass(frozen=True, slots=True)
class RosterRules:
    """The limits, in minutes."""

    rest_minutes: int = 11 * 60
    max_day_span_minutes: int = 13 * 60
    max_week_minutes: int = 48 * 60


@dataclass(frozen=True, slots=True, order=True)
class Shift:
    """One shift: a day and its start and end on the clinics' clock (``ends`` past 1,440 for
    a shift running past midnight)."""

    day: int  # date ordinal
    starts: int  # minutes since the day's midnight
    ends: int

    @classmethod
    def on(cls, day: date, starts: time, ends: time) -> Shift:
        """The shift from ``starts`` to ``ends`` on ``day`` (ending past midnight when
        ``ends`` is not after ``starts``)."""
        start = starts.hour * 60 + starts.minute
        end = ends.hour * 60 + ends.minute
        return cls(day.toordinal(), start, end if end > start else end + MINUTES_A_DAY)

    @property
    def minutes(self) -> int:
        """How long the shift is."""
        return self.ends - self.starts

    @property
    def week(self) -> int:
        """The Monday-to-Sunday week it starts in (date ordinal 1 is a Monday)."""
        return (self.day - 1) // 7

    def absolute(self) -> tuple[int, int]:
        """Start and end in minutes on one clock over all days."""
        base = self.day * MINUTES_A_DAY
        return base + self.starts, base + self.ends


@dataclass(frozen=True, slots=True)
class StaffTerms:
    """What a staff member's roster must respect."""

    staff: int
    base_site: int
    skills: frozenset[str]
    other_sites: frozenset[int] = frozenset()
    contracted_minutes_week: int = 2250
    leave: tuple[tuple[int, int], ...] = ()  # (first day, last day) ordinals, both included

    def may_work_at(self, site: int) -> bool:
        """Whether the staff member may be rostered at ``site``."""
        return site == self.base_site or site in self.other_sites

    def on_leave(self, day: int) -> bool:
        """Whether ``day`` falls in any of their leave."""
        return any(first <= day <= last for first, last in self.leave)


@dataclass(slots=True)
class StaffRoster:
    """One staff member's shifts, kept so that a proposed shift is checked in time that
    grows with the shifts of its own days and week, not with the whole roster."""

    terms: StaffTerms
    rules: RosterRules = field(default_factory=RosterRules)
    _by_day: dict[int, list[Shift]] = field(default_factory=dict)
    _days: list[int] = field(default_factory=list)  # worked days, sorted
    _week_minutes: dict[int, int] = field(default_factory=dict)

    @classmethod
    def of(
        cls, terms: StaffTerms, shifts: Iterable[Shift], rules: RosterRules | None = None
    ) -> StaffRoster:
        """The roster holding ``shifts`` (as worked: not checked against the rules)."""
        roster = cls(terms, rules or RosterRules())
        for shift in shifts:
            roster.add(shift)
        return roster

    def add(self, shift: Shift) -> None:
        """Record ``shift`` as worked."""
        if shift.day not in self._by_day:
            bisect.insort(self._days, shift.day)
        self._by_day.setdefault(shift.day, []).append(shift)
        self._week_minutes[shift.week] = self._week_minutes.get(shift.week, 0) + shift.minutes

    def week_minutes(self, week: int) -> int:
        """Minutes rostered in ``week``."""
        return self._week_minutes.get(week, 0)

    def breaks(
        self, shift: Shift, *, site: int, service: str, site_offers: bool = True
    ) -> RuleBroken | None:
        """The first rule ``shift`` at ``site`` for ``service`` would break, or None when it
        keeps them all (``site_offers``: whether the site offers the service)."""
        terms = self.terms
        if service not in terms.skills:
            return RuleBroken.SKILL
        if not site_offers:
            return RuleBroken.SITE_SERVICE
        if not terms.may_work_at(site):
            return RuleBroken.SITE
        if terms.on_leave(shift.day):
            return RuleBroken.LEAVE
        start, end = shift.absolute()
        for day in (shift.day - 1, shift.day, shift.day + 1):
            for other in self._by_day.get(day, ()):
                other_start, other_end = other.absolute()
                if other_start < end and start < other_end:
                    return RuleBroken.OVERLAP
        if not self._rested(shift):
            return RuleBroken.REST
        limit = min(terms.contracted_minutes_week, self.rules.max_week_minutes)
        if self.week_minutes(shift.week) + shift.minutes > limit:
            return RuleBroken.WEEKLY_HOURS
        return None

    def _rested(self, shift: Shift) -> bool:
        """Whether the shift's working day stays within its span and keeps the rest between
        it and the working days either side."""
        same_day = [*self._by_day.get(shift.day, ()), shift]
        first = min(other.absolute()[0] for other in same_day)
        last = max(other.absolute()[1] for other in same_day)
        if last - first > self.rules.max_day_span_minutes:
            return False
        at = bisect.bisect_left(self._days, shift.day)
        before = self._days[at - 1] if at > 0 else None
        after_at = at + 1 if at < len(self._days) and self._days[at] == shift.day else at
        after = self._days[after_at] if after_at < len(self._days) else None
        if before is not None:
            previous_end = max(other.absolute()[1] for other in self._by_day[before])
            if first - previous_end < self.rules.rest_minutes:
                return False
        if after is not None:
            next_start = min(other.absolute()[0] for other in self._by_day[after])
            if next_start - last < self.rules.rest_minutes:
                return False
        return True
