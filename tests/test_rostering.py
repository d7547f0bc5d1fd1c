"""The rostering rules: each rule on cases worked by hand, and publishing a roster that breaks
one refused whole against a real database (nothing written)."""

from __future__ import annotations

from datetime import date, time, timedelta
from typing import Any

import asyncpg
import pytest

from care_graph.auth import Role
from care_graph.domain.booking import Actor
from care_graph.domain.capacity import RosterEntry, publish_roster, publish_rosters
from care_graph.domain.rostering import RosterRules, RuleBroken, Shift, StaffRoster, StaffTerms
from care_graph.errors import CareGraphError, ErrorCode

MONDAY = date(2027, 3, 1)
TERMS = StaffTerms(
    staff=1,
    base_site=10,
    skills=frozenset({"CARDIOLOGY"}),
    other_sites=frozenset({11}),
    contracted_minutes_week=2250,
    leave=((date(2027, 3, 10).toordinal(), date(2027, 3, 12).toordinal()),),
)


def on(day: date, starts: str, ends: str) -> Shift:
    return Shift.on(day, time.fromisoformat(starts), time.fromisoformat(ends))


def check(roster: StaffRoster, shift: Shift, site: int = 10, **kwargs: Any) -> RuleBroken | None:
    return roster.breaks(shift, site=site, service=kwargs.pop("service", "CARDIOLOGY"), **kwargs)


def test_a_shift_within_every_rule_is_allowed_and_each_rule_is_named_when_broken() -> None:
    roster = StaffRoster.of(TERMS, [on(MONDAY, "09:00", "13:00")])
    assert check(roster, on(MONDAY, "13:30", "17:30")) is None  # a split day, 8.5 hours
    assert check(roster, on(MONDAY + timedelta(days=1), "09:00", "13:00"), site=11) is None
    assert check(roster, on(MONDAY, "13:30", "17:30"), service="ENT") is RuleBroken.SKILL
    assert check(roster, on(MONDAY, "13:30", "17:30"), site_offers=False) is (
        RuleBroken.SITE_SERVICE
    )
    assert check(roster, on(MONDAY, "13:30", "17:30"), site=12) is RuleBroken.SITE
    assert check(roster, on(date(2027, 3, 10), "09:00", "13:00")) is RuleBroken.LEAVE
    assert check(roster, on(date(2027, 3, 12), "09:00", "13:00")) is RuleBroken.LEAVE
    assert check(roster, on(date(2027, 3, 13), "09:00", "13:00")) is None  # leave is over
    assert check(roster, on(MONDAY, "12:59", "14:00")) is RuleBroken.OVERLAP
    assert check(roster, on(MONDAY, "13:00", "14:00")) is None  # touching is not overlapping


def test_a_night_shift_overlaps_the_next_morning_and_rest_runs_across_days() -> None:
    night = on(MONDAY, "20:00", "02:00")
    assert night.ends == 26 * 60  # past midnight
    roster = StaffRoster.of(TERMS, [night])
    assert check(roster, on(MONDAY + timedelta(days=1), "01:00", "03:00")) is RuleBroken.OVERLAP
    # 02:00 to 12:59 the next day is under 11 hours' rest; from 13:00 it is 11
    assert check(roster, on(MONDAY + timedelta(days=1), "12:59", "15:00")) is RuleBroken.REST
    assert check(roster, on(MONDAY + timedelta(days=1), "13:00", "15:00")) is None
    # and the rest before a day already worked: Tuesday starts at 08:00
    tuesday = StaffRoster.of(TERMS, [on(MONDAY + timedelta(days=1), "08:00", "12:00")])
    assert check(tuesday, on(MONDAY, "18:00", "21:01")) is RuleBroken.REST
    assert check(tuesday, on(MONDAY, "18:00", "21:00")) is None


