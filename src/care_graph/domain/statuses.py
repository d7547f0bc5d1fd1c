"""The FHIR status codes care_graph stores for slots and appointments, written once: every
other module names them through these enums, and SQL gets them through ``sql_list``."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class SlotStatus(StrEnum):
    """FHIR R4 Slot.status, as stored. A hold is ``BUSY_TENTATIVE`` with an expiry; once the
    expiry has passed the slot reads and books as ``FREE`` (see db/bookable.py)."""

    FREE = "free"
    BUSY = "busy"
    BUSY_UNAVAILABLE = "busy-unavailable"
    BUSY_TENTATIVE = "busy-tentative"
    ENTERED_IN_ERROR = "entered-in-error"


class AppointmentStatus(StrEnum):
    """FHIR R4 Appointment.status, as stored."""

    PROPOSED = "proposed"
    PENDING = "pending"
    BOOKED = "booked"
    ARRIVED = "arrived"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"
    NOSHOW = "noshow"
    ENTERED_IN_ERROR = "entered-in-error"
    CHECKED_IN = "checked-in"
    WAITLIST = "waitlist"


# An appointment in play: the referral has it, and may not take another (the database's
# appointments_one_open_per_referral index lists the same four).
OPEN_APPOINTMENT = (
    AppointmentStatus.PENDING,
    AppointmentStatus.BOOKED,
    AppointmentStatus.ARRIVED,
    AppointmentStatus.CHECKED_IN,
)
# what a cancellation may end
CANCELLABLE_APPOINTMENT = (AppointmentStatus.PENDING, AppointmentStatus.BOOKED)
# what attendance may be recorded for
DUE_APPOINTMENT = (
    AppointmentStatus.BOOKED,
    AppointmentStatus.ARRIVED,
    AppointmentStatus.CHECKED_IN,
)
# attendance already recorded
ATTENDANCE_RECORDED = (AppointmentStatus.FULFILLED, AppointmentStatus.NOSHOW)


def sql_list(values: Iterable[StrEnum]) -> str:
    """A parenthesised SQL list of codes, for ``IN``: the codes are ours, never user input."""
    return "(" + ", ".join(f"'{value.value}'" for value in values) + ")"
