"""The referral lifecycle, written once: which status may follow which, and the FHIR
ServiceRequest.status each maps onto (the read API's fhirStatus field is built from this map)."""

from __future__ import annotations

from enum import StrEnum

from care_graph.errors import CareGraphError, ErrorCode


class ReferralStatus(StrEnum):
    """care_graph's own lifecycle of a referral."""

    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    BOOKED = "BOOKED"
    REJECTED = "REJECTED"
    REDIRECTED = "REDIRECTED"
    CANCELLED = "CANCELLED"
    COMPLETED = "COMPLETED"


TRANSITIONS: dict[ReferralStatus, frozenset[ReferralStatus]] = {
    ReferralStatus.SUBMITTED: frozenset(
        {
            ReferralStatus.ACCEPTED,
            ReferralStatus.REJECTED,
            ReferralStatus.REDIRECTED,
            ReferralStatus.CANCELLED,
        }
    ),
    ReferralStatus.ACCEPTED: frozenset(
        {ReferralStatus.BOOKED, ReferralStatus.REDIRECTED, ReferralStatus.CANCELLED}
    ),
    ReferralStatus.BOOKED: frozenset(
        {ReferralStatus.ACCEPTED, ReferralStatus.COMPLETED, ReferralStatus.CANCELLED}
    ),
    ReferralStatus.REJECTED: frozenset(),
    ReferralStatus.REDIRECTED: frozenset(),
    ReferralStatus.CANCELLED: frozenset(),
    ReferralStatus.COMPLETED: frozenset(),
}

# where a referral's journey ends: nothing may follow these
FINAL = frozenset(status for status, following in TRANSITIONS.items() if not following)

FHIR_STATUS: dict[ReferralStatus, str] = {
    ReferralStatus.SUBMITTED: "active",
    ReferralStatus.ACCEPTED: "active",
    ReferralStatus.BOOKED: "active",
    ReferralStatus.COMPLETED: "completed",
    ReferralStatus.REJECTED: "revoked",
    ReferralStatus.REDIRECTED: "revoked",
    ReferralStatus.CANCELLED: "revoked",
}


def check_transition(current: str, wanted: ReferralStatus) -> None:
    """Raise INVALID_TRANSITION, naming the current status, unless ``wanted`` may follow it."""
    if wanted not in TRANSITIONS[ReferralStatus(current)]:
        raise CareGraphError(
            ErrorCode.INVALID_TRANSITION,
            f"a referral that is {current} cannot become {wanted}",
        )
