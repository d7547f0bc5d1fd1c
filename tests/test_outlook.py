"""The capacity outlook (GraphQL's capacityOutlook and `care-graph outlook`) against an
independent count.

The oracle reads the tables whole with a plain ``SELECT *`` and counts in Python, from the
definitions in docs/capacity.md: weeks and days on the Europe/London calendar by zoneinfo, what
waits by the lifecycle's statuses, what kept a slot by appointment statuses. Nothing here comes
from db/capacity_store.py, db/bookable.py or api/. Answers that depend on the clock are counted
for the instant before the request and the instant after: the server's ``now()`` falls between.

The world is the tiny demo anchored today, plus a region of our own with one row for each case
a definition draws a line through: every priority, each band edge of weeks waited, breach dates
past, today and ahead, slots free, held, booked, attended, not attended, cancelled, made in
error, out of use, at another region's site and beyond the horizon, and patients of another
region.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import orjson
import pytest
from graphql import parse

from care_graph.api.limits import check_cost
from care_graph.api.schema import build_schema
from care_graph.api.service import GraphQLService
from care_graph.auth import Role, Viewer
from care_graph.config import Limits
from care_graph.db.pool import OneConnection, connect
from care_graph.nhs import check_digit
from care_graph.seed.scales import SCALES
from care_graph.testing import DatabaseFactory, bearer, live_server
from tests.test_cli import care_graph

Row = dict[str, Any]
LONDON = ZoneInfo("Europe/London")
REGION = "OUTLOOK_LAND"
CLINIC, REMOTE = 9101, 9102  # our services: one offered in REGION, one referred to only
HOME_SITE, AWAY_SITE = 9101, 9102  # in REGION, and in LONDON
LOCAL, AWAY = 91001, 91002  # patients of REGION and of LONDON

FIGURES = [
    "serviceCode",
    "weekStarting",
    "arrived",
    "expectedArrivals",
    "slotsOffered",
    "slotsBooked",
    "slotsNotAttended",
    "slotsUnused",
    "slotsFree",
    "utilisation",
    "breachesAhead",
    "waiting",
    "waitingUrgent",
    "waitingTwoWeekWait",
    "waitingRoutine",
    "waitedUnder6Weeks",
    "waited6To12Weeks",
    "waited12To18Weeks",
    "waited18WeeksOrMore",
    "waitedWeeksP92",
    "breachesSoFar",
]
OUTLOOK = (
    "query Outlook($region: String!, $service: String, $weeks: Int!) {"
    " capacityOutlook(region: $region, service: $service, weeks: $weeks) {"
    f" {' '.join(FIGURES)} service {{ code }} }} }}"
)


def nhs_number(first_nine: str) -> str:
    digit = check_digit(first_nine)
    assert digit is not None
    return f"{first_nine}{digit}"


def days_ago(days: int, hour: int = 10) -> str:
    """SQL for a Europe/London wall-clock hour ``days`` before the clinics' today."""
    return (
        f"((((now() AT TIME ZONE 'Europe/London')::date - {days})::timestamp"
        f" + interval '{hour} hours') AT TIME ZONE 'Europe/London')"
    )


def london_date(days: int) -> str:
    """SQL for the clinics' today plus ``days``."""
    return f"((now() AT TIME ZONE 'Europe/London')::date + {days})"


def referral(
    key: int, patient: int, service: int, priority: str, status: str, clock: int, breach: int
) -> str:
    """A referral received and started ``clock`` days ago, breaching ``breach`` days from today."""
    return (
        f"({key}, '91{key:010d}', {patient}, 'Dr Outlook', 'GP', {service}, '{priority}',"
        f" '{status}', {days_ago(clock)}, {days_ago(clock)}, {london_date(breach)})"
    )


def slot(key: int, site: int, staff: int, starts: str, status: str = "free") -> str:
    held = "now() + interval '10 minutes', 910002" if status == "busy-tentative" else "NULL, NULL"
    return (
        f"({key}, {CLINIC}, {site}, {staff}, {starts}, {starts} + interval '20 minutes',"
        f" '{status}', {held})"
    )


def hours(offset: int) -> str:
    return f"(now() + interval '{offset} hours')"


