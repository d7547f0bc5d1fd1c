"""The capacity outlook as ``care-graph outlook`` prints it: two compact tables for a person
(the waiting list by service, then the weeks summed over the services shown), or every row as
JSON for a program, named as GraphQL's ``capacityOutlook`` names its fields."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from strawberry.utils.str_converters import to_camel_case

Row = dict[str, Any]

# (heading, width, column) of the waiting-list table, one line per service
_WAITING = (
    ("waiting", 8, "waiting"),
    ("urgent", 7, "waiting_urgent"),
    ("2ww", 6, "waiting_two_week_wait"),
    ("routine", 8, "waiting_routine"),
    ("<6wk", 6, "waited_under_6_weeks"),
    ("6-12", 6, "waited_6_to_12_weeks"),
    ("12-18", 6, "waited_12_to_18_weeks"),
    ("18wk+", 6, "waited_18_weeks_or_more"),
    ("p92wk", 6, "waited_weeks_p92"),
    ("breached", 9, "breaches_so_far"),
)
# (heading, width, column) of the weeks table: sums over the services shown
_WEEKS = (
    ("arrived", 8, "arrived"),
    ("offered", 8, "slots_offered"),
    ("booked", 8, "slots_booked"),
    ("dna", 6, "slots_not_attended"),
    ("unused", 8, "slots_unused"),
    ("free", 8, "slots_free"),
)


def outlook_json(rows: list[Row]) -> str:
    """Every row as a JSON array of objects keyed by the GraphQL field names (weekStarting,
    slotsOffered, …), dates as ISO text: what capacityOutlook answers, without the service
    link."""
    named = [{to_camel_case(name): value for name, value in row.items()} for row in rows]
    return orjson.dumps(named, option=orjson.OPT_INDENT_2).decode()


def outlook_tables(region: str, rows: list[Row]) -> Iterator[str]:
    """The lines of the two tables: the waiting list now and breaches ahead by service, and
    the weeks (summed over the services shown) with utilisation and breaches ahead."""
    if not rows:
        yield f"{region}: no service is offered there or referred to from there"
        return
    services = list(dict.fromkeys(row["service_code"] for row in rows))
    current = [row for row in rows if row["waiting"] is not None]
    width = max(len("service"), *(len(code) for code in services))
    yield f"{region}: waiting list today, breaches ahead over {len(rows) // len(services)} weeks"
    yield _line(["service".ljust(width), *_headings(_WAITING), "   ahead"])
    for code in services:
        now = next(row for row in current if row["service_code"] == code)
        ahead = sum(row["breaches_ahead"] for row in rows if row["service_code"] == code)
        yield _line([code.ljust(width), *_cells(_WAITING, now), f"{ahead:>8,}"])
    total = {name: sum(row[name] or 0 for row in current) for _, _, name in _WAITING}
    total["waited_weeks_p92"] = None  # a percentile does not add up
    ahead = sum(row["breaches_ahead"] for row in rows)
    yield _line(["all".ljust(width), *_cells(_WAITING, total), f"{ahead:>8,}"])
    yield ""
    yield _line(["week of    ", *_headings(_WEEKS), "  util", "   ahead"])
    for week in dict.fromkeys(row["week_starting"] for row in rows):
        of_week = [row for row in rows if row["week_starting"] == week]
        sums = {name: _sum(of_week, name) for _, _, name in _WEEKS}
        sums["breaches_ahead"] = _sum(of_week, "breaches_ahead")
        offered = sum(row["slots_offered"] for row in of_week)
        booked = sum(row["slots_booked"] for row in of_week)
        utilisation = f"{booked / offered:>6.0%}" if offered else f"{'-':>6}"
        yield _line(
            [
                f"{week.isoformat()} ",
                *_cells(_WEEKS, sums),
                utilisation,
                f"{sums['breaches_ahead']:>8,}",
            ]
        )


def _sum(rows: list[Row], name: str) -> int | None:
    """A figure summed over rows; None when no row has it (arrivals of a week not begun)."""
    values = [row[name] for row in rows if row[name] is not None]
    return sum(values) if values else None


def _headings(columns: tuple[tuple[str, int, str], ...]) -> list[str]:
    return [heading.rjust(width) for heading, width, _ in columns]


def _cells(columns: tuple[tuple[str, int, str], ...], values: Row) -> list[str]:
    return [
        f"{'-' if values[name] is None else format(values[name], ','):>{width}}"
        for _, width, name in columns
    ]


def _line(cells: list[str]) -> str:
    return "".join(cells).rstrip()
