"""The GraphQL object types. Every field's SQL is declared here, beside the field, once."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

import strawberry

from care_graph.api import lists
from care_graph.api.connections import connection
from care_graph.api.declare import SQL, Computed, Nested, column, to_one
from care_graph.api.enums import (
    AppointmentOrder,
    AppointmentStatus,
    Priority,
    ReferralOrder,
    ReferralStatus,
    ReferrerKind,
    ServiceKind,
    ServiceOrder,
    SlotOrder,
    SlotStatus,
    StaffRole,
)
from care_graph.api.inputs import (
    AppointmentFilter,
    ReferralFilter,
    ServiceFilter,
    SlotFilter,
)
from care_graph.clinic_time import TODAY_SQL, day_sql
from care_graph.db import bookable
from care_graph.domain.lifecycle import FHIR_STATUS

NodeT = TypeVar("NodeT")

# node type name -> table, filled by @node
NODE_TABLES: dict[str, str] = {}  # Node type name -> the table its rows live in
NODE_CLASSES: dict[str, type] = {}  # Node type name -> its strawberry type
ROW_TYPES: dict[str, type] = {}  # plain row type name (rows of a RowList) -> its strawberry type


def node(table: str) -> Any:
    """Register a class as a Node type stored in ``table`` and make it a strawberry type."""

    def register(cls: type) -> type:
        NODE_TABLES[cls.__name__] = table
        NODE_CLASSES[cls.__name__] = strawberry.type(cls)
        return NODE_CLASSES[cls.__name__]

    return register


def row_type(description: str) -> Any:
    """Register a class as a plain row type (no id, not a Node) and make it a strawberry type."""

    def register(cls: type) -> type:
        ROW_TYPES[cls.__name__] = strawberry.type(cls, description=description)
        return ROW_TYPES[cls.__name__]

    return register


def global_id(type_name: str) -> Any:
    """The ``id`` field of a node type: an opaque global ID."""
    return column(f"cg_global_id('{type_name}', {{t}}.id)", "Opaque global ID.")


@strawberry.interface(description="An object with a global ID, fetchable with node(id:).")
class Node:
    id: strawberry.ID


@strawberry.type(description="Where a page sits in its list.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="One item of a page with the cursor to continue from it.")
class Edge(Generic[NodeT]):
    cursor: str
    node: NodeT


@strawberry.type(description="A page of a list: first/after or last/before, keyset cursors.")
class Connection(Generic[NodeT]):
    page: strawberry.Private[Any]

    @strawberry.field
    def edges(self) -> list[Edge[NodeT]]:
        return [
            Edge(cursor=cursor, node=item)
            for cursor, item in zip(self.page.cursors, self.page.nodes, strict=True)
        ]

    @strawberry.field
    def nodes(self) -> list[NodeT]:
        return list(self.page.nodes)

    @strawberry.field
    def page_info(self) -> PageInfo:
        info: PageInfo = self.page.page_info()
        return info

    @strawberry.field(description="Every item under the filters; counted only when asked.")
    async def total_count(self) -> int:
        count: int = await self.page.total_count()
        return count


async def _page(info: strawberry.Info, parent: Any, spec: lists.ListSpec, **arguments: Any) -> Any:
    return Connection(page=await info.context.loaders.page(spec, parent, arguments))


# The lifecycle's FHIR map (domain/lifecycle.py) as SQL, so it is written down once.
FHIR_SERVICE_REQUEST_STATUS = (
    "CASE {t}.status "
    + " ".join(f"WHEN '{ours}' THEN '{fhir}'" for ours, fhir in FHIR_STATUS.items())
    + " END"
)


@node("services")
class Service(Node):
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID = global_id("Service")
    code: str = column("{t}.code", "Service code; also the skill that delivers it.")
    name: str = column("{t}.name")
    kind: ServiceKind = column("{t}.kind")
    slot_minutes: int = column("{t}.slot_minutes", "Length of this service's slots.")


@node("slots")
class Slot(Node):
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID = global_id("Slot")
    service: Service = to_one("Service", "{t}.service_id")
    site: Site = to_one("Site", "{t}.site_id")
    staff: Staff = to_one("Staff", "{t}.staff_id")
    starts_at: datetime = column("{t}.starts_at")
    ends_at: datetime = column("{t}.ends_at")
    status: SlotStatus = column(
        f"cg_enum({bookable.shown_status('{t}')})", "A lapsed hold reads as FREE at once."
    )
    hold_expires_at: datetime | None = column(
        bookable.shown_hold_expiry("{t}"), "When the hold on this slot lapses, if it has one."
    )

    @strawberry.field(
        description="Great-circle distance in km from a point to the slot's site.",
        metadata={
            SQL: Computed(
                "(SELECT round(great_circle_km({latitude}::float8, {longitude}::float8,"
                " s.latitude, s.longitude)::numeric, 3)::float8"
                " FROM sites s WHERE s.id = {t}.site_id)"
            )
        },
    )
    async def distance_km(self, info: strawberry.Info, latitude: float, longitude: float) -> float:
        value: float = await info.context.loaders.computed(
            self, info, latitude=latitude, longitude=longitude
        )
        return value


@node("roster_shifts")
class RosterShift(Node):
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID = global_id("RosterShift")
    staff: Staff = to_one("Staff", "{t}.staff_id")
    site: Site = to_one("Site", "{t}.site_id")
    service: Service = to_one("Service", "{t}.service_id")
    starts_at: datetime = column("{t}.starts_at")
    ends_at: datetime = column("{t}.ends_at")


@node("staff")
class Staff(Node):
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID = global_id("Staff")
    given_name: str = column("{t}.given_name")
    family_name: str = column("{t}.family_name")
    role: StaffRole = column("{t}.role")
    skills: list[str] = column(
        "(SELECT coalesce(json_agg(k.skill_code ORDER BY k.skill_code), '[]')"
        " FROM staff_skills k WHERE k.staff_id = {t}.id)",
        "Skill codes: the services this person delivers, and extra skills.",
    )
    base_site: Site = to_one("Site", "{t}.base_site_id")

    slots: Connection[Slot] = connection(
        Slot,
        lists.SLOTS_OF_STAFF,
        SlotFilter,
        SlotOrder,
        SlotOrder.STARTS_AT,
        description="This person's slots.",
        nested=True,
    )

    @strawberry.field(
        description="This person's roster shifts.", metadata={SQL: Nested(lists.SHIFTS_OF_STAFF)}
    )
    async def shifts(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[RosterShift]:
        page: Connection[RosterShift] = await _page(
            info, self, lists.SHIFTS_OF_STAFF, first=first, after=after, last=last, before=before
        )
        return page


@node("sites")
class Site(Node):
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID = global_id("Site")
    code: str = column("{t}.code")
    name: str = column("{t}.name")
    region: str = column("{t}.region_code", "NHS England region code.")
    region_name: str = column("(SELECT name FROM regions WHERE code = {t}.region_code)")
    town: str = column("{t}.town")
    postcode: str = column("{t}.postcode")
    latitude: float = column("{t}.latitude")
    longitude: float = column("{t}.longitude")

    @strawberry.field(
        description="Great-circle distance in km from a point.",
        metadata={
            SQL: Computed(
                "round(great_circle_km({latitude}::float8, {longitude}::float8,"
                " {t}.latitude, {t}.longitude)::numeric, 3)::float8"
            )
        },
    )
    async def distance_km(self, info: strawberry.Info, latitude: float, longitude: float) -> float:
        value: float = await info.context.loaders.computed(
            self, info, latitude=latitude, longitude=longitude
        )
        return value

    services: Connection[Service] = connection(
        Service,
        lists.SERVICES_OF_SITE,
        ServiceFilter,
        ServiceOrder,
        ServiceOrder.CODE,
        description="Services offered here.",
        nested=True,
    )

    slots: Connection[Slot] = connection(
        Slot,
        lists.SLOTS_OF_SITE,
        SlotFilter,
        SlotOrder,
        SlotOrder.STARTS_AT,
        description="Slots at this site.",
        nested=True,
    )


@node("appointments")
class Appointment(Node):
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID = global_id("Appointment")
    referral: Referral = to_one("Referral", "{t}.referral_id")
    slot: Slot = to_one("Slot", "{t}.slot_id")
    status: AppointmentStatus = column("cg_enum({t}.status)")
    cancellation_reason: str | None = column("{t}.cancellation_reason")
    non_attendance_reason: str | None = column("{t}.non_attendance_reason")
    rebooked_from: Appointment | None = to_one("Appointment", "{t}.rebooked_from_id")
    is_override: bool = column("{t}.is_override", "An administrator's deliberate double booking.")
    booked_at: datetime = column("{t}.booked_at")


@node("referrals")
class Referral(Node):
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID = global_id("Referral")
    ubrn: str = column("{t}.ubrn", "Unique Booking Reference Number (12 digits).")
    patient: Patient = to_one("Patient", "{t}.patient_id")
    referrer_name: str = column("{t}.referrer_name")
    referrer_kind: ReferrerKind = column("{t}.referrer_kind")
    from_service: Service | None = to_one("Service", "{t}.from_service_id")
    to_service: Service = to_one("Service", "{t}.to_service_id")
    priority: Priority = column("{t}.priority")
    status: ReferralStatus = column("{t}.status")
    fhir_status: str = column(FHIR_SERVICE_REQUEST_STATUS, "FHIR ServiceRequest.status.")
    received_at: datetime = column("{t}.received_at")
    clock_start: datetime = column("{t}.clock_start")
    breach_date: date = column("{t}.breach_date", "When the waiting-time standard breaches.")
    waiting_days: int = column(
        f"({TODAY_SQL} - " + day_sql("{t}.clock_start") + ")", "Days since the clock started."
    )
    days_to_breach: int = column(
        "({t}.breach_date - " + TODAY_SQL + ")",
        "Days left before breach; negative once breached.",
    )
    earliest_date: date | None = column("{t}.earliest_date", "Not bookable before this date.")
    max_travel_km: float | None = column("{t}.max_travel_km", "Farthest the patient will go.")
    required_skill: str | None = column("{t}.required_skill")
    redirected_from: Referral | None = to_one("Referral", "{t}.redirected_from_id")
    rejection_reason: str | None = column("{t}.rejection_reason")
    offer: Slot | None = to_one(
        "Slot",
        "(SELECT held.id FROM slots held WHERE held.held_for_referral_id = {t}.id AND "
        + bookable.live_hold("held")
        + " ORDER BY held.hold_expires_at DESC LIMIT 1)",
        "The slot held for this referral, awaiting its answer: an offer made to it (accept or"
        " decline it) or its own hold; null when none is live. The slot's holdExpiresAt says"
        " until when.",
    )

    appointments: Connection[Appointment] = connection(
        Appointment,
        lists.APPOINTMENTS_OF_REFERRAL,
        AppointmentFilter,
        AppointmentOrder,
        AppointmentOrder.BOOKED_AT,
        description="Appointments made for this referral.",
        nested=True,
    )

    @strawberry.field(
        description="Free slots meeting every hard constraint (service, skill, earliest date,"
        " maximum travel), soonest first.",
        metadata={SQL: Nested(lists.CANDIDATE_SLOTS)},
    )
    async def candidate_slots(
        self, info: strawberry.Info, first: int | None = None, after: str | None = None
    ) -> Connection[Slot]:
        page: Connection[Slot] = await _page(
            info, self, lists.CANDIDATE_SLOTS, first=first, after=after
        )
        return page


@node("patients")
class Patient(Node):
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID = global_id("Patient")
    nhs_number: str = column("{t}.nhs_number", "Ten digits, unformatted.")
    nhs_number_formatted: str = column(
        "substr({t}.nhs_number, 1, 3) || ' ' || substr({t}.nhs_number, 4, 3) || ' '"
        " || substr({t}.nhs_number, 7)",
        "Display form, 3-3-4.",
    )
    given_name: str = column("{t}.given_name")
    family_name: str = column("{t}.family_name")
    date_of_birth: date = column("{t}.date_of_birth")
    postcode: str = column("{t}.postcode")
    region: str = column("{t}.region_code", "Home NHS England region code.")
    latitude: float = column("{t}.latitude")
    longitude: float = column("{t}.longitude")
    phone: str | None = column("{t}.phone")
    email: str | None = column("{t}.email")
    version: int = column("{t}.version", "Increases with every change (optimistic locking).")

    referrals: Connection[Referral] = connection(
        Referral,
        lists.REFERRALS_OF_PATIENT,
        ReferralFilter,
        ReferralOrder,
        ReferralOrder.BREACH_DATE,
        description="This patient's referrals.",
        nested=True,
    )


AUDITED_TYPE_NAMES = {
    "patient": "Patient",
    "referral": "Referral",
    "appointment": "Appointment",
    "slot": "Slot",
    "staff": "Staff",
}


@node("audit_events")
class AuditEvent(Node):
    row: strawberry.Private[dict[str, Any]]
    id: strawberry.ID = global_id("AuditEvent")
    occurred_at: datetime = column("{t}.occurred_at")
    actor: str = column("{t}.actor", "The token subject that acted.")
    actor_role: str = column("{t}.actor_role")
    operation: str = column("{t}.operation", "READ, BOOK, CANCEL, …")
    record_type: str = column("{t}.record_type")
    record_id: strawberry.ID | None = column(
        "CASE {t}.record_type "
        + " ".join(
            f"WHEN '{kind}' THEN cg_global_id('{name}', {{t}}.record_id)"
            for kind, name in AUDITED_TYPE_NAMES.items()
        )
        + " END",
        "Global ID of the record, where it is one.",
    )
    detail: str | None = column("{t}.detail::text", "What else was recorded, as JSON.")


def _figure(name: str, description: str) -> Any:
    """A figure of the capacity outlook: the column of that name (db/capacity_store.py)."""
    return column(f"{{t}}.{name}", description)


_NOW_ONLY = " The waiting list as it stands now: on the current week's row only, else null."


@row_type(
    "One service in one week of a region's capacity outlook (docs/capacity.md defines each"
    " figure). Weeks are Monday to Sunday on the clinics' calendar (Europe/London)."
)
class CapacityWeek:
    row: strawberry.Private[dict[str, Any]]
    service: Service = to_one("Service", "{t}.service_id")
    service_code: str = _figure("service_code", "The service's code.")
    week_starting: date = _figure("week_starting", "The Monday the week begins.")
    arrived: int | None = _figure(
        "arrived",
        "Referrals of the region's patients to the service received in the week so far;"
        " null for a week not yet begun.",
    )
    expected_arrivals: float = _figure(
        "expected_arrivals",
        "Referrals received a week on average over the 4 whole weeks before the current one.",
    )
    slots_offered: int = _figure(
        "slots_offered",
        "Slots of the service at the region's sites starting in the week, except those entered"
        " in error or taken out of use (busy-unavailable).",
    )
    slots_booked: int = _figure(
        "slots_booked",
        "Offered slots an appointment kept: in play, attended or not attended.",
    )
    slots_not_attended: int = _figure(
        "slots_not_attended", "Booked slots whose patient did not attend (noshow)."
    )
    slots_unused: int = _figure(
        "slots_unused", "Offered slots that have started and were not booked: capacity lost."
    )
    slots_free: int = _figure(
        "slots_free", "Offered slots yet to start and not booked (holds included)."
    )
    utilisation: float | None = _figure(
        "utilisation", "slotsBooked / slotsOffered (4 decimals); null when none is offered."
    )
    breaches_ahead: int = _figure(
        "breaches_ahead",
        "Referrals waiting now whose breach date falls in the week (from today on): breaches"
        " to come unless they are booked before.",
    )
    waiting: int | None = _figure("waiting", "Referrals waiting to be booked." + _NOW_ONLY)
    waiting_urgent: int | None = _figure("waiting_urgent", "Of them URGENT." + _NOW_ONLY)
    waiting_two_week_wait: int | None = _figure(
        "waiting_two_week_wait", "Of them TWO_WEEK_WAIT." + _NOW_ONLY
    )
    waiting_routine: int | None = _figure("waiting_routine", "Of them ROUTINE." + _NOW_ONLY)
    waited_under_6_weeks: int | None = _figure(
        "waited_under_6_weeks",
        "Of them waited under 6 whole weeks since the clock started." + _NOW_ONLY,
    )
    waited_6_to_12_weeks: int | None = _figure(
        "waited_6_to_12_weeks", "Of them waited 6 to under 12 weeks." + _NOW_ONLY
    )
    waited_12_to_18_weeks: int | None = _figure(
        "waited_12_to_18_weeks", "Of them waited 12 to under 18 weeks." + _NOW_ONLY
    )
    waited_18_weeks_or_more: int | None = _figure(
        "waited_18_weeks_or_more", "Of them waited 18 weeks or more." + _NOW_ONLY
    )
    waited_weeks_p92: int | None = _figure(
        "waited_weeks_p92",
        "The 92nd percentile of whole weeks waited (the referral-to-treatment measure);"
        " null when nothing waits." + _NOW_ONLY,
    )
    breaches_so_far: int | None = _figure(
        "breaches_so_far", "Referrals waiting whose breach date has passed." + _NOW_ONLY
    )
