"""Every list the API serves, declared once: its table, orderings and filters, and the SQL that
reads one page of it. The compiler and the resolver path both build their queries from here.

Pages are keyset pages: a cursor holds the sort key and id of a row, the next page asks for rows
after it in ``(sort key, id)`` order, and one row more than asked tells whether there is more.
OFFSET is never used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from care_graph.api.args import Arg, Params
from care_graph.api.errors import ApiError, ApiErrorCode
from care_graph.api.ids import decode_cursor, key_of_type
from care_graph.api.policy import CLINIC_STAFF, Policy
from care_graph.auth import Role
from care_graph.clinic_time import TODAY_SQL, midnight_sql
from care_graph.db import bookable, capacity_store

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100

FilterBuilder = Callable[[Arg, Params, str], list[str]]


@dataclass(frozen=True, slots=True)
class Ordering:
    """A sort key: an SQL expression over the row (``{t}``), the SQL type its cursor text casts
    back to, and the direction (applied to the key and then to the id)."""

    key_sql: str
    key_type: str
    descending: bool = False


@dataclass(frozen=True, slots=True)
class ListSpec:
    """A list of one node type: where its rows live, how it sorts, how it filters."""

    type_name: str
    table: str
    orderings: dict[str, Ordering]
    default_order: str
    filters: FilterBuilder | None = None
    join: str | None = None  # for nested lists: a condition over child {t} and parent {p}
    # (column, SQL query of its values over {p}): read the page as one ordered index scan per
    # value, merged, instead of one scan filtering every row (see CANDIDATE_SLOTS)
    fan_out: tuple[str, str] | None = None

    def nested(self, join: str) -> ListSpec:
        """This list as a child of another row, joined by ``join`` ({t} child, {p} parent)."""
        return replace(self, join=join)

    def condition(self, alias: str, parent_alias: str | None) -> str | None:
        """The whole condition tying a row ({t}) to its parent ({p}), fan-out included."""
        parts = []
        if self.join is not None:
            parts.append(self.join.format(t=alias, p=parent_alias))
        if self.fan_out is not None:
            column, values = self.fan_out
            parts.append(f"{alias}.{column} IN ({values.format(p=parent_alias)})")
        return " AND ".join(parts) if parts else None


@dataclass(frozen=True, slots=True)
class Page:
    """The SQL pieces of one page: ``FROM … WHERE … ORDER BY … LIMIT``, the same conditions
    without the keyset (for totalCount), the cursor expression and the direction."""

    from_where: str
    order_limit: str
    cursor_sql: str
    forward: bool
    size: int
    size_placeholder: str


def page_size(value: Any) -> int:
    """A requested page size, checked against the limits."""
    if value < 0:
        raise ApiError(ApiErrorCode.BAD_USER_INPUT, "first and last must not be negative")
    if value > MAX_PAGE_SIZE:
        raise ApiError(
            ApiErrorCode.PAGE_SIZE_EXCEEDED,
            f"a page holds at most {MAX_PAGE_SIZE} items; ask for the next page with a cursor",
        )
    return int(value)


@dataclass(frozen=True, slots=True)
class RowList:
    """A root list of plain rows (not nodes, so not paged): what ``source`` returns, a query
    whose ``{name}`` placeholders are the field's arguments, each checked by its entry in
    ``arguments`` and ordered by its ``id`` column. Only ``readers`` may read it; ``rows``
    estimates how many rows it answers from the arguments the document gives (api/limits.py)."""

    type_name: str
    title: str  # what a refusal calls it
    source: Callable[..., str]
    arguments: dict[str, Callable[[Any], Any] | None]
    readers: frozenset[Role]
    rows: Callable[[dict[str, Any]], int]

    def sql(self, args: dict[str, Arg], params: Params, policy: Policy, alias: str) -> str:
        """``FROM`` the source's rows (aliased ``alias``) for these arguments, after refusing a
        viewer who is not among the readers."""
        policy.require(self.readers, self.title)
        placeholders = {
            name: params.add(args[name], check) for name, check in self.arguments.items()
        }
        return f"FROM ({self.source(**placeholders)}) {alias}"


def outlook_weeks(value: Any) -> int:
    """The weeks a capacity outlook spans, checked against its bound."""
    if not 1 <= value <= capacity_store.MAX_WEEKS:
        raise ApiError(
            ApiErrorCode.BAD_USER_INPUT,
            f"weeks must be from 1 to {capacity_store.MAX_WEEKS}",
        )
    return int(value)


def build_page(
    spec: ListSpec,
    args: dict[str, Arg],
    params: Params,
    alias: str,
    parent_alias: str | None,
    policy: Policy,
) -> Page:
    """The SQL of one page of ``spec`` for these arguments, rows aliased ``alias``."""
    first, last = args.get("first"), args.get("last")
    if first is not None and last is not None and first.is_set and last.is_set:
        raise ApiError(ApiErrorCode.BAD_USER_INPUT, "give first or last, not both")
    forward = not (last is not None and last.is_set)
    count = first if forward else last
    if count is None or not count.is_set:
        count = Arg.constant(DEFAULT_PAGE_SIZE)
    size_now = page_size(count.value)
    size = params.add(count, page_size)

    order_arg = args.get("order_by")
    order_name = (
        order_arg.value if order_arg is not None and order_arg.is_set else spec.default_order
    )
    ordering = spec.orderings[order_name]
    key = ordering.key_sql.format(t=alias)
    ascending = forward != ordering.descending
    direction = "ASC" if ascending else "DESC"

    conditions = []
    if spec.join is not None:
        conditions.append(spec.join.format(t=alias, p=parent_alias))
    visible = policy.condition(spec.type_name, alias, params)
    if visible is not None:
        conditions.append(visible)
    filter_arg = args.get("filter")
    if spec.filters is not None and filter_arg is not None and filter_arg.is_set:
        conditions.extend(spec.filters(filter_arg, params, alias))
    keyset = args.get("after" if forward else "before")
    if keyset is not None and keyset.is_set:
        decode_cursor(keyset.value)
        sort_key = params.add(keyset, lambda cursor: decode_cursor(cursor)[0])
        row_id = params.add(keyset, lambda cursor: decode_cursor(cursor)[1])
        comparison = ">" if ascending else "<"
        conditions.append(
            f"({key}, {alias}.id) {comparison} ({sort_key}::text::{ordering.key_type},"
            f" {row_id}::bigint)"
        )
    where = " AND ".join(conditions) if conditions else "true"
    order_limit = f"ORDER BY {key} {direction}, {alias}.id {direction} LIMIT {size} + 1"
    from_where = f"FROM {spec.table} {alias} WHERE {where}"
    if spec.fan_out is not None:
        column, values = spec.fan_out
        part = f"{alias}_part"
        from_where = (
            f"FROM ({values.format(p=parent_alias)}) AS {part}(value) CROSS JOIN LATERAL"
            f" (SELECT {alias}.* FROM {spec.table} {alias} WHERE {alias}.{column} = {part}.value"
            f" AND {where} {order_limit}) {alias} WHERE true"
        )
    return Page(
        from_where=from_where,
        order_limit=order_limit,
        cursor_sql=f"cg_cursor(({key})::text, {alias}.id)",
        forward=forward,
        size=size_now,
        size_placeholder=size,
    )


def count_sql(
    spec: ListSpec,
    args: dict[str, Arg],
    params: Params,
    alias: str,
    parent_alias: str | None,
    policy: Policy,
) -> str:
    """SQL counting every row of the list under its filters (no paging): totalCount."""
    conditions = []
    condition = spec.condition(alias, parent_alias)
    if condition is not None:
        conditions.append(condition)
    visible = policy.condition(spec.type_name, alias, params)
    if visible is not None:
        conditions.append(visible)
    filter_arg = args.get("filter")
    if spec.filters is not None and filter_arg is not None and filter_arg.is_set:
        conditions.extend(spec.filters(filter_arg, params, alias))
    where = " AND ".join(conditions) if conditions else "true"
    return f"(SELECT count(*) FROM {spec.table} {alias} WHERE {where})"


# --- filters ------------------------------------------------------------------------------


def _global_key(expected_type: str) -> Callable[[Any], int]:
    def convert(global_id: Any) -> int:
        key = key_of_type(str(global_id), expected_type)
        return -1 if key is None else key  # -1 matches nothing, as a forbidden record would

    return convert


def _fhir_codes(names: list[str]) -> list[str]:
    """GraphQL enum names (BUSY_TENTATIVE) back to FHIR codes (busy-tentative)."""
    return [name.lower().replace("_", "-") for name in names]


def referral_filters(f: Arg, p: Params, t: str) -> list[str]:
    """Referrals by status, priority, service, region, patient, waiting time, breach date."""
    conditions = []
    if f.field("status").is_set:
        conditions.append(f"{t}.status = ANY({p.add(f.field('status'))}::text[])")
    if f.field("priority").is_set:
        conditions.append(f"{t}.priority = ANY({p.add(f.field('priority'))}::text[])")
    if f.field("service_code").is_set:
        conditions.append(
            f"{t}.to_service_id = (SELECT id FROM services WHERE code ="
            f" {p.add(f.field('service_code'))}::text)"
        )
    if f.field("region").is_set:
        conditions.append(
            f"EXISTS (SELECT 1 FROM patients rp WHERE rp.id = {t}.patient_id"
            f" AND rp.region_code = {p.add(f.field('region'))}::text)"
        )
    if f.field("patient_id").is_set:
        key = p.add(f.field("patient_id"), _global_key("Patient"))
        conditions.append(f"{t}.patient_id = {key}::bigint")
    if f.field("waiting_longer_than_days").is_set:
        days = p.add(f.field("waiting_longer_than_days"))
        # waitingDays > N, counted on the clinics' calendar as waitingDays is; as a bound on
        # clock_start itself, so that its index serves
        start_of_day = midnight_sql(f"({TODAY_SQL} - {days}::int)")
        conditions.append(f"{t}.clock_start < {start_of_day}")
    if f.field("breaching_before").is_set:
        conditions.append(f"{t}.breach_date < {p.add(f.field('breaching_before'))}::date")
    return conditions


def slot_filters(f: Arg, p: Params, t: str) -> list[str]:
    """Slots by service, site, region, time window, status, and distance from a point."""
    conditions = []
    if f.field("service_code").is_set:
        conditions.append(
            f"{t}.service_id = (SELECT id FROM services WHERE code ="
            f" {p.add(f.field('service_code'))}::text)"
        )
    if f.field("site_id").is_set:
        conditions.append(f"{t}.site_id = {p.add(f.field('site_id'), _global_key('Site'))}::int")
    if f.field("region").is_set:
        conditions.append(
            f"{t}.site_id IN (SELECT id FROM sites WHERE region_code ="
            f" {p.add(f.field('region'))}::text)"
        )
    if f.field("starts_after").is_set:
        conditions.append(f"{t}.starts_at >= {p.add(f.field('starts_after'))}::timestamptz")
    if f.field("starts_before").is_set:
        conditions.append(f"{t}.starts_at < {p.add(f.field('starts_before'))}::timestamptz")
    if f.field("status").is_set:
        codes = p.add(f.field("status"), _fhir_codes)
        conditions.append(f"{bookable.shown_status(t)} = ANY({codes}::text[])")
    near = f.field("near")
    if near.is_set:
        lat = p.add(near.field("latitude"))
        lon = p.add(near.field("longitude"))
        radius = p.add(near.field("radius_km"))
        conditions.append(
            f"{t}.site_id IN (SELECT id FROM sites WHERE great_circle_km({lat}::float8,"
            f" {lon}::float8, latitude, longitude) <= {radius}::float8)"
        )
    return conditions


def staff_filters(f: Arg, p: Params, t: str) -> list[str]:
    """Staff by role, skill and base site."""
    conditions = []
    if f.field("role").is_set:
        conditions.append(f"{t}.role = ANY({p.add(f.field('role'))}::text[])")
    if f.field("skill").is_set:
        conditions.append(
            f"EXISTS (SELECT 1 FROM staff_skills k WHERE k.staff_id = {t}.id"
            f" AND k.skill_code = {p.add(f.field('skill'))}::text)"
        )
    if f.field("site_id").is_set:
        key = p.add(f.field("site_id"), _global_key("Site"))
        conditions.append(f"{t}.base_site_id = {key}::int")
    return conditions


def patient_filters(f: Arg, p: Params, t: str) -> list[str]:
    """Patients by NHS number, family name and home region."""
    conditions = []
    if f.field("nhs_number").is_set:
        number = p.add(f.field("nhs_number"), lambda n: str(n).replace(" ", ""))
        conditions.append(f"{t}.nhs_number = {number}::text")
    if f.field("family_name").is_set:
        conditions.append(f"{t}.family_name = {p.add(f.field('family_name'))}::text")
    if f.field("region").is_set:
        conditions.append(f"{t}.region_code = {p.add(f.field('region'))}::text")
    return conditions


def site_filters(f: Arg, p: Params, t: str) -> list[str]:
    """Sites by region and by a service they offer."""
    conditions = []
    if f.field("region").is_set:
        conditions.append(f"{t}.region_code = {p.add(f.field('region'))}::text")
    if f.field("service_code").is_set:
        conditions.append(
            f"EXISTS (SELECT 1 FROM site_services ss JOIN services v ON v.id = ss.service_id"
            f" WHERE ss.site_id = {t}.id AND v.code = {p.add(f.field('service_code'))}::text)"
        )
    return conditions


def service_filters(f: Arg, p: Params, t: str) -> list[str]:
    """Services by kind."""
    if f.field("kind").is_set:
        return [f"{t}.kind = ANY({p.add(f.field('kind'))}::text[])"]
    return []


def appointment_filters(f: Arg, p: Params, t: str) -> list[str]:
    """Appointments by status."""
    if f.field("status").is_set:
        return [f"{t}.status = ANY({p.add(f.field('status'), _fhir_codes)}::text[])"]
    return []


def audit_filters(f: Arg, p: Params, t: str) -> list[str]:
    """Audit events by record type, operation and actor."""
    conditions = []
    for name, column in (
        ("record_type", "record_type"),
        ("operation", "operation"),
        ("actor", "actor"),
    ):
        if f.field(name).is_set:
            conditions.append(f"{t}.{column} = {p.add(f.field(name))}::text")
    return conditions


# --- the lists ----------------------------------------------------------------------------

NAME = Ordering("{t}.family_name || ' ' || {t}.given_name", "text")

REFERRALS = ListSpec(
    "Referral",
    "referrals",
    {
        "BREACH_DATE": Ordering("{t}.breach_date", "date"),
        "LONGEST_WAITING": Ordering("{t}.clock_start", "timestamptz"),
        "NEWEST": Ordering("{t}.received_at", "timestamptz", descending=True),
    },
    "BREACH_DATE",
    referral_filters,
)

SLOTS = ListSpec(
    "Slot",
    "slots",
    {
        "STARTS_AT": Ordering("{t}.starts_at", "timestamptz"),
    },
    "STARTS_AT",
    slot_filters,
)

STAFF = ListSpec("Staff", "staff", {"NAME": NAME}, "NAME", staff_filters)
PATIENTS = ListSpec("Patient", "patients", {"NAME": NAME}, "NAME", patient_filters)
SITES = ListSpec("Site", "sites", {"NAME": Ordering("{t}.name", "text")}, "NAME", site_filters)
SERVICES = ListSpec(
    "Service", "services", {"CODE": Ordering("{t}.code", "text")}, "CODE", service_filters
)
APPOINTMENTS = ListSpec(
    "Appointment",
    "appointments",
    {
        "BOOKED_AT": Ordering("{t}.booked_at", "timestamptz"),
    },
    "BOOKED_AT",
    appointment_filters,
)
AUDIT_EVENTS = ListSpec(
    "AuditEvent",
    "audit_events",
    {"NEWEST": Ordering("{t}.occurred_at", "timestamptz", descending=True)},
    "NEWEST",
    audit_filters,
)
ROSTER_SHIFTS = ListSpec(
    "RosterShift",
    "roster_shifts",
    {
        "STARTS_AT": Ordering("{t}.starts_at", "timestamptz"),
    },
    "STARTS_AT",
)

# The slots the parent referral ({p}) may book: every booking rule about the slot
# (db/bookable.py), so the list offers exactly what bookAppointment (or, for a booked
# referral, rescheduleAppointment) accepts. The sites within the referral's maximum
# travel are found first (a handful per referral) and each is read in time order from the
# slot index, so a page reads a few rows per site instead of every slot of the service.
REACHABLE_SITES = (
    "SELECT ss.site_id FROM site_services ss JOIN sites s ON s.id = ss.site_id"
    " JOIN patients pt ON pt.id = {p}.patient_id WHERE ss.service_id = {p}.to_service_id AND "
    + bookable.within_travel(
        "{p}", "great_circle_km(pt.latitude, pt.longitude, s.latitude, s.longitude)"
    )
)
CANDIDATE_SLOTS = replace(
    SLOTS.nested(
        # travel is kept by the sites the page is read from (REACHABLE_SITES)
        bookable.bookable("{p}", "{t}", referral_state=False, travel=False)
    ),
    fan_out=("site_id", REACHABLE_SITES),
)

# Lists under a parent row ({p}).
SERVICES_OF_SITE = SERVICES.nested(
    "EXISTS (SELECT 1 FROM site_services ss WHERE ss.site_id = {p}.id AND ss.service_id = {t}.id)"
)
SLOTS_OF_SITE = SLOTS.nested("{t}.site_id = {p}.id")
SLOTS_OF_STAFF = SLOTS.nested("{t}.staff_id = {p}.id")
SHIFTS_OF_STAFF = ROSTER_SHIFTS.nested("{t}.staff_id = {p}.id")
REFERRALS_OF_PATIENT = REFERRALS.nested("{t}.patient_id = {p}.id")
APPOINTMENTS_OF_REFERRAL = APPOINTMENTS.nested("{t}.referral_id = {p}.id")

# The operating picture of a region (db/capacity_store.py): rows of service and week. Only
# clinic staff read it, who see every row beneath it (the database's row security agrees).
SERVICES_PER_REGION = 20  # the most services a region's outlook is costed for (demo: 20)


def _outlook_rows(given: dict[str, Any]) -> int:
    """Rows an outlook answers: a service's weeks, or every service's; weeks past the bound
    count as the bound, since such a request is refused as bad input before any SQL runs."""
    weeks = given.get("weeks")
    weeks = weeks if isinstance(weeks, int) else capacity_store.DEFAULT_WEEKS
    services = 1 if given.get("service") is not None else SERVICES_PER_REGION
    return services * min(max(weeks, 1), capacity_store.MAX_WEEKS)


CAPACITY_OUTLOOK = RowList(
    "CapacityWeek",
    "the capacity outlook",
    capacity_store.outlook_sql,
    {"region": None, "service": None, "weeks": outlook_weeks},
    CLINIC_STAFF,
    _outlook_rows,
)