EDGE_ROWS = f"""
INSERT INTO regions VALUES ('{REGION}', 'Outlook Land');
INSERT INTO skills VALUES ('OUTLOOK_CLINIC', 'Outlook clinic'), ('OUTLOOK_REMOTE', 'Remote');
INSERT INTO services (id, code, name, kind, slot_minutes) VALUES
    ({CLINIC}, 'OUTLOOK_CLINIC', 'Outlook clinic', 'SPECIALTY', 20),
    ({REMOTE}, 'OUTLOOK_REMOTE', 'Remote clinic', 'SPECIALTY', 20);
INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude) VALUES
    ({HOME_SITE}, 'OUT01', 'Outlook Clinic', '{REGION}', 'Outlook', 'OL1 1AA', 53.5, -2.1),
    ({AWAY_SITE}, 'OUT02', 'Outlook Clinic London', 'LONDON', 'Camden', 'NW1 1AA', 51.5, -0.1);
INSERT INTO site_services VALUES ({HOME_SITE}, {CLINIC}), ({AWAY_SITE}, {CLINIC});
INSERT INTO staff (id, given_name, family_name, role, base_site_id) VALUES
    (9101, 'Ola', 'Outlook', 'CONSULTANT', {HOME_SITE}),
    (9102, 'Ulf', 'Outlook', 'CONSULTANT', {AWAY_SITE});
INSERT INTO patients (id, nhs_number, given_name, family_name, date_of_birth, postcode,
                      region_code, latitude, longitude) VALUES
    ({LOCAL}, '{nhs_number("999091001")}', 'Lou', 'Outlook', '1970-01-01', 'OL1 2BB',
     '{REGION}', 53.5, -2.1),
    ({AWAY}, '{nhs_number("999091002")}', 'Abe', 'Outlook', '1980-01-01', 'NW1 2BB',
     'LONDON', 51.5, -0.1);
INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind, to_service_id,
                       priority, status, received_at, clock_start, breach_date) VALUES
    {referral(910001, LOCAL, CLINIC, "URGENT", "ACCEPTED", 3, 11)},
    {referral(910002, LOCAL, CLINIC, "TWO_WEEK_WAIT", "ACCEPTED", 41, -13)},
    {referral(910003, LOCAL, CLINIC, "ROUTINE", "ACCEPTED", 42, 0)},
    {referral(910004, LOCAL, CLINIC, "ROUTINE", "ACCEPTED", 130, -4)},
    {referral(910005, LOCAL, CLINIC, "ROUTINE", "ACCEPTED", 90, 36)},
    {referral(910006, LOCAL, CLINIC, "ROUTINE", "SUBMITTED", 0, 126)},
    {referral(910007, LOCAL, CLINIC, "ROUTINE", "BOOKED", 9, 117)},
    {referral(910008, AWAY, CLINIC, "URGENT", "ACCEPTED", 20, -6)},
    {referral(910009, LOCAL, REMOTE, "ROUTINE", "COMPLETED", 10, 116)},
    {referral(910010, LOCAL, CLINIC, "ROUTINE", "COMPLETED", 16, 110)},
    {referral(910011, LOCAL, CLINIC, "ROUTINE", "COMPLETED", 23, 103)};
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at, status,
                   hold_expires_at, held_for_referral_id) VALUES
    {slot(9100001, HOME_SITE, 9101, hours(-1))},
    {slot(9100002, HOME_SITE, 9101, hours(-2), "busy")},
    {slot(9100003, HOME_SITE, 9101, hours(-3), "busy")},
    {slot(9100004, HOME_SITE, 9101, hours(24))},
    {slot(9100005, HOME_SITE, 9101, hours(48), "busy-tentative")},
    {slot(9100006, HOME_SITE, 9101, hours(72), "busy")},
    {slot(9100007, HOME_SITE, 9101, hours(96), "entered-in-error")},
    {slot(9100008, HOME_SITE, 9101, hours(120), "busy-unavailable")},
    {slot(9100009, HOME_SITE, 9101, hours(192))},
    {slot(9100010, HOME_SITE, 9101, hours(49))},
    {slot(9100011, AWAY_SITE, 9102, hours(24))},
    {slot(9100012, HOME_SITE, 9101, hours(24 * 60))};
INSERT INTO appointments (referral_id, slot_id, status, cancellation_reason, booked_by) VALUES
    (910010, 9100002, 'fulfilled', NULL, 'outlook'),
    (910004, 9100003, 'noshow', NULL, 'outlook'),
    (910007, 9100006, 'booked', NULL, 'outlook'),
    (910011, 9100010, 'cancelled', 'PATIENT_ILL', 'outlook');
"""


