"""GraphQL reads against an independent oracle.

The served answer (a real request through the app, under every role) is compared with an answer
computed another way: every table read whole with a plain ``SELECT *``, then joins, filters,
orderings, keyset pages, counts, visibility and the booking rules of ``candidateSlots`` written
again in plain Python from README.md's rules. Nothing here comes from the modules that build the
SQL (api/lists.py, api/policy.py, api/compiler.py, db/bookable.py): a rule wrong there is not
repeated here, which is what makes this an oracle rather than the same SQL assembled twice.

The world is the tiny demo data anchored today, plus hand-made rows for the edge cases: a
service of our own with a lapsed hold, a live hold, a past slot, slots on either side of a
Europe/London midnight in summer time, travel limits near and far, a referral started a minute
after a London midnight sixty days ago, cancelled and rebooked appointments, a patient a
referrer registered without referring, and two patients of the same name.

Answers that depend on the clock (holds lapse, slots start, days turn) are computed for the
instant before the request and, if they differ, for the instant after: the server's ``now()``
falls between the two.
"""

from __future__ import annotations

import base64
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import httpx
import orjson
import pytest

from care_graph.api.ids import decode_cursor, decode_global_id
from care_graph.auth import Role
from care_graph.nhs import check_digit
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory, asgi_client, bearer

JSON = Any
Row = dict[str, Any]
Args = dict[str, Any]

LONDON = ZoneInfo("Europe/London")
EARTH_RADIUS_KM = 6371.0088
DEFAULT_PAGE = 20
TODAY = date.today()
SOON = (TODAY + timedelta(days=10)).isoformat()
SUMMER = date(TODAY.year + 1, 7, 1)  # a day in British Summer Time, always ahead
LAST_SUMMER = date(TODAY.year - 1, 8, 15)
MANCHESTER = (53.48, -2.24)
CHARING_CROSS = (51.5074, -0.1278)

# --- the world: demo data plus edge cases --------------------------------------------------


def nhs_number(first_nine: str) -> str:
    digit = check_digit(first_nine)
    assert digit is not None, first_nine
    return f"{first_nine}{digit}"


def london_sql(days: int, hh_mm: str) -> str:
    """SQL for a Europe/London wall-clock time ``days`` from the clinics' today."""
    hours, minutes = hh_mm.split(":")
    return (
        f"((date_trunc('day', now() AT TIME ZONE 'Europe/London') + interval '{days} days"
        f" {hours} hours {minutes} minutes') AT TIME ZONE 'Europe/London')"
    )


def slot_sql(
    slot_id: int, site: int, staff: int, starts: str, status: str = "free", **hold: str
) -> str:
    expiry = hold.get("expires", "NULL")
    holder = hold.get("holder", "NULL")
    return (
        f"({slot_id}, 9001, {site}, {staff}, {starts}, {starts} + interval '30 minutes',"
        f" '{status}', {expiry}, {holder})"
    )


A, B, C, D, E, F = 90001, 90002, 90003, 90004, 90005, 90006  # our referrals
LAPSED, LIVE, FREE, PAST, BUSY, BEFORE_MIDNIGHT, AFTER_MIDNIGHT, FAR = range(9000001, 9000009)
OWN_PATIENT, OTHER_PATIENT, REGISTERED_ONLY, NAMESAKE = 90001, 90002, 90003, 90004
ORACLE_REFERRER = "referrer-oracle"

EDGE_ROWS = f"""
INSERT INTO skills VALUES ('ORACLE_CLINIC', 'Oracle clinic');
INSERT INTO services (id, code, name, kind, slot_minutes)
    VALUES (9001, 'ORACLE_CLINIC', 'Oracle clinic', 'SPECIALTY', 30);
INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude) VALUES
    (9001, 'ORC01', 'Oracle Clinic Hackney', 'LONDON', 'Hackney', 'E8 1AA', 51.545, -0.055),
    (9002, 'ORC02', 'Oracle Clinic Whitby', 'NORTH_EAST_YORKSHIRE', 'Whitby', 'YO21 1AA',
     54.486, -0.615);
INSERT INTO site_services VALUES (9001, 9001), (9002, 9001);
INSERT INTO staff (id, given_name, family_name, role, base_site_id) VALUES
    (9001, 'Ada', 'Oracle', 'CONSULTANT', 9001), (9002, 'Bea', 'Oracle', 'CONSULTANT', 9002);
INSERT INTO staff_skills VALUES (9001, 'ORACLE_CLINIC'), (9001, 'SEDATION'),
    (9002, 'ORACLE_CLINIC');
INSERT INTO patients (id, nhs_number, given_name, family_name, date_of_birth, postcode,
                      region_code, latitude, longitude, phone, registered_by) VALUES
    ({OWN_PATIENT}, '{nhs_number("999090001")}', 'Olive', 'Oracle', '1950-03-01', 'E8 2BB',
     'LONDON', 51.55, -0.06, '020 7946 0001', NULL),
    ({OTHER_PATIENT}, '{nhs_number("999090002")}', 'Oscar', 'Oracle', '1990-07-15', 'N1 1CC',
     'LONDON', 51.53, -0.10, NULL, NULL),
    ({REGISTERED_ONLY}, '{nhs_number("999090003")}', 'Otto', 'Oracle', '2001-01-01',
     'YO21 3DD', 'NORTH_EAST_YORKSHIRE', 54.48, -0.62, NULL, '{ORACLE_REFERRER}'),
    ({NAMESAKE}, '{nhs_number("999090005")}', 'Olive', 'Oracle', '1961-11-30', 'E9 4EE',
     'LONDON', 51.54, -0.04, NULL, NULL);
INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind, referrer_subject,
                       to_service_id, priority, status, received_at, clock_start, breach_date,
                       earliest_date, max_travel_km, required_skill) VALUES
    ({A}, '900000000001', {OWN_PATIENT}, 'Dr Ida Oracle', 'GP', '{ORACLE_REFERRER}', 9001,
     'ROUTINE', 'ACCEPTED', now() - interval '20 days', now() - interval '20 days',
     current_date + 106, NULL, 25, 'SEDATION'),
    ({B}, '900000000002', {OTHER_PATIENT}, 'Dr Ian Other', 'GP', 'referrer-9', 9001,
     'URGENT', 'ACCEPTED', now() - interval '3 days', now() - interval '3 days',
     current_date + 11, NULL, 25, NULL),
    ({C}, '900000000003', {OWN_PATIENT}, 'Dr Ida Oracle', 'GP', '{ORACLE_REFERRER}', 9001,
     'TWO_WEEK_WAIT', 'ACCEPTED', now() - interval '9 days', now() - interval '9 days',
     current_date + 19, NULL, NULL, NULL),
    ({D}, '900000000004', 1, 'Ida Oracle', 'PHARMACIST', '{ORACLE_REFERRER}', 9001,
     'ROUTINE', 'SUBMITTED',
     ((((now() AT TIME ZONE 'Europe/London')::date - 60)::timestamp
       AT TIME ZONE 'Europe/London') + interval '1 minute'),
     ((((now() AT TIME ZONE 'Europe/London')::date - 60)::timestamp
       AT TIME ZONE 'Europe/London') + interval '1 minute'),
     current_date + 66, NULL, 1, NULL),
    ({E}, '900000000005', {OWN_PATIENT}, 'Dr Ian Other', 'DENTIST', 'referrer-2', 9001,
     'ROUTINE', 'COMPLETED', '{LAST_SUMMER} 23:30+00', '{LAST_SUMMER} 23:30+00',
     '{LAST_SUMMER + timedelta(days=126)}', NULL, 25, NULL),
    ({F}, '900000000006', {OTHER_PATIENT}, 'Dr Ida Oracle', 'GP', '{ORACLE_REFERRER}', 9001,
     'ROUTINE', 'ACCEPTED', now() - interval '1 day', now() - interval '1 day',
     current_date + 125, '{SUMMER + timedelta(days=1)}', NULL, NULL);
UPDATE referrals SET redirected_from_id = {E} WHERE id = {F};
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at, status,
                   hold_expires_at, held_for_referral_id) VALUES
    {
    slot_sql(
        LAPSED,
        9002,
        9002,
        london_sql(3, "10:00"),
        "busy-tentative",
        expires="now() - interval '10 minutes'",
        holder=str(C),
    )
},
    {
    slot_sql(
        LIVE,
        9001,
        9001,
        london_sql(2, "10:30"),
        "busy-tentative",
        expires="now() + interval '2 hours'",
        holder=str(A),
    )
},
    {slot_sql(FREE, 9001, 9001, london_sql(2, "11:00"))},
    {slot_sql(PAST, 9001, 9001, london_sql(-1, "10:00"))},
    {slot_sql(BUSY, 9001, 9001, london_sql(2, "11:30"), "busy")},
    {slot_sql(BEFORE_MIDNIGHT, 9001, 9001, f"'{SUMMER} 22:30+00'::timestamptz")},
    {slot_sql(AFTER_MIDNIGHT, 9001, 9001, f"'{SUMMER} 23:30+00'::timestamptz")},
    {slot_sql(FAR, 9002, 9002, london_sql(3, "10:30"))},
    {slot_sql(9000009, 9001, 9001, london_sql(2, "12:00"), "entered-in-error")},
    {slot_sql(9000010, 9001, 9001, london_sql(2, "12:30"), "busy-unavailable")};
INSERT INTO appointments (id, referral_id, slot_id, status, cancellation_reason,
                          rebooked_from_id, booked_by, booked_at) VALUES
    (90001, {A}, {FREE}, 'cancelled', 'PATIENT_ILL', NULL, 'clerk-1', now() - interval '5 days'),
    (90002, {A}, {BUSY}, 'cancelled', 'CLINIC_CANCELLED', 90001, 'clerk-1',
     now() - interval '5 days'),
    (90003, {E}, {PAST}, 'fulfilled', NULL, NULL, 'clerk-2', now() - interval '2 days');
-- a live hold on a demo slot, for the first waiting demo referral of its service
UPDATE slots SET status = 'busy-tentative', hold_expires_at = now() + interval '3 hours',
    held_for_referral_id = r.id
FROM (SELECT id, to_service_id FROM referrals WHERE status = 'ACCEPTED' AND id < 90000
      ORDER BY id LIMIT 1) r
WHERE slots.id = (SELECT s.id FROM slots s WHERE s.service_id = r.to_service_id
                  AND s.status = 'free' ORDER BY s.starts_at, s.id LIMIT 1);
"""