def test_a_working_day_spans_at_most_thirteen_hours() -> None:
    roster = StaffRoster.of(TERMS, [on(MONDAY, "07:00", "12:00")])
    assert check(roster, on(MONDAY, "13:00", "20:00")) is None  # 13 hours from first to last
    assert check(roster, on(MONDAY, "13:00", "20:01")) is RuleBroken.REST


def test_a_week_holds_the_contracted_hours_and_never_more_than_forty_eight() -> None:
    part_time = StaffRoster.of(
        StaffTerms(1, 10, frozenset({"CARDIOLOGY"}), contracted_minutes_week=12 * 60),
        [on(MONDAY, "09:00", "13:00"), on(MONDAY + timedelta(days=1), "09:00", "13:00")],
    )
    assert part_time.week_minutes(Shift.on(MONDAY, time(9), time(10)).week) == 8 * 60
    assert check(part_time, on(MONDAY + timedelta(days=2), "09:00", "13:00")) is None  # 12 h
    assert check(part_time, on(MONDAY + timedelta(days=2), "09:00", "13:01")) is (
        RuleBroken.WEEKLY_HOURS
    )
    # the next week (from Monday 8 March) starts empty
    assert check(part_time, on(MONDAY + timedelta(days=7), "09:00", "13:00")) is None
    # a contract above 48 hours is held to 48
    long_days = [on(MONDAY + timedelta(days=k), "08:00", "20:00") for k in range(4)]
    roster = StaffRoster.of(
        StaffTerms(1, 10, frozenset({"CARDIOLOGY"}), contracted_minutes_week=2880),
        long_days,
        RosterRules(max_week_minutes=48 * 60),
    )
    assert check(roster, on(MONDAY + timedelta(days=4), "08:00", "08:01")) is (
        RuleBroken.WEEKLY_HOURS
    )


WORLD = """
INSERT INTO regions VALUES ('LONDON', 'London');
INSERT INTO skills VALUES ('CARDIOLOGY', 'Cardiology'), ('ENT', 'Ear, nose and throat');
INSERT INTO services (id, code, name, kind, slot_minutes)
    VALUES (1, 'CARDIOLOGY', 'Cardiology', 'SPECIALTY', 20), (2, 'ENT', 'ENT', 'SPECIALTY', 20);
INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude) VALUES
    (1, 'S1', 'Camden General', 'LONDON', 'Camden', 'NW1 1AA', 51.53, -0.14),
    (2, 'S2', 'Hackney Clinic', 'LONDON', 'Hackney', 'E8 1AA', 51.54, -0.06),
    (3, 'S3', 'Ealing Clinic', 'LONDON', 'Ealing', 'W5 1AA', 51.51, -0.30);
INSERT INTO site_services VALUES (1, 1), (1, 2), (2, 1), (3, 1);
INSERT INTO staff (id, given_name, family_name, role, base_site_id, contracted_minutes_week)
    VALUES (1, 'Ada', 'Jones', 'CONSULTANT', 1, 720);
INSERT INTO staff_skills VALUES (1, 'CARDIOLOGY');
INSERT INTO staff_sites VALUES (1, 2);
"""
CLERK = Actor("clerk", Role.SCHEDULER)


def next_monday() -> date:
    today = date.today()
    return today + timedelta(days=14 - today.weekday())


async def publish(connection: asyncpg.Connection[Any], **changes: Any) -> list[int]:
    monday = next_monday()
    values: dict[str, Any] = {
        "staff_id": 1,
        "site_id": 1,
        "service": "CARDIOLOGY",
        "weekdays": [1],
        "starts": time(9),
        "ends": time(13),
        "first_day": monday,
        "last_day": monday + timedelta(days=6),
        **changes,
    }
    return await publish_roster(connection, CLERK, **values)


async def slot_count(connection: asyncpg.Connection[Any]) -> int:
    return int(await connection.fetchval("SELECT count(*) FROM slots"))


