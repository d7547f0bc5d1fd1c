"""The clinics' time zone. Rosters keep its wall-clock hours, and days — a referral's breach
and earliest dates, the days until a slot — are counted on its calendar, not on UTC's."""

from __future__ import annotations

CLINIC_ZONE = "Europe/London"