@pytest.fixture(scope="module")
def outlook_url(databases: DatabaseFactory) -> str:
    """A database of the module's own: the demo anchored today, and REGION's edge rows."""
    scale = SCALES["tiny"].with_overrides(weeks=3)
    return databases.create(seeded=True, anchor=date.today(), scale=scale, sql=EDGE_ROWS)


@pytest.fixture
async def client(outlook_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """A real server of the app on that database, and a scheduler's client of it."""
    async with (
        live_server(outlook_url) as address,
        httpx.AsyncClient(base_url=f"http://{address}", headers=bearer(), timeout=60) as http,
    ):
        yield http


# --- the oracle -------------------------------------------------------------------------------


class World:
    """Every table the outlook reads, read whole."""

    def __init__(self, tables: dict[str, list[Row]]) -> None:
        self.tables = tables

    @classmethod
    async def read(cls, url: str) -> World:
        connection = await connect(url)
        try:
            tables = {
                name: [dict(row) for row in await connection.fetch(f"SELECT * FROM {name}")]
                for name in (
                    "services",
                    "sites",
                    "site_services",
                    "patients",
                    "referrals",
                    "slots",
                    "appointments",
                )
            }
        finally:
            await connection.close()
        return cls(tables)


WAITING_STATUSES = {"ACCEPTED"}  # docs/capacity.md: accepted and not yet booked
KEPT = {"pending", "booked", "arrived", "checked-in", "fulfilled", "noshow"}
NOT_OFFERED = {"entered-in-error", "busy-unavailable"}


def day_of(instant: datetime) -> date:
    return instant.astimezone(LONDON).date()


def half_up(value: Decimal, places: str) -> float:
    return float(value.quantize(Decimal(places), rounding=ROUND_HALF_UP))


def expected_outlook(
    world: World, region: str, service: str | None, weeks: int, now: datetime
) -> list[Row]:
    """The outlook counted from docs/capacity.md's definitions, as GraphQL names it."""
    t = world.tables
    today = day_of(now)
    monday = today - timedelta(days=today.weekday())
    sites = {site["id"] for site in t["sites"] if site["region_code"] == region}
    patients = {p["id"] for p in t["patients"] if p["region_code"] == region}
    referrals = [r for r in t["referrals"] if r["patient_id"] in patients]
    offered_here = {ss["service_id"] for ss in t["site_services"] if ss["site_id"] in sites}
    referred = {r["to_service_id"] for r in referrals}
    shown = sorted(
        (
            v
            for v in t["services"]
            if v["id"] in offered_here | referred and service in (None, v["code"])
        ),
        key=lambda v: v["code"],
    )
    kept_slots = {a["slot_id"] for a in t["appointments"] if a["status"] in KEPT}
    missed_slots = {a["slot_id"] for a in t["appointments"] if a["status"] == "noshow"}
    rows = []
    for v in shown:
        mine = [r for r in referrals if r["to_service_id"] == v["id"]]
        waiting = [r for r in mine if r["status"] in WAITING_STATUSES]
        earlier = [
            r for r in mine if monday - timedelta(days=28) <= day_of(r["received_at"]) < monday
        ]
        slots = [
            s
            for s in t["slots"]
            if s["service_id"] == v["id"]
            and s["site_id"] in sites
            and s["status"] not in NOT_OFFERED
        ]
        for n in range(weeks):
            start = monday + timedelta(days=7 * n)
            end = start + timedelta(days=6)
            week = [s for s in slots if start <= day_of(s["starts_at"]) <= end]
            booked = [s for s in week if s["id"] in kept_slots]
            rest = [s for s in week if s["id"] not in kept_slots]
            row: Row = {
                "serviceCode": v["code"],
                "weekStarting": start.isoformat(),
                "arrived": (
                    sum(start <= day_of(r["received_at"]) <= end for r in mine)
                    if start <= today
                    else None
                ),
                "expectedArrivals": half_up(Decimal(len(earlier)) / 4, "0.1"),
                "slotsOffered": len(week),
                "slotsBooked": len(booked),
                "slotsNotAttended": sum(s["id"] in missed_slots for s in week),
                "slotsUnused": sum(s["starts_at"] <= now for s in rest),
                "slotsFree": sum(s["starts_at"] > now for s in rest),
                "utilisation": (
                    half_up(Decimal(len(booked)) / len(week), "0.0001") if week else None
                ),
                "breachesAhead": sum(max(start, today) <= r["breach_date"] <= end for r in waiting),
            }
            row.update(waiting_now(waiting, today) if n == 0 else dict.fromkeys(SNAPSHOT))
            row["service"] = {"code": v["code"]}
            rows.append(row)
    return rows


SNAPSHOT = FIGURES[FIGURES.index("waiting") :]


def waiting_now(waiting: list[Row], today: date) -> Row:
    days = [(today - day_of(r["clock_start"])).days for r in waiting]
    weeks = sorted(d // 7 for d in days)
    return {
        "waiting": len(waiting),
        "waitingUrgent": sum(r["priority"] == "URGENT" for r in waiting),
        "waitingTwoWeekWait": sum(r["priority"] == "TWO_WEEK_WAIT" for r in waiting),
        "waitingRoutine": sum(r["priority"] == "ROUTINE" for r in waiting),
        "waitedUnder6Weeks": sum(d < 42 for d in days),
        "waited6To12Weeks": sum(42 <= d < 84 for d in days),
        "waited12To18Weeks": sum(84 <= d < 126 for d in days),
        "waited18WeeksOrMore": sum(d >= 126 for d in days),
        # percentile_disc: the first value whose position reaches the fraction
        "waitedWeeksP92": weeks[math.ceil(0.92 * len(weeks)) - 1] if weeks else None,
        "breachesSoFar": sum(r["breach_date"] < today for r in waiting),
    }


async def answered_between(
    url: str, ask: Callable[[], Any], region: str, service: str | None, weeks: int
) -> tuple[list[Row], list[list[Row]]]:
    """What ``ask`` answers, and the oracle's answers for just before and just after it."""
    world = await World.read(url)
    before = datetime.now(UTC)
    answer = await ask()
    after = datetime.now(UTC)
    expected = [expected_outlook(world, region, service, weeks, now) for now in (before, after)]
    return answer, expected


async def graphql(client: httpx.AsyncClient, variables: Row, query: str = OUTLOOK) -> Row:
    response = await client.post("/graphql", json={"query": query, "variables": variables})
    assert response.status_code == 200, response.text
    body: Row = response.json()
    return body


# --- the figures --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "service", "weeks"),
    [
        (REGION, None, 8),
        (REGION, None, 52),
        (REGION, "OUTLOOK_CLINIC", 1),
        ("NORTH_WEST", None, 8),
        ("LONDON", "CARDIOLOGY", 3),
        ("NOWHERE", None, 8),
    ],
)
async def test_the_outlook_matches_an_independent_count(
    client: httpx.AsyncClient, outlook_url: str, region: str, service: str | None, weeks: int
) -> None:
    variables = {"region": region, "service": service, "weeks": weeks}

    async def ask() -> Any:
        body = await graphql(client, variables)
        assert "errors" not in body, body
        return body["data"]["capacityOutlook"]

    answer, expected = await answered_between(outlook_url, ask, region, service, weeks)
    assert answer in expected
    if region != "NOWHERE":
        assert answer
        assert len(answer) % weeks == 0


async def test_each_edge_row_counts_where_its_definition_says(
    client: httpx.AsyncClient,
) -> None:
    body = await graphql(client, {"region": REGION, "weeks": 8})
    rows = body["data"]["capacityOutlook"]
    by_service: dict[str, list[Row]] = {}
    for row in rows:
        by_service.setdefault(row["serviceCode"], []).append(row)
    # our two services only: REMOTE is offered nowhere here but referred to from here
    assert sorted(by_service) == ["OUTLOOK_CLINIC", "OUTLOOK_REMOTE"]
    clinic, remote = by_service["OUTLOOK_CLINIC"], by_service["OUTLOOK_REMOTE"]
    now = clinic[0]
    assert (
        now["weekStarting"] == (date.today() - timedelta(days=date.today().weekday())).isoformat()
    )
    # the London patient's referral, the submitted, booked and completed ones do not wait
    assert (now["waiting"], now["waitingUrgent"], now["waitingTwoWeekWait"]) == (5, 1, 1)
    assert now["waitingRoutine"] == 3
    # 3 and 41 days, 42 days (6 whole weeks), 90 days, 130 days
    bands = ("waitedUnder6Weeks", "waited6To12Weeks", "waited12To18Weeks", "waited18WeeksOrMore")
    assert [now[band] for band in bands] == [2, 1, 1, 1]
    assert now["waitedWeeksP92"] == 18  # weeks waited 0, 5, 6, 12, 18: the 5th of 5
    assert now["breachesSoFar"] == 2  # 13 and 4 days ago; breaching today is still ahead
    assert sum(row["breachesAhead"] for row in clinic) == 3  # today, in 11 and 36 days
    assert all(row["waiting"] is None for row in clinic[1:])
    assert all(row["arrived"] is None for row in clinic[1:])
    # offered: free, booked and noshow (if this week), free, held, booked, cancelled-and-free,
    # next week's; never the one in error, out of use, in London or 60 days ahead
    offered = sum(row["slotsOffered"] for row in clinic)
    assert offered == sum(
        row["slotsBooked"] + row["slotsUnused"] + row["slotsFree"] for row in clinic
    )
    assert sum(row["slotsFree"] for row in clinic) == 4  # +24 h, +48 h held, +49 h, +192 h
    assert (remote[0]["waiting"], remote[0]["waitedWeeksP92"], remote[0]["slotsOffered"]) == (
        0,
        None,
        0,
    )
    assert remote[0]["utilisation"] is None
    year = await graphql(client, {"region": REGION, "service": "OUTLOOK_CLINIC", "weeks": 52})
    assert sum(row["slotsOffered"] for row in year["data"]["capacityOutlook"]) == offered + 1


async def test_compiled_and_resolver_paths_agree(outlook_url: str) -> None:
    service = GraphQLService(build_schema())
    viewer = Viewer("outlook-tester", Role.SCHEDULER)
    connection = await connect(outlook_url)
    try:
        for variables in (
            {"region": REGION, "weeks": 8},
            {"region": "NORTH_WEST", "service": None, "weeks": 4},
            {"region": "LONDON", "service": "DERMATOLOGY", "weeks": 2},
        ):
            compiled = orjson.loads(
                (
                    await service.execute(
                        OneConnection(connection), OUTLOOK, variables, None, viewer
                    )
                ).body
            )
            resolved = orjson.loads(
                (await service.execute_resolved(connection, OUTLOOK, variables, None, viewer)).body
            )
            assert "errors" not in compiled, compiled
            assert compiled == resolved
            assert compiled["data"]["capacityOutlook"]
    finally:
        await connection.close()
    assert not service._not_compilable.items  # the compiler answered every one


# --- who may read it, and how much --------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "allowed"),
    [
        (Role.SCHEDULER, True),
        (Role.CLINICIAN, True),
        (Role.ADMIN, True),
        (Role.PATIENT, False),
        (Role.REFERRER, False),
    ],
)
async def test_only_clinic_staff_read_the_outlook(
    client: httpx.AsyncClient, role: Role, allowed: bool
) -> None:
    client.headers.update(bearer(role, "outlook-reader", LOCAL if role is Role.PATIENT else None))
    body = await graphql(client, {"region": REGION, "weeks": 2})
    if allowed:
        assert "errors" not in body
        assert len(body["data"]["capacityOutlook"]) == 4
        return
    assert body["data"] is None
    assert [error["extensions"]["code"] for error in body["errors"]] == ["FORBIDDEN"]
    assert body["errors"][0]["message"] == "the capacity outlook is read by clinic staff only"