TABLES = (
    "regions",
    "services",
    "sites",
    "site_services",
    "staff",
    "staff_skills",
    "roster_shifts",
    "slots",
    "patients",
    "referrals",
    "appointments",
    "audit_events",
)
TABLE_OF = {
    "Service": "services",
    "Site": "sites",
    "Staff": "staff",
    "RosterShift": "roster_shifts",
    "Slot": "slots",
    "Patient": "patients",
    "Referral": "referrals",
    "Appointment": "appointments",
    "AuditEvent": "audit_events",
}


class World:
    """Every row of every table, as plain dicts, with the lookups the oracle needs."""

    def __init__(self, tables: dict[str, list[Row]]) -> None:
        self.tables = tables
        self.by_id: dict[str, dict[int, Row]] = {
            table: {row["id"]: row for row in tables[table]} for table in TABLE_OF.values()
        }
        self.region_names = {row["code"]: row["name"] for row in tables["regions"]}
        self.skills: dict[int, set[str]] = defaultdict(set)
        for row in tables["staff_skills"]:
            self.skills[row["staff_id"]].add(row["skill_code"])
        self.offered = {(row["site_id"], row["service_id"]) for row in tables["site_services"]}
        self.service_ids = {row["code"]: row["id"] for row in tables["services"]}
        self.slots_of_service: dict[int, list[Row]] = defaultdict(list)
        for row in tables["slots"]:
            self.slots_of_service[row["service_id"]].append(row)

    def row(self, type_name: str, key: int | None) -> Row | None:
        return None if key is None else self.by_id[TABLE_OF[type_name]].get(key)

    def rows(self, type_name: str) -> list[Row]:
        return self.tables[TABLE_OF[type_name]]


async def read_table(connection: asyncpg.Connection[Any], table: str) -> list[Row]:
    return [dict(record) for record in await connection.fetch(f"SELECT * FROM {table}")]


async def load_world(url: str) -> World:
    connection = await asyncpg.connect(url)
    try:
        return World({table: await read_table(connection, table) for table in TABLES})
    finally:
        await connection.close()


# --- who asks ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Who:
    """A caller: a token's role, subject, patient and sites."""

    role: Role
    subject: str
    patient_id: int | None = None
    site_ids: tuple[int, ...] | None = None

    def headers(self) -> dict[str, str]:
        return bearer(self.role, self.subject, self.patient_id, self.site_ids)


CALLERS: dict[str, Callable[[World], Who]] = {
    "patient-own": lambda _world: Who(Role.PATIENT, "patient-own", OWN_PATIENT),
    "patient-booked": lambda world: Who(
        Role.PATIENT,
        "patient-booked",
        next(
            world.by_id["referrals"][row["referral_id"]]["patient_id"]
            for row in world.tables["appointments"]
            if row["id"] < 90000
        ),
    ),
    "referrer-oracle": lambda _world: Who(Role.REFERRER, ORACLE_REFERRER),
    "referrer-demo": lambda _world: Who(Role.REFERRER, "referrer-4"),
    "clinician-at-site": lambda _world: Who(Role.CLINICIAN, "clinician-9001", site_ids=(9001,)),
    "scheduler-at-sites": lambda _world: Who(Role.SCHEDULER, "scheduler-1-2", site_ids=(1, 2)),
    "scheduler": lambda _world: Who(Role.SCHEDULER, "scheduler-all"),
    "admin": lambda _world: Who(Role.ADMIN, "admin-1"),
}

# --- plain helpers -------------------------------------------------------------------------


