"""Waiting-time standards: how long each priority may wait before its referral breaches.

The numbers are configuration (environment variables), not code, because local standards
differ and change: referral to treatment is 18 weeks; urgent suspected cancer (``TWO_WEEK_WAIT``)
uses the 28-day Faster Diagnosis Standard; ``URGENT`` non-cancer is a local standard.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum


class Priority(StrEnum):
    """Referral priority codes, as the national e-Referral Service uses them."""

    URGENT = "URGENT"
    TWO_WEEK_WAIT = "TWO_WEEK_WAIT"
    ROUTINE = "ROUTINE"


@dataclass(frozen=True, slots=True)
class WaitingStandards:
    """Days from clock start to breach, per priority."""

    urgent_days: int = 14
    two_week_wait_days: int = 28
    routine_days: int = 126

    @classmethod
    def from_environment(cls) -> WaitingStandards:
        """Standards from ``CARE_GRAPH_STANDARD_{URGENT,TWO_WEEK_WAIT,ROUTINE}_DAYS``."""
        defaults = cls()
        return cls(
            urgent_days=int(
                os.environ.get("CARE_GRAPH_STANDARD_URGENT_DAYS", defaults.urgent_days)
            ),
            two_week_wait_days=int(
                os.environ.get(
                    "CARE_GRAPH_STANDARD_TWO_WEEK_WAIT_DAYS", defaults.two_week_wait_days
                )
            ),
            routine_days=int(
                os.environ.get("CARE_GRAPH_STANDARD_ROUTINE_DAYS", defaults.routine_days)
            ),
        )

    def days_for(self, priority: Priority) -> int:
        """The standard, in days, for one priority."""
        return {
            Priority.URGENT: self.urgent_days,
            Priority.TWO_WEEK_WAIT: self.two_week_wait_days,
            Priority.ROUTINE: self.routine_days,
        }[priority]

    def breach_date(self, priority: Priority, clock_start: date) -> date:
        """The date a referral with this priority and clock start breaches its standard."""
        return clock_start + timedelta(days=self.days_for(priority))
