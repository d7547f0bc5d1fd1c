"""The clinics' time zone. Rosters keep its wall-clock hours, and days — a referral's breach
and earliest dates, days waited, the days until a slot — are counted on its calendar, not on
UTC's or the server's, in Python and in SQL alike."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

CLINIC_ZONE = "Europe/London"
CLINIC_TIME = ZoneInfo(CLINIC_ZONE)
TODAY_SQL = f"(now() AT TIME ZONE '{CLINIC_ZONE}')::date"  # the clinics' today, in SQL


def clinic_date(instant: datetime) -> date:
    """The clinics' calendar date of an aware instant."""
    return instant.astimezone(CLINIC_TIME).date()


def day_sql(instant: str) -> str:
    """SQL for the clinics' calendar date of a timestamptz expression."""
    return f"({instant} AT TIME ZONE '{CLINIC_ZONE}')::date"


def midnight_sql(day: str) -> str:
    """SQL for the instant a date expression begins on the clinics' calendar."""
    return f"({day}::timestamp AT TIME ZONE '{CLINIC_ZONE}')"