def gid(type_name: str, key: int) -> str:
    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    (lat1, lon1), (lat2, lon2) = (tuple(map(math.radians, point)) for point in (a, b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def km_shown(a: tuple[float, float], b: tuple[float, float]) -> Any:
    """A distance as the API shows it: rounded to metres."""
    return pytest.approx(haversine_km(a, b), abs=5.01e-4)


def instant(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def day(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def code_name(code: str) -> str:
    """A FHIR code (busy-tentative) as its GraphQL enum name (BUSY_TENTATIVE)."""
    return code.upper().replace("-", "_")


def clinic_today(now: datetime) -> date:
    return now.astimezone(LONDON).date()


def london_midnight(value: date) -> datetime:
    return datetime(value.year, value.month, value.day, tzinfo=LONDON)


def key_text(value: Any) -> str:
    """A sort key as a cursor shows it, normalised: ISO dates and UTC instants, or the text."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def served_key_text(text: str) -> str:
    if len(text) == 10:
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    return key_text(parsed) if parsed.tzinfo is not None else text


CURSOR_FIELDS = {"cursor", "startCursor", "endCursor"}


def normalised(data: JSON) -> JSON:
    """Served data with cursors opened (sort key, id) and audit details parsed."""
    if isinstance(data, dict):
        result = {}
        for name, value in data.items():
            if name in CURSOR_FIELDS and isinstance(value, str):
                text, key = decode_cursor(value)
                result[name] = ["cursor", served_key_text(text), key]
            elif name == "detail" and isinstance(value, str):
                result[name] = orjson.loads(value)
            else:
                result[name] = normalised(value)
        return result
    if isinstance(data, list):
        return [normalised(item) for item in data]
    return data


# --- the oracle ----------------------------------------------------------------------------

Order = tuple[Callable[[Row], Any], bool]  # sort key of a row, descending


@dataclass(frozen=True, slots=True)
class Listing:
    """A list of one node type: how it orders and which rows a filter keeps."""

    type_name: str
    orders: dict[str, Order]
    default: str
    keeps: Callable[[Oracle, Row, dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row]
    more: bool
    forward: bool
    total: int
    key: Callable[[Row], Any]

    def cursor(self, row: Row) -> list[Any]:
        return ["cursor", key_text(self.key(row)), row["id"]]


@dataclass(frozen=True, slots=True)
class Oracle:
    """The expected answers for one caller at one instant."""

    world: World
    who: Who
    now: datetime

    # who sees what (README, "Who may do what")
    def visible(self, type_name: str, row: Row) -> bool:
        role = self.who.role
        if type_name == "AuditEvent":
            return role is Role.ADMIN
        if type_name in ("Service", "Site", "Staff", "RosterShift", "Slot"):
            return True
        if role in (Role.ADMIN, Role.CLINICIAN, Role.SCHEDULER):
            return True
        if type_name == "Appointment":
            referral = self.world.by_id["referrals"][row["referral_id"]]
            return self.visible("Referral", referral)
        if role is Role.PATIENT:
            owner = row["id"] if type_name == "Patient" else row["patient_id"]
            return bool(owner == self.who.patient_id)
        assert role is Role.REFERRER
        if type_name == "Referral":
            return bool(row["referrer_subject"] == self.who.subject)
        return row["registered_by"] == self.who.subject or any(
            referral["patient_id"] == row["id"] and referral["referrer_subject"] == self.who.subject
            for referral in self.world.tables["referrals"]
        )

    def one(self, type_name: str, key: int | None, shape: Callable[[Row], JSON]) -> JSON:
        row = self.world.row(type_name, key)
        return None if row is None or not self.visible(type_name, row) else shape(row)

    # pages
    def page(self, listing: Listing, rows: Iterable[Row], args: Args) -> Page:
        wanted = args.get("filter") or {}
        kept = [
            row
            for row in rows
            if self.visible(listing.type_name, row) and listing.keeps(self, row, wanted)
        ]
        key, descending = listing.orders[args.get("orderBy") or listing.default]
        kept.sort(key=lambda row: (key(row), row["id"]), reverse=descending)
        total = len(kept)

        def precedes(a: tuple[Any, int], b: tuple[Any, int]) -> bool:
            return a > b if descending else a < b

        backward = args.get("last") is not None
        cursor = args.get("before" if backward else "after")
        if cursor is not None:
            cursor_row = self.world.by_id[TABLE_OF[listing.type_name]][decode_cursor(cursor)[1]]
            mark = (key(cursor_row), cursor_row["id"])
            kept = [
                row
                for row in kept
                if (
                    precedes((key(row), row["id"]), mark)
                    if backward
                    else precedes(mark, (key(row), row["id"]))
                )
            ]
        size = args.get("last" if backward else "first")
        size = DEFAULT_PAGE if size is None else size
        chosen = (kept[-size:] if size else []) if backward else kept[:size]
        return Page(chosen, len(kept) > size, not backward, total, key)

    def root_connection(
        self, listing: Listing, rows: Iterable[Row], args: Args, shape: Callable[[Row], JSON]
    ) -> JSON:
        page = self.page(listing, rows, args)
        return {
            "totalCount": page.total,
            "edges": [{"cursor": page.cursor(row), "node": shape(row)} for row in page.rows],
            "pageInfo": {
                "hasNextPage": page.forward and page.more,
                "hasPreviousPage": not page.forward and page.more,
                "startCursor": page.cursor(page.rows[0]) if page.rows else None,
                "endCursor": page.cursor(page.rows[-1]) if page.rows else None,
            },
        }

    def nested(
        self, listing: Listing, rows: Iterable[Row], args: Args, shape: Callable[[Row], JSON]
    ) -> JSON:
        page = self.page(listing, rows, args)
        return {
            "totalCount": page.total,
            "nodes": [shape(row) for row in page.rows],
            "pageInfo": {"hasNextPage": page.forward and page.more},
        }

    # derived values
    def shown_status(self, slot: Row) -> str:
        if slot["status"] == "busy-tentative" and slot["hold_expires_at"] <= self.now:
            return "FREE"
        return code_name(slot["status"])

    def live_hold(self, slot: Row) -> bool:
        return bool(slot["status"] == "busy-tentative" and slot["hold_expires_at"] > self.now)

    def candidates(self, referral: Row) -> list[Row]:
        """README's booking rules about a slot: service, not started, free or lapsed or held
        for this referral, skill, earliest date (London), within travel of home."""
        patient = self.world.by_id["patients"][referral["patient_id"]]
        home = (patient["latitude"], patient["longitude"])
        found = []
        for slot in self.world.slots_of_service[referral["to_service_id"]]:
            site = self.world.by_id["sites"][slot["site_id"]]
            takeable = slot["status"] == "free" or (
                slot["status"] == "busy-tentative"
                and (
                    slot["hold_expires_at"] <= self.now
                    or slot["held_for_referral_id"] == referral["id"]
                )
            )
            skill = referral["required_skill"]
            earliest = referral["earliest_date"]
            limit = referral["max_travel_km"]
            if (
                takeable
                and slot["starts_at"] > self.now
                and (slot["site_id"], slot["service_id"]) in self.world.offered
                and (skill is None or skill in self.world.skills[slot["staff_id"]])
                and (earliest is None or slot["starts_at"] >= london_midnight(earliest))
                and (
                    limit is None
                    or haversine_km(home, (site["latitude"], site["longitude"])) <= limit
                )
            ):
                found.append(slot)
        return found

    # node shapes (each matches a SELECTION below)
    def service(self, row: Row) -> JSON:
        return {
            "id": gid("Service", row["id"]),
            "code": row["code"],
            "name": row["name"],
            "kind": row["kind"],
            "slotMinutes": row["slot_minutes"],
        }

    def slot(self, row: Row) -> JSON:
        site = self.world.by_id["sites"][row["site_id"]]
        staff = self.world.by_id["staff"][row["staff_id"]]
        return {
            "id": gid("Slot", row["id"]),
            "startsAt": instant(row["starts_at"]),
            "endsAt": instant(row["ends_at"]),
            "status": self.shown_status(row),
            "holdExpiresAt": instant(row["hold_expires_at"]) if self.live_hold(row) else None,
            "service": {"code": self.world.by_id["services"][row["service_id"]]["code"]},
            "site": {"id": gid("Site", site["id"]), "region": site["region_code"]},
            "staff": {"id": gid("Staff", staff["id"]), "familyName": staff["family_name"]},
            "distanceKm": km_shown(MANCHESTER, (site["latitude"], site["longitude"])),
        }

    def site(self, row: Row) -> JSON:
        offered = [
            service
            for service in self.world.tables["services"]
            if (row["id"], service["id"]) in self.world.offered
        ]
        slots = [slot for slot in self.world.tables["slots"] if slot["site_id"] == row["id"]]
        return {
            "id": gid("Site", row["id"]),
            "code": row["code"],
            "name": row["name"],
            "region": row["region_code"],
            "regionName": self.world.region_names[row["region_code"]],
            "town": row["town"],
            "postcode": row["postcode"],
            "latitude": row["latitude"],
            "longitude": row["longitude"],
            "distanceKm": km_shown(CHARING_CROSS, (row["latitude"], row["longitude"])),
            "services": self.nested(
                SERVICES, offered, {"first": 30}, lambda s: {"code": s["code"]}
            ),
            "slots": self.nested(
                SLOTS,
                slots,
                {"first": 2, "filter": {"status": ["BUSY", "BUSY_TENTATIVE"]}},
                lambda s: {"id": gid("Slot", s["id"]), "status": self.shown_status(s)},
            ),
        }

    def staff(self, row: Row) -> JSON:
        site = self.world.by_id["sites"][row["base_site_id"]]
        slots = [slot for slot in self.world.tables["slots"] if slot["staff_id"] == row["id"]]
        shifts = [
            shift for shift in self.world.tables["roster_shifts"] if shift["staff_id"] == row["id"]
        ]
        return {
            "id": gid("Staff", row["id"]),
            "givenName": row["given_name"],
            "familyName": row["family_name"],
            "role": row["role"],
            "skills": sorted(self.world.skills[row["id"]]),
            "baseSite": {"id": gid("Site", site["id"]), "name": site["name"]},
            "slots": self.nested(
                SLOTS,
                slots,
                {"first": 2, "filter": {"status": ["FREE"]}},
                lambda s: {"id": gid("Slot", s["id"]), "startsAt": instant(s["starts_at"])},
            ),
            "shifts": self.nested(
                SHIFTS,
                shifts,
                {"first": 2},
                lambda s: {
                    "id": gid("RosterShift", s["id"]),
                    "startsAt": instant(s["starts_at"]),
                    "endsAt": instant(s["ends_at"]),
                    "site": {"id": gid("Site", s["site_id"])},
                    "service": {"code": self.world.by_id["services"][s["service_id"]]["code"]},
                },
            ),
        }

    def patient(self, row: Row) -> JSON:
        number = row["nhs_number"]
        own = [r for r in self.world.tables["referrals"] if r["patient_id"] == row["id"]]
        return {
            "id": gid("Patient", row["id"]),
            "nhsNumber": number,
            "nhsNumberFormatted": f"{number[:3]} {number[3:6]} {number[6:]}",
            "givenName": row["given_name"],
            "familyName": row["family_name"],
            "dateOfBirth": day(row["date_of_birth"]),
            "postcode": row["postcode"],
            "region": row["region_code"],
            "latitude": row["latitude"],
            "longitude": row["longitude"],
            "phone": row["phone"],
            "email": row["email"],
            "version": row["version"],
            "referrals": self.nested(
                REFERRALS,
                own,
                {"first": 3, "orderBy": "NEWEST"},
                lambda r: {"id": gid("Referral", r["id"]), "status": r["status"]},
            ),
        }

    def referral(self, row: Row) -> JSON:
        today = clinic_today(self.now)
        services = self.world.by_id["services"]
        held = [
            slot
            for slot in self.world.tables["slots"]
            if slot["held_for_referral_id"] == row["id"] and self.live_hold(slot)
        ]
        offer = max(held, key=lambda slot: (slot["hold_expires_at"], slot["id"]), default=None)
        appointments = [
            a for a in self.world.tables["appointments"] if a["referral_id"] == row["id"]
        ]
        return {
            "id": gid("Referral", row["id"]),
            "ubrn": row["ubrn"],
            "priority": row["priority"],
            "status": row["status"],
            "fhirStatus": FHIR_SERVICE_REQUEST[row["status"]],
            "referrerName": row["referrer_name"],
            "referrerKind": row["referrer_kind"],
            "receivedAt": instant(row["received_at"]),
            "clockStart": instant(row["clock_start"]),
            "breachDate": day(row["breach_date"]),
            "waitingDays": (today - row["clock_start"].astimezone(LONDON).date()).days,
            "daysToBreach": (row["breach_date"] - today).days,
            "earliestDate": day(row["earliest_date"]),
            "maxTravelKm": row["max_travel_km"],
            "requiredSkill": row["required_skill"],
            "rejectionReason": row["rejection_reason"],
            "toService": {"code": services[row["to_service_id"]]["code"]},
            "fromService": (
                None
                if row["from_service_id"] is None
                else {"code": services[row["from_service_id"]]["code"]}
            ),
            "patient": self.one(
                "Patient",
                row["patient_id"],
                lambda p: {
                    "id": gid("Patient", p["id"]),
                    "familyName": p["family_name"],
                    "region": p["region_code"],
                },
            ),
            "redirectedFrom": self.one(
                "Referral", row["redirected_from_id"], lambda r: {"id": gid("Referral", r["id"])}
            ),
            "offer": (
                None
                if offer is None
                else {
                    "id": gid("Slot", offer["id"]),
                    "holdExpiresAt": instant(offer["hold_expires_at"]),
                }
            ),
            "appointments": self.nested(
                APPOINTMENTS,
                appointments,
                {"first": 2},
                lambda a: {"id": gid("Appointment", a["id"]), "status": code_name(a["status"])},
            ),
            "candidateSlots": self.nested(
                SLOTS,
                self.candidates(row),
                {"first": 3},
                lambda s: {"id": gid("Slot", s["id"]), "startsAt": instant(s["starts_at"])},
            ),
        }

    def appointment(self, row: Row) -> JSON:
        slot = self.world.by_id["slots"][row["slot_id"]]
        return {
            "id": gid("Appointment", row["id"]),
            "status": code_name(row["status"]),
            "cancellationReason": row["cancellation_reason"],
            "nonAttendanceReason": row["non_attendance_reason"],
            "isOverride": row["is_override"],
            "bookedAt": instant(row["booked_at"]),
            "referral": self.one(
                "Referral",
                row["referral_id"],
                lambda r: {"id": gid("Referral", r["id"]), "status": r["status"]},
            ),
            "slot": {
                "id": gid("Slot", slot["id"]),
                "startsAt": instant(slot["starts_at"]),
                "status": self.shown_status(slot),
            },
            "rebookedFrom": self.one(
                "Appointment",
                row["rebooked_from_id"],
                lambda a: {"id": gid("Appointment", a["id"])},
            ),
        }

    def audit_event(self, row: Row) -> JSON:
        kind = AUDITED_KINDS.get(row["record_type"])
        return {
            "id": gid("AuditEvent", row["id"]),
            "occurredAt": instant(row["occurred_at"]),
            "actor": row["actor"],
            "actorRole": row["actor_role"],
            "operation": row["operation"],
            "recordType": row["record_type"],
            "recordId": (
                gid(kind, row["record_id"])
                if kind is not None and row["record_id"] is not None
                else None
            ),
            "detail": None if row["detail"] is None else orjson.loads(row["detail"]),
        }


# FHIR R4 ServiceRequest.status of each lifecycle state
FHIR_SERVICE_REQUEST = {
    "SUBMITTED": "active",
    "ACCEPTED": "active",
    "BOOKED": "active",
    "COMPLETED": "completed",
    "REJECTED": "revoked",
    "REDIRECTED": "revoked",
    "CANCELLED": "revoked",
}
# audit record types that are node types (their recordId is a global ID)
AUDITED_KINDS = {
    "patient": "Patient",
    "referral": "Referral",
    "appointment": "Appointment",
    "slot": "Slot",
    "staff": "Staff",
}


# --- the filters, as README and the schema describe them ----------------------------------


def key_of(global_id: Any, type_name: str) -> int | None:
    decoded = decode_global_id(str(global_id))
    return decoded[1] if decoded is not None and decoded[0] == type_name else None


def referral_keeps(o: Oracle, row: Row, f: dict[str, Any]) -> bool:
    patient = o.world.by_id["patients"][row["patient_id"]]
    waited = (clinic_today(o.now) - row["clock_start"].astimezone(LONDON).date()).days
    return (
        row["status"] in f.get("status", [row["status"]])
        and row["priority"] in f.get("priority", [row["priority"]])
        and (
            "serviceCode" not in f
            or o.world.service_ids.get(f["serviceCode"]) == row["to_service_id"]
        )
        and f.get("region", patient["region_code"]) == patient["region_code"]
        and ("patientId" not in f or key_of(f["patientId"], "Patient") == row["patient_id"])
        and ("waitingLongerThanDays" not in f or waited > f["waitingLongerThanDays"])
        and (
            "breachingBefore" not in f
            or row["breach_date"] < date.fromisoformat(f["breachingBefore"])
        )
    )


def slot_keeps(o: Oracle, row: Row, f: dict[str, Any]) -> bool:
    site = o.world.by_id["sites"][row["site_id"]]
    near = f.get("near")
    return (
        ("serviceCode" not in f or o.world.service_ids.get(f["serviceCode"]) == row["service_id"])
        and ("siteId" not in f or key_of(f["siteId"], "Site") == row["site_id"])
        and f.get("region", site["region_code"]) == site["region_code"]
        and ("startsAfter" not in f or row["starts_at"] >= datetime.fromisoformat(f["startsAfter"]))
        and (
            "startsBefore" not in f or row["starts_at"] < datetime.fromisoformat(f["startsBefore"])
        )
        and o.shown_status(row) in f.get("status", [o.shown_status(row)])
        and (
            near is None
            or haversine_km(
                (near["latitude"], near["longitude"]), (site["latitude"], site["longitude"])
            )
            <= near["radiusKm"]
        )
    )


def patient_keeps(_o: Oracle, row: Row, f: dict[str, Any]) -> bool:
    return bool(
        str(f.get("nhsNumber", row["nhs_number"])).replace(" ", "") == row["nhs_number"]
        and f.get("familyName", row["family_name"]) == row["family_name"]
        and f.get("region", row["region_code"]) == row["region_code"]
    )


def staff_keeps(o: Oracle, row: Row, f: dict[str, Any]) -> bool:
    return (
        row["role"] in f.get("role", [row["role"]])
        and ("skill" not in f or f["skill"] in o.world.skills[row["id"]])
        and ("siteId" not in f or key_of(f["siteId"], "Site") == row["base_site_id"])
    )


def site_keeps(o: Oracle, row: Row, f: dict[str, Any]) -> bool:
    return f.get("region", row["region_code"]) == row["region_code"] and (
        "serviceCode" not in f
        or (row["id"], o.world.service_ids.get(f["serviceCode"])) in o.world.offered
    )


def service_keeps(_o: Oracle, row: Row, f: dict[str, Any]) -> bool:
    return row["kind"] in f.get("kind", [row["kind"]])


def appointment_keeps(_o: Oracle, row: Row, f: dict[str, Any]) -> bool:
    return code_name(row["status"]) in f.get("status", [code_name(row["status"])])


def audit_keeps(_o: Oracle, row: Row, f: dict[str, Any]) -> bool:
    return all(
        f.get(name, row[column]) == row[column]
        for name, column in (
            ("recordType", "record_type"),
            ("operation", "operation"),
            ("actor", "actor"),
        )
    )


def none_kept(_o: Oracle, _row: Row, _f: dict[str, Any]) -> bool:
    return True


def by(column: str) -> Callable[[Row], Any]:
    return lambda row: row[column]


def by_name(row: Row) -> str:
    return f"{row['family_name']} {row['given_name']}"


REFERRALS = Listing(
    "Referral",
    {
        "BREACH_DATE": (by("breach_date"), False),
        "LONGEST_WAITING": (by("clock_start"), False),
        "NEWEST": (by("received_at"), True),
    },
    "BREACH_DATE",
    referral_keeps,
)
SLOTS = Listing("Slot", {"STARTS_AT": (by("starts_at"), False)}, "STARTS_AT", slot_keeps)
PATIENTS = Listing("Patient", {"NAME": (by_name, False)}, "NAME", patient_keeps)
STAFF = Listing("Staff", {"NAME": (by_name, False)}, "NAME", staff_keeps)
SITES = Listing("Site", {"NAME": (by("name"), False)}, "NAME", site_keeps)
SERVICES = Listing("Service", {"CODE": (by("code"), False)}, "CODE", service_keeps)
APPOINTMENTS = Listing(
    "Appointment", {"BOOKED_AT": (by("booked_at"), False)}, "BOOKED_AT", appointment_keeps
)
AUDIT_EVENTS = Listing("AuditEvent", {"NEWEST": (by("occurred_at"), True)}, "NEWEST", audit_keeps)
SHIFTS = Listing("RosterShift", {"STARTS_AT": (by("starts_at"), False)}, "STARTS_AT", none_kept)

# --- the queries ---------------------------------------------------------------------------

NESTED = "totalCount nodes {{ {} }} pageInfo {{ hasNextPage }}"
SELECTIONS = {
    "Service": "id code name kind slotMinutes",
    "Slot": "id startsAt endsAt status holdExpiresAt service { code } site { id region }"
    " staff { id familyName } distanceKm(latitude: 53.48, longitude: -2.24)",
    "Site": "id code name region regionName town postcode latitude longitude"
    " distanceKm(latitude: 51.5074, longitude: -0.1278)"
    f" services(first: 30) {{ {NESTED.format('code')} }}"
    " slots(first: 2, filter: {status: [BUSY, BUSY_TENTATIVE]})"
    f" {{ {NESTED.format('id status')} }}",
    "Staff": "id givenName familyName role skills baseSite { id name }"
    f" slots(first: 2, filter: {{status: [FREE]}}) {{ {NESTED.format('id startsAt')} }}"
    " shifts(first: 2)"
    f" {{ {NESTED.format('id startsAt endsAt site { id } service { code }')} }}",
    "Patient": "id nhsNumber nhsNumberFormatted givenName familyName dateOfBirth postcode"
    " region latitude longitude phone email version"
    f" referrals(first: 3, orderBy: NEWEST) {{ {NESTED.format('id status')} }}",
    "Referral": "id ubrn priority status fhirStatus referrerName referrerKind receivedAt"
    " clockStart breachDate waitingDays daysToBreach earliestDate maxTravelKm requiredSkill"
    " rejectionReason toService { code } fromService { code }"
    " patient { id familyName region } redirectedFrom { id } offer { id holdExpiresAt }"
    f" appointments(first: 2) {{ {NESTED.format('id status')} }}"
    f" candidateSlots(first: 3) {{ {NESTED.format('id startsAt')} }}",
    "Appointment": "id status cancellationReason nonAttendanceReason isOverride bookedAt"
    " referral { id status } slot { id startsAt status } rebookedFrom { id }",
    "AuditEvent": "id occurredAt actor actorRole operation recordType recordId detail",
}


@dataclass(frozen=True, slots=True)
class Root:
    """A top-level list: its field, its listing, its argument types and its node shape."""

    field: str
    listing: Listing
    filter_type: str
    order_type: str
    shape: Callable[[Oracle], Callable[[Row], JSON]]


ROOTS = {
    root.field: root
    for root in (
        Root("referrals", REFERRALS, "ReferralFilter", "ReferralOrder", lambda o: o.referral),
        Root("slots", SLOTS, "SlotFilter", "SlotOrder", lambda o: o.slot),
        Root("patients", PATIENTS, "PatientFilter", "NameOrder", lambda o: o.patient),
        Root("staff", STAFF, "StaffFilter", "NameOrder", lambda o: o.staff),
        Root("sites", SITES, "SiteFilter", "NameOrder", lambda o: o.site),
        Root("services", SERVICES, "ServiceFilter", "ServiceOrder", lambda o: o.service),
        Root(
            "appointments",
            APPOINTMENTS,
            "AppointmentFilter",
            "AppointmentOrder",
            lambda o: o.appointment,
        ),
        Root(
            "auditEvents", AUDIT_EVENTS, "AuditEventFilter", "AuditOrder", lambda o: o.audit_event
        ),
    )
}


def list_query(root: Root, args: Args) -> str:
    types = {
        "first": "Int",
        "after": "String",
        "last": "Int",
        "before": "String",
        "filter": root.filter_type,
        "orderBy": f"{root.order_type}!",
    }
    declared = ", ".join(f"${name}: {types[name]}" for name in args)
    passed = ", ".join(f"{name}: ${name}" for name in args)
    header = f"query Oracle({declared})" if args else "query Oracle"
    call = f"{root.field}({passed})" if args else root.field
    return (
        f"{header} {{ {call} {{ totalCount edges {{ cursor node"
        f" {{ {SELECTIONS[root.listing.type_name]} }} }}"
        " pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }"
    )


def list_answer(root: Root, args: Args) -> Callable[[Oracle], JSON]:
    return lambda o: {
        root.field: o.root_connection(
            root.listing, o.world.rows(root.listing.type_name), args, root.shape(o)
        )
    }


# A corpus of list requests (root field, arguments): every list, the filters with logic in
# them, every ordering, short pages, empty pages and backward pages.
CORPUS: list[tuple[str, Args]] = [
    ("referrals", {}),
    ("referrals", {"first": 7, "filter": {"status": ["ACCEPTED"]}}),
    (
        "referrals",
        {
            "first": 5,
            "filter": {"priority": ["URGENT", "TWO_WEEK_WAIT"]},
            "orderBy": "LONGEST_WAITING",
        },
    ),
    ("referrals", {"first": 5, "filter": {"region": "LONDON"}, "orderBy": "NEWEST"}),
    ("referrals", {"first": 8, "filter": {"serviceCode": "ORACLE_CLINIC"}, "orderBy": "NEWEST"}),
    (
        "referrals",
        {"first": 6, "filter": {"serviceCode": "CARDIOLOGY", "status": ["ACCEPTED", "BOOKED"]}},
    ),
    ("referrals", {"first": 5, "filter": {"breachingBefore": SOON}, "orderBy": "LONGEST_WAITING"}),
    ("referrals", {"last": 4, "orderBy": "NEWEST"}),
    ("referrals", {"filter": {"patientId": gid("Patient", OWN_PATIENT)}}),
    ("referrals", {"filter": {"patientId": gid("Site", OWN_PATIENT)}}),
    ("referrals", {"first": 0}),
    ("slots", {"first": 12, "filter": {"serviceCode": "ORACLE_CLINIC"}}),
    ("slots", {"first": 5, "filter": {"status": ["FREE"], "region": "NORTH_EAST_YORKSHIRE"}}),
    ("slots", {"first": 5, "filter": {"status": ["BUSY_TENTATIVE"]}}),
    ("slots", {"first": 5, "filter": {"status": ["BUSY", "BUSY_UNAVAILABLE", "ENTERED_IN_ERROR"]}}),
    (
        "slots",
        {"first": 5, "filter": {"near": {"latitude": 53.48, "longitude": -2.24, "radiusKm": 40.0}}},
    ),
    (
        "slots",
        {
            "first": 4,
            "filter": {
                "near": {"latitude": 51.545, "longitude": -0.055, "radiusKm": 0.5},
                "status": ["FREE"],
            },
        },
    ),
    ("slots", {"last": 3, "filter": {"siteId": gid("Site", 9001)}}),
    ("patients", {}),
    ("patients", {"first": 5, "filter": {"region": "LONDON"}}),
    ("patients", {"filter": {"familyName": "Oracle"}}),
    ("patients", {"filter": {"nhsNumber": f"999 090 001{nhs_number('999090001')[-1]}"}}),
    ("patients", {"last": 3}),
    ("staff", {"first": 5, "filter": {"role": ["CONSULTANT", "GP"]}}),
    ("staff", {"filter": {"skill": "SEDATION"}}),
    ("staff", {"filter": {"siteId": gid("Site", 9002)}}),
    ("sites", {"first": 5, "filter": {"region": "LONDON"}}),
    ("sites", {"first": 5, "filter": {"serviceCode": "ORACLE_CLINIC"}}),
    ("services", {"filter": {"kind": ["SPECIALTY"]}}),
    ("services", {"last": 2}),
    ("appointments", {}),
    ("appointments", {"filter": {"status": ["CANCELLED", "FULFILLED"]}}),
    ("appointments", {"last": 2}),
    ("auditEvents", {"first": 5}),
]


def exact_slot_window(world: World) -> Args:
    """startsAfter and startsBefore set at slot starts: inclusive below, exclusive above."""
    starts = sorted({row["starts_at"] for row in world.tables["slots"]})
    low, high = starts[len(starts) // 3], starts[len(starts) // 3 + 4]
    return {
        "first": 30,
        "filter": {"startsAfter": low.isoformat(), "startsBefore": high.isoformat()},
    }


# --- asking --------------------------------------------------------------------------------


async def post(client: httpx.AsyncClient, who: Who, query: str, variables: Args) -> JSON:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=who.headers()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, (query, variables, body)
    return body["data"]


async def check(
    client: httpx.AsyncClient,
    world: World,
    who: Who,
    query: str,
    variables: Args,
    answer: Callable[[Oracle], JSON],
) -> JSON:
    """Ask, and compare with the oracle's answer at the instant before or the one after."""
    before = datetime.now(UTC)
    data = await post(client, who, query, variables)
    after = datetime.now(UTC)
    served = normalised(data)
    expected = answer(Oracle(world, who, before))
    if served != expected and served == answer(Oracle(world, who, after)):
        return data
    assert served == expected, (query, variables)
    return data


def patients_read(data: JSON) -> set[int]:
    """Every patient record in a response (each carries its id)."""
    found: set[int] = set()
    if isinstance(data, dict):
        key = data.get("id")
        decoded = decode_global_id(key) if isinstance(key, str) else None
        if decoded is not None and decoded[0] == "Patient":
            found.add(decoded[1])
        for value in data.values():
            found |= patients_read(value)
    elif isinstance(data, list):
        for item in data:
            found |= patients_read(item)
    return found


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world_url(databases: DatabaseFactory) -> str:
    """Tiny demo data anchored today, plus the edge rows."""
    return databases.create(seeded=True, anchor=TODAY, scale=SCALES["tiny"], sql=EDGE_ROWS)


@pytest.fixture
async def client(world_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(world_url, sweep_seconds=0) as client:  # no sweeper: rows stay put
        yield client


@pytest.fixture
async def world(world_url: str) -> World:
    loaded = await load_world(world_url)
    connection = await asyncpg.connect(world_url)
    try:
        collation = await connection.fetchval(
            "SELECT datcollate FROM pg_database WHERE datname = current_database()"
        )
    finally:
        await connection.close()
    if collation not in ("C", "C.UTF-8", "C.utf8", "POSIX"):
        pytest.skip(f"the oracle orders text by code point; this database collates {collation}")
    return loaded


# --- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("caller", list(CALLERS))
async def test_lists_agree_with_the_oracle(
    caller: str, client: httpx.AsyncClient, world: World, world_url: str
) -> None:
    who = CALLERS[caller](world)
    started = datetime.now(UTC)
    read: set[int] = set()
    requests = [*CORPUS, ("slots", exact_slot_window(world))]
    for field, args in requests:
        root = ROOTS[field]
        if field == "auditEvents":  # reading patients writes audit events: read them afresh
            connection = await asyncpg.connect(world_url)
            try:
                world.tables["audit_events"] = await read_table(connection, "audit_events")
            finally:
                await connection.close()
            world.by_id["audit_events"] = {row["id"]: row for row in world.tables["audit_events"]}
        data = await check(
            client, world, who, list_query(root, args), args, list_answer(root, args)
        )
        read |= patients_read(data)
    # every patient record read was audited, and nothing else was, under this caller's name
    connection = await asyncpg.connect(world_url)
    try:
        audited = await connection.fetch(
            "SELECT DISTINCT record_id, actor_role FROM audit_events"
            " WHERE operation = 'READ' AND record_type = 'patient' AND actor = $1"
            " AND occurred_at >= $2",
            who.subject,
            started,
        )
    finally:
        await connection.close()
    assert {row["record_id"] for row in audited} == read
    assert {row["actor_role"] for row in audited} <= {str(who.role)}
    assert read, "the corpus reads some patient record for every caller"


@pytest.mark.parametrize("caller", list(CALLERS))
async def test_pages_walk_forward_and_back(
    caller: str, client: httpx.AsyncClient, world: World
) -> None:
    """Cursors the API hands out continue where they should: two pages forward, then back."""
    who = CALLERS[caller](world)
    walks: list[tuple[str, Args]] = [
        ("referrals", {"orderBy": "NEWEST"}),
        ("referrals", {"filter": {"serviceCode": "ORACLE_CLINIC"}}),
        ("slots", {"filter": {"status": ["FREE"]}}),
        ("patients", {}),
        ("staff", {}),
        ("sites", {}),
        ("services", {}),
        ("appointments", {}),
    ]
    pages = 0
    for field, base in walks:
        root = ROOTS[field]
        cursor: str | None = None
        for _ in range(2):
            args = {**base, "first": 3} if cursor is None else {**base, "first": 3, "after": cursor}
            data = await check(
                client, world, who, list_query(root, args), args, list_answer(root, args)
            )
            pages += bool(data[field]["edges"])
            cursor = data[field]["pageInfo"]["endCursor"]
            if cursor is None:
                break
        if cursor is not None:
            args = {**base, "last": 4, "before": cursor}
            data = await check(
                client, world, who, list_query(root, args), args, list_answer(root, args)
            )
            assert data[field]["edges"]
    assert pages >= 8  # public lists always have rows, whoever asks


NODES_QUERY = (
    "query Oracle($ids: [ID!]!, $one: ID!) {"
    f" me {{ id familyName referrals(first: 10) {{ {NESTED.format('id status')} }} }}"
    " nodes(ids: $ids) { __typename id }"
    f" node(id: $one) {{ ... on Referral {{ {SELECTIONS['Referral']} }} }} }}"
)


@pytest.mark.parametrize("caller", list(CALLERS))
async def test_lookups_by_id_hide_what_the_caller_may_not_see(
    caller: str, client: httpx.AsyncClient, world: World
) -> None:
    who = CALLERS[caller](world)
    targets = [
        ("Patient", OWN_PATIENT),
        ("Patient", REGISTERED_ONLY),
        ("Patient", 1),
        ("Referral", A),
        ("Referral", B),
        ("Referral", 1),
        ("Appointment", 90001),
        ("Appointment", 1),
        ("Slot", LAPSED),
        ("Site", 9001),
        ("Staff", 9001),
        ("Service", 9001),
        ("RosterShift", 1),
        ("AuditEvent", 1),
        ("Patient", 99999999),
    ]
    ids = [gid(kind, key) for kind, key in targets] + ["bm9wZTox", "not base64!"]

    def answer(o: Oracle) -> JSON:
        def listed(kind: str, key: int) -> JSON:
            return o.one(kind, key, lambda row: {"__typename": kind, "id": gid(kind, row["id"])})

        me = o.world.row("Patient", who.patient_id) if who.role is Role.PATIENT else None
        return {
            "me": None
            if me is None
            else {
                "id": gid("Patient", me["id"]),
                "familyName": me["family_name"],
                "referrals": o.nested(
                    REFERRALS,
                    [r for r in o.world.tables["referrals"] if r["patient_id"] == me["id"]],
                    {"first": 10},
                    lambda r: {"id": gid("Referral", r["id"]), "status": r["status"]},
                ),
            },
            "nodes": [listed(kind, key) for kind, key in targets] + [None, None],
            "node": o.one("Referral", A, o.referral),
        }

    data = await check(
        client, world, who, NODES_QUERY, {"ids": ids, "one": gid("Referral", A)}, answer
    )
    assert any(item is None for item in data["nodes"])  # the junk ids, at least
    assert (data["me"] is None) == (who.role is not Role.PATIENT)


CANDIDATES_QUERY = """query Oracle($after: String) {
    referrals(first: 100, after: $after, orderBy: NEWEST) {
        pageInfo { hasNextPage endCursor }
        nodes { id maxTravelKm earliestDate requiredSkill toService { code }
                patient { latitude longitude }
                candidateSlots(first: 100) { totalCount pageInfo { hasNextPage endCursor }
                    nodes { id startsAt status service { code } staff { skills }
                            site { latitude longitude } } } } } }"""
NEXT_CANDIDATES_QUERY = """query Oracle($id: ID!, $after: String) {
    node(id: $id) { ... on Referral { candidateSlots(first: 100, after: $after) { nodes { id } } } }
}"""


def candidate_ids(world: World, who: Who, referral: Row, moment: datetime) -> list[int]:
    """The oracle's candidates of a referral at an instant, soonest first."""
    found = Oracle(world, who, moment).candidates(referral)
    return [slot["id"] for slot in sorted(found, key=lambda slot: (slot["starts_at"], slot["id"]))]


def check_served_candidates(referral: JSON, world: World, asked_at: datetime) -> None:
    """Each candidate as served meets every rule, checked on the served values themselves."""
    home = (referral["patient"]["latitude"], referral["patient"]["longitude"])
    key = key_of(referral["id"], "Referral")
    for slot in referral["candidateSlots"]["nodes"]:
        site = (slot["site"]["latitude"], slot["site"]["longitude"])
        if referral["maxTravelKm"] is not None:
            assert haversine_km(home, site) <= referral["maxTravelKm"], (referral["id"], slot)
        assert slot["service"]["code"] == referral["toService"]["code"]
        if referral["requiredSkill"] is not None:
            assert referral["requiredSkill"] in slot["staff"]["skills"]
        starts = datetime.fromisoformat(slot["startsAt"])
        assert starts > asked_at
        if referral["earliestDate"] is not None:
            earliest = date.fromisoformat(referral["earliestDate"])
            assert starts.astimezone(LONDON).date() >= earliest
        slot_key = key_of(slot["id"], "Slot")
        assert slot_key is not None
        holder = world.by_id["slots"][slot_key]["held_for_referral_id"]
        assert slot["status"] == "FREE" or (slot["status"] == "BUSY_TENTATIVE" and holder == key)


async def test_every_candidate_slot_keeps_the_booking_rules(
    client: httpx.AsyncClient, world: World
) -> None:
    """candidateSlots of every referral: each within travel (haversine here), the service, the
    skill, the London earliest date, not started, on offer; and the list is the oracle's."""
    who = Who(Role.SCHEDULER, "candidate-checker")
    cursor: str | None = None
    checked = offered = 0
    longer: list[tuple[str, str, list[int]]] = []  # referrals with a second page to read
    while True:
        before = datetime.now(UTC)
        data = await post(client, who, CANDIDATES_QUERY, {"after": cursor})
        after = datetime.now(UTC)
        for referral in data["referrals"]["nodes"]:
            row = world.row("Referral", key_of(referral["id"], "Referral"))
            assert row is not None
            served = referral["candidateSlots"]
            shown = (
                [key_of(slot["id"], "Slot") for slot in served["nodes"]],
                served["totalCount"],
                served["pageInfo"]["hasNextPage"],
            )
            expected = candidate_ids(world, who, row, before)
            if shown[0] != expected[:100]:
                expected = candidate_ids(world, who, row, after)
            assert shown == (expected[:100], len(expected), len(expected) > 100), row["id"]
            check_served_candidates(referral, world, before)
            if shown[2] and len(longer) < 5:
                longer.append((referral["id"], served["pageInfo"]["endCursor"], expected))
            checked += 1
            offered += len(served["nodes"])
        if not data["referrals"]["pageInfo"]["hasNextPage"]:
            break
        cursor = data["referrals"]["pageInfo"]["endCursor"]
    for referral_id, end, expected in longer:
        data = await post(client, who, NEXT_CANDIDATES_QUERY, {"id": referral_id, "after": end})
        served_ids = [
            key_of(slot["id"], "Slot") for slot in data["node"]["candidateSlots"]["nodes"]
        ]
        assert served_ids == expected[100:200], referral_id
    assert checked == len(world.tables["referrals"])
    assert offered > 1000


async def test_candidate_slots_edge_cases(client: httpx.AsyncClient, world: World) -> None:
    """Our own service's referrals, slot by slot, as README's rules decide them."""
    who = Who(Role.ADMIN, "edge-checker")
    expected = {
        A: [LIVE, FREE, BEFORE_MIDNIGHT, AFTER_MIDNIGHT],  # its own live hold; SEDATION
        B: [FREE, BEFORE_MIDNIGHT, AFTER_MIDNIGHT],  # not A's live hold, nothing in Whitby
        C: [FREE, LAPSED, FAR, BEFORE_MIDNIGHT, AFTER_MIDNIGHT],  # no limit: Whitby too
        D: [],  # 1 km from a demo patient's home
        E: [FREE, BEFORE_MIDNIGHT, AFTER_MIDNIGHT],  # completed: still the slot rules
        F: [AFTER_MIDNIGHT],  # earliest date is a London date: 00:30 BST is on it
    }
    query = (
        "query Oracle($id: ID!) { node(id: $id) { ... on Referral {"
        " candidateSlots(first: 50) { nodes { id } } } } }"
    )
    for referral, slots in expected.items():
        data = await post(client, who, query, {"id": gid("Referral", referral)})
        served = [key_of(s["id"], "Slot") for s in data["node"]["candidateSlots"]["nodes"]]
        oracle = Oracle(world, who, datetime.now(UTC))
        row = world.row("Referral", referral)
        assert row is not None
        mine = [
            s["id"] for s in sorted(oracle.candidates(row), key=lambda s: (s["starts_at"], s["id"]))
        ]
        assert mine == slots, referral  # the oracle reads the rules as written above
        assert served == slots, referral


async def test_a_lapsed_hold_is_a_candidate_for_everyone(
    client: httpx.AsyncClient, world: World, world_url: str
) -> None:
    """A referral that reaches the Whitby slot whose hold (for C) lapsed is offered it."""
    connection = await asyncpg.connect(world_url)
    try:
        await connection.execute(
            "INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind,"
            " to_service_id, priority, status, received_at, clock_start, breach_date)"
            " VALUES (90099, '900000000099', $1, 'Dr Z', 'GP', 9001, 'ROUTINE', 'ACCEPTED',"
            " now(), now(), current_date + 126)",
            OTHER_PATIENT,
        )
        data = await post(
            client,
            Who(Role.SCHEDULER, "lapse-checker"),
            "query Oracle($id: ID!) { node(id: $id) { ... on Referral {"
            " candidateSlots(first: 50) { nodes { id status } } } } }",
            {"id": gid("Referral", 90099)},
        )
    finally:
        await connection.execute("DELETE FROM referrals WHERE id = 90099")
        await connection.close()
    nodes = data["node"]["candidateSlots"]["nodes"]
    assert {"id": gid("Slot", LAPSED), "status": "FREE"} in nodes


async def test_waiting_longer_than_counts_days_as_waiting_days_does(
    client: httpx.AsyncClient, world: World
) -> None:
    who = Who(Role.SCHEDULER, "waiting-checker")
    for days in (60,):  # referral D started a minute after a London midnight 60 days ago
        args: Args = {"first": 100, "filter": {"waitingLongerThanDays": days}, "orderBy": "NEWEST"}
        root = ROOTS["referrals"]
        await check(client, world, who, list_query(root, args), args, list_answer(root, args))