async def test_weeks_are_bounded(client: httpx.AsyncClient) -> None:
    for weeks in (1, 52):
        assert "errors" not in await graphql(client, {"region": REGION, "weeks": weeks})
    for weeks in (0, 53, -1):  # through a variable, on the plan the good ones cached
        body = await graphql(client, {"region": REGION, "weeks": weeks})
        assert body["data"] is None
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
        assert body["errors"][0]["message"] == "weeks must be from 1 to 52"
    literal = await graphql(
        client, {}, '{ capacityOutlook(region: "NORTH_WEST", weeks: 99) { arrived } }'
    )
    assert literal["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    default = await graphql(client, {}, f'{{ capacityOutlook(region: "{REGION}") {{ arrived }} }}')
    assert len(default["data"]["capacityOutlook"]) == 2 * 8  # two services, 8 weeks


def test_the_outlook_is_costed_by_the_rows_it_asks_for() -> None:
    schema = build_schema()._schema

    def cost(document: str) -> int:
        parsed = parse(document)
        operation = parsed.definitions[0]
        error = check_cost(schema, parsed, operation, {}, 0, Limits())  # type: ignore[arg-type]
        assert error is not None
        assert error.extensions is not None
        found: int = error.extensions["cost"]
        return found

    # 200 for what it aggregates, then a row per service (20 costed) and week, each row one
    # more for its service link
    assert cost('{ capacityOutlook(region: "X") { waiting } }') == 200 + 20 * 8
    assert cost('{ capacityOutlook(region: "X", weeks: 52) { service { code } } }') == (
        200 + 20 * 52 * 2
    )
    assert cost('{ capacityOutlook(region: "X", service: "ENT", weeks: 4) { waiting } }') == 204
    # past the bound counts as the bound: the request is refused as bad input instead
    assert cost('{ capacityOutlook(region: "X", weeks: 100000) { waiting } }') == 200 + 20 * 52


# --- the command --------------------------------------------------------------------------------


def outlook_command(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return care_graph("outlook", *args, database_url=url)


async def test_the_command_prints_what_graphql_answers(
    client: httpx.AsyncClient, outlook_url: str
) -> None:
    for args, variables in (
        (["--region", REGION, "--json"], {"region": REGION, "weeks": 8}),
        (
            ["--region", "NORTH_WEST", "--service", "CARDIOLOGY", "--weeks", "3", "--json"],
            {"region": "NORTH_WEST", "service": "CARDIOLOGY", "weeks": 3},
        ),
    ):
        printed = outlook_command(outlook_url, *args)
        assert printed.returncode == 0, printed.stderr
        body = await graphql(client, variables)
        served = [
            {name: value for name, value in row.items() if name != "service"}
            for row in body["data"]["capacityOutlook"]
        ]
        assert orjson.loads(printed.stdout) == served
        assert list(orjson.loads(printed.stdout)[0]) == FIGURES


def test_the_command_prints_two_tables_on_one_screen(outlook_url: str) -> None:
    printed = outlook_command(outlook_url, "--region", REGION, "--weeks", "4")
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0] == f"{REGION}: waiting list today, breaches ahead over 4 weeks"
    assert lines[1].split() == [
        "service",
        "waiting",
        "urgent",
        "2ww",
        "routine",
        "<6wk",
        "6-12",
        "12-18",
        "18wk+",
        "p92wk",
        "breached",
        "ahead",
    ]
    assert lines[2].split()[:11] == [
        "OUTLOOK_CLINIC",
        *["5", "1", "1", "3", "2", "1", "1", "1", "18", "2"],
    ]
    assert lines[3].split()[:2] == ["OUTLOOK_REMOTE", "0"]
    assert lines[4].split()[:2] == ["all", "5"]
    assert lines[6].split() == [
        "week",
        "of",
        "arrived",
        "offered",
        "booked",
        "dna",
        "unused",
        "free",
        "util",
        "ahead",
    ]
    assert len(lines) == 7 + 4
    assert max(len(line) for line in lines) <= 100


def test_the_command_refuses_what_it_cannot_show(outlook_url: str) -> None:
    too_far = outlook_command(outlook_url, "--region", REGION, "--weeks", "53")
    assert too_far.returncode == 2
    assert "53 is not in the range 1<=x<=52" in too_far.stderr
    unknown = outlook_command(outlook_url, "--region", "ATLANTIS")
    assert unknown.returncode == 1
    assert unknown.stderr == "care-graph: error: unknown region 'ATLANTIS' (INVALID_ARGUMENT)\n"


def test_the_command_has_help() -> None:
    shown = care_graph("outlook", "--help")
    assert shown.returncode == 0
    assert "--region" in shown.stdout
    assert "--json" in shown.stdout
    assert "docs/capacity.md" in shown.stdout
