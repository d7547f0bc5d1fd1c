"""What "this referral may take this slot" means, written once as SQL that every path uses:
single booking and holds (which report the first rule a pair breaks), plan commits (which
book only the pairs that keep every rule), freed-slot offers, ``Referral.candidateSlots``,
the slot status every reader sees, and the matcher's reads of what is waiting and what is on
offer.

A rule is a condition over a referral row ``{r}`` and a slot row ``{s}``: any alias, a table
or a CTE, that has the columns the rules name (``REFERRAL_COLUMNS``, ``SLOT_COLUMNS``).

Holds lapse by the clock, not by a job: a ``busy-tentative`` slot whose expiry has passed is
free to every reader and every writer at once (``slot_open``, ``shown_status``). The
sweeper (domain/offers.py) then only tidies the row and offers it on.

The matcher's candidate builder applies the pair rules (service, skill, earliest date,
travel) to arrays in numpy, for speed; the stateful property test in
tests/test_bookable_paths.py checks that it and every SQL path agree, pair by pair.
"""

from __future__ import annotations

from dataclasses import dataclass

from care_graph.clinic_time import midnight_sql
from care_graph.domain.lifecycle import TRANSITIONS, ReferralStatus
from care_graph.domain.statuses import SlotStatus, sql_list
from care_graph.errors import ErrorCode

REFERRAL_COLUMNS = (
    "id",
    "status",
    "to_service_id",
    "patient_id",
    "required_skill",
    "earliest_date",
    "max_travel_km",
)
SLOT_COLUMNS = (
    "id",
    "status",
    "service_id",
    "site_id",
    "staff_id",
    "starts_at",
    "hold_expires_at",
    "held_for_referral_id",
)

_FREE = f"'{SlotStatus.FREE.value}'"
_HELD = f"'{SlotStatus.BUSY_TENTATIVE.value}'"
# the statuses a referral may be booked from: those the lifecycle lets become BOOKED
_BOOKABLE_FROM = sql_list(
    status for status, following in TRANSITIONS.items() if ReferralStatus.BOOKED in following
)


def live_hold(s: str) -> str:
    """The slot is held and its hold has not lapsed."""
    return f"({s}.status = {_HELD} AND {s}.hold_expires_at > now())"


def slot_open(s: str) -> str:
    """Anyone may take the slot: it is free, or its hold has lapsed."""
    return f"({s}.status = {_FREE} OR ({s}.status = {_HELD} AND {s}.hold_expires_at <= now()))"


def slot_on_offer_to(s: str, r: str) -> str:
    """The referral may take the slot: open to anyone, or held (live) for this referral."""
    return (
        f"({s}.status = {_FREE} OR ({s}.status = {_HELD}"
        f" AND ({s}.hold_expires_at <= now() OR {s}.held_for_referral_id = {r}.id)))"
    )


def shown_status(s: str) -> str:
    """The slot's status as every reader sees it: a lapsed hold is free."""
    return f"(CASE WHEN {slot_open(s)} THEN {_FREE} ELSE {s}.status END)"


def shown_hold_expiry(s: str) -> str:
    """When the slot's hold lapses; null when it holds none (or it lapsed already)."""
    return f"(CASE WHEN {live_hold(s)} THEN {s}.hold_expires_at END)"


def referral_waits(r: str) -> str:
    """The referral waits to be booked: its lifecycle allows it. Such a referral has no
    appointment in play: every path that opens one moves the referral on (to BOOKED) in the
    same transaction, and the unique index appointments_one_open_per_referral refuses a
    second open appointment whatever a path does."""
    return f"({r}.status IN {_BOOKABLE_FROM})"


def awaits_offer_answer(r: str, other_than_slot: str | None = None) -> str:
    """The referral holds a live offer (of another slot than ``other_than_slot``): matching
    and further offers leave it alone until it answers or the offer lapses."""
    other = "" if other_than_slot is None else f" AND ho.id <> {other_than_slot}"
    return (
        f"EXISTS (SELECT 1 FROM slots ho WHERE ho.held_for_referral_id = {r}.id"
        f" AND {live_hold('ho')}{other})"
    )


def live_offers_to(referral_ids: str) -> str:
    """A query of (referral_id, slot_id) for the live offers held for an array of referrals,
    through the held-slot index: ``awaits_offer_answer`` for a whole batch at once (a
    correlated form per pair cost plan commits half their speed)."""
    return (
        "SELECT held_for_referral_id AS referral_id, id AS slot_id FROM slots ho"
        f" WHERE ho.held_for_referral_id = ANY({referral_ids}) AND {live_hold('ho')}"
    )