async def refused(connection: asyncpg.Connection[Any], code: ErrorCode, **changes: Any) -> str:
    before = await slot_count(connection)
    with pytest.raises(CareGraphError) as raised:
        await publish(connection, **changes)
    assert raised.value.code == code
    assert await slot_count(connection) == before  # nothing of the roster was written
    return raised.value.message


async def test_publishing_keeps_every_rule_and_names_the_one_broken(
    connection: asyncpg.Connection[Any],
) -> None:
    await connection.execute(WORLD)
    monday = next_monday()
    assert len(await publish(connection)) == 12  # Monday 09:00 to 13:00 in 20 minutes
    assert len(await publish(connection, site_id=2, weekdays=[2])) == 12  # may work there too
    assert "skill" in await refused(connection, ErrorCode.ROSTER_RULE, service="ENT")
    assert "may not work" in await refused(connection, ErrorCode.ROSTER_RULE, site_id=3)
    await refused(connection, ErrorCode.ROSTER_OVERLAP, starts=time(12), ends=time(14))
    # 720 minutes a week: 8 hours are rostered, 4 more fit, the fifth hour does not
    assert len(await publish(connection, weekdays=[3])) == 12
    message = await refused(connection, ErrorCode.ROSTER_RULE, weekdays=[4], ends=time(10))
    assert message == (
        f"{(monday + timedelta(days=3)).isoformat()}: the shift takes the week past the staff"
        " member's contracted hours"
    )
    await connection.execute(
        "INSERT INTO staff_leave (staff_id, first_day, last_day) VALUES (1, $1, $2)",
        monday + timedelta(days=7),
        monday + timedelta(days=11),
    )
    assert "on leave" in await refused(
        connection,
        ErrorCode.ROSTER_RULE,
        first_day=monday + timedelta(days=7),
        last_day=monday + timedelta(days=13),
    )
    with pytest.raises(CareGraphError) as unknown:
        await publish(connection, staff_id=99)
    assert unknown.value.code == ErrorCode.NOT_FOUND


async def test_a_draft_roster_is_published_whole_or_not_at_all(
    connection: asyncpg.Connection[Any],
) -> None:
    await connection.execute(WORLD)
    monday = next_monday()

    def entry(weekday: int, starts: str, ends: str) -> RosterEntry:
        return RosterEntry.from_json(
            {
                "staff": 1,
                "site": 1,
                "service": "CARDIOLOGY",
                "weekdays": [weekday],
                "starts": starts,
                "ends": ends,
                "firstDay": monday.isoformat(),
                "lastDay": (monday + timedelta(days=6)).isoformat(),
            }
        )

    # the second entry keeps the rules alone, but not after the first: 9 + 4 hours > 12
    with pytest.raises(CareGraphError) as raised:
        await publish_rosters(
            connection, CLERK, [entry(1, "08:00", "17:00"), entry(2, "09:00", "13:00")]
        )
    assert raised.value.code == ErrorCode.ROSTER_RULE
    assert raised.value.message.startswith("entry 2: ")
    assert await slot_count(connection) == 0
    published = await publish_rosters(
        connection, CLERK, [entry(1, "09:00", "13:00"), entry(2, "09:00", "13:00")]
    )
    assert len(published) == 24 == await slot_count(connection)
    whole = {
        "staff": 1,
        "site": 1,
        "service": "CARDIOLOGY",
        "weekdays": [1],
        "starts": "09:00",
        "ends": "13:00",
        "firstDay": monday.isoformat(),
        "lastDay": monday.isoformat(),
    }
    for bad, message in (
        ({"staff": 1}, "a roster entry is an object"),
        ([], "a roster entry is an object"),
        ({**whole, "staff": "1"}, "staff and site are numbers"),
        ({**whole, "weekdays": [True]}, "weekdays are numbers"),
        ({**whole, "starts": "9am"}, "starts and ends are times"),
    ):
        with pytest.raises(ValueError, match=message):
            RosterEntry.from_json(bad)