def distance_km(r: str, site_id: str) -> str:
    """Great-circle km from the referral's patient's home to a site."""
    return (
        f"(SELECT great_circle_km(pt.latitude, pt.longitude, st.latitude, st.longitude)"
        f" FROM patients pt, sites st WHERE pt.id = {r}.patient_id AND st.id = {site_id})"
    )


def within_travel(r: str, km: str) -> str:
    """A distance (SQL) is within the referral's maximum travel."""
    return f"({r}.max_travel_km IS NULL OR {km} <= {r}.max_travel_km)"


def skill_held(r: str, s: str) -> str:
    """The slot's clinician has the skill the referral needs, if it needs one."""
    return (
        f"({r}.required_skill IS NULL OR EXISTS (SELECT 1 FROM staff_skills sk"
        f" WHERE sk.staff_id = {s}.staff_id AND sk.skill_code = {r}.required_skill))"
    )


def not_before_earliest(r: str, s: str) -> str:
    """The slot starts on or after the referral's earliest date (the clinics' calendar)."""
    return f"({s}.starts_at >= coalesce({midnight_sql(f'{r}.earliest_date')}, '-infinity'))"


@dataclass(frozen=True, slots=True)
class Rule:
    """One condition a (referral, slot) pair must meet, and what breaking it answers."""

    name: str
    code: ErrorCode
    message: str
    template: str  # SQL over {r}, {s} and {km} (the distance from home to the slot's site)
    overridable: bool  # an administrator's audited override may book past it
    of_referral_state: bool = False  # about the referral alone, not this slot

    def sql(self, r: str, s: str, km: str | None = None) -> str:
        """The condition for these aliases; ``km`` is an SQL distance the caller has at hand
        (joined rows, say), else it is looked up per pair."""
        return self.template.format(r=r, s=s, km=km or distance_km(r, f"{s}.site_id"))


RULES: tuple[Rule, ...] = (
    Rule(
        "service",
        ErrorCode.SLOT_SERVICE_MISMATCH,
        "the slot is not for the referral's service",
        "{s}.service_id = {r}.to_service_id",
        overridable=False,
    ),
    Rule(
        "future",
        ErrorCode.SLOT_UNAVAILABLE,
        "the slot has already started",
        "{s}.starts_at > now()",
        overridable=False,
    ),
    Rule(
        "waiting",
        ErrorCode.INVALID_TRANSITION,
        "the referral is not waiting to be booked",
        referral_waits("{r}"),
        overridable=False,
        of_referral_state=True,
    ),
    Rule(
        "on_offer",
        ErrorCode.SLOT_UNAVAILABLE,
        "the slot is booked, out of use, or held for someone else",
        slot_on_offer_to("{s}", "{r}"),
        overridable=True,
    ),
    Rule(
        "skill",
        ErrorCode.SLOT_SKILL_MISMATCH,
        "the slot's clinician does not have the skill the referral needs",
        skill_held("{r}", "{s}"),
        overridable=True,
    ),
    Rule(
        "earliest",
        ErrorCode.SLOT_BEFORE_EARLIEST_DATE,
        "the slot is before the referral's earliest date",
        not_before_earliest("{r}", "{s}"),
        overridable=True,
    ),
    Rule(
        "travel",
        ErrorCode.SLOT_BEYOND_MAX_TRAVEL,
        "the slot's site is farther than the referral's maximum travel",
        within_travel("{r}", "{km}"),
        overridable=True,
    ),
)


def bookable(
    r: str, s: str, *, referral_state: bool = True, km: str | None = None, travel: bool = True
) -> str:
    """Every rule at once: the referral may take the slot. Without ``referral_state``, only
    the rules about this slot: what a referral could move to once it waits again (a booked
    referral's candidates for rescheduling). ``km``: see ``Rule.sql``; without ``travel``,
    the caller has already kept to the sites ``within_travel`` (and says so)."""
    return " AND ".join(
        f"({rule.sql(r, s, km)})"
        for rule in RULES
        if (referral_state or not rule.of_referral_state) and (travel or rule.name != "travel")
    )


def rule_columns(r: str, s: str) -> str:
    """Each rule as a boolean column named after it, for reporting the first one broken."""
    return ", ".join(f"({rule.sql(r, s)}) AS {rule.name}" for rule in RULES)
