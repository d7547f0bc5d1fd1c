"""The dashboard's charts as inline SVG, drawn on the server: no script, no build step, no
font or file fetched from anywhere. Each mark carries its figure in ``data-value`` (and a
``<title>`` a person sees on hover), so a test reads the numbers the page shows."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from care_graph.dashboard.picture import Course, ServiceLoad, SiteDemand, WeekBreaches, bounds

WIDTH = 720
DEMAND, CAPACITY, BREACH, LINE = "#c0392b", "#2471a3", "#b9770e", ("#7f8c8d", "#1e8449")


def _svg(chart: str, height: int, body: list[str], label: str) -> str:
    return (
        f'<svg data-chart="{chart}" role="img" aria-label="{escape(label)}"'
        f' viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}"'
        f' xmlns="http://www.w3.org/2000/svg" font-family="sans-serif" font-size="11">'
        + "".join(body)
        + "</svg>"
    )


def demand_and_capacity(loads: Sequence[ServiceLoad]) -> str:
    """Two bars per service: referrals expected and slots on offer over the weeks."""
    row, left = 22, 170
    height = 30 + row * max(len(loads), 1)
    top = max([1.0] + [max(load.expected_arrivals, load.slots_offered) for load in loads])
    scale = (WIDTH - left - 70) / top
    body = [
        f'<text x="{left}" y="12" fill="{DEMAND}">■ referrals expected</text>',
        f'<text x="{left + 140}" y="12" fill="{CAPACITY}">■ slots on offer</text>',
    ]
    for k, load in enumerate(loads):
        y = 24 + k * row
        name = escape(load.service)
        body.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end">{name}</text>')
        for offset, measure, value, colour in (
            (0, "expected_arrivals", load.expected_arrivals, DEMAND),
            (9, "slots_offered", float(load.slots_offered), CAPACITY),
        ):
            shown = f"{value:,.1f}" if measure == "expected_arrivals" else f"{value:,.0f}"
            body.append(
                f'<rect data-service="{name}" data-measure="{measure}" data-value="{value}"'
                f' x="{left}" y="{y + offset}" width="{value * scale:.1f}" height="8"'
                f' fill="{colour}"><title>{name}: {shown} {measure.replace("_", " ")}</title>'
                "</rect>"
            )
    return _svg("demand-capacity", height, body, "referrals expected and slots on offer")


def breaches_by_week(weeks: Sequence[WeekBreaches]) -> str:
    """A bar per week: the breaches ahead in it."""
    height, bottom, left = 200, 170, 40
    step = (WIDTH - left - 10) / max(len(weeks), 1)
    top = max([1] + [week.breaches_ahead for week in weeks])
    body = [f'<text x="{left}" y="12">breaches ahead, by week</text>']
    for k, week in enumerate(weeks):
        bar = (bottom - 24) * week.breaches_ahead / top
        x = left + k * step
        body.append(
            f'<rect data-week="{week.week_starting.isoformat()}"'
            f' data-value="{week.breaches_ahead}" x="{x + 2:.1f}" y="{bottom - bar:.1f}"'
            f' width="{step - 4:.1f}" height="{bar:.1f}" fill="{BREACH}">'
            f"<title>week of {week.week_starting:%d %b}: {week.breaches_ahead:,}</title></rect>"
            f'<text x="{x + step / 2:.1f}" y="{bottom + 14}" text-anchor="middle">'
            f"{week.week_starting:%d %b}</text>"
        )
    return _svg("breaches", height, body, "breaches ahead by week")


def sites_map(sites: Sequence[SiteDemand]) -> str:
    """The region's sites where they are, each circle's area its unmet demand."""
    height, pad = 420, 30
    lat_low, lat_high = bounds([site.latitude for site in sites])
    lon_low, lon_high = bounds([site.longitude for site in sites])
    top = max([1] + [site.unmet for site in sites])
    body = [f'<text x="{pad}" y="14">sites, sized by unmet demand</text>']
    for site in sites:
        x = pad + (site.longitude - lon_low) / (lon_high - lon_low) * (WIDTH - 2 * pad)
        y = height - pad - (site.latitude - lat_low) / (lat_high - lat_low) * (height - 2 * pad)
        radius = 3 + 22 * (site.unmet / top) ** 0.5
        body.append(
            f'<circle data-site="{site.site}" data-value="{site.unmet}" cx="{x:.1f}"'
            f' cy="{y:.1f}" r="{radius:.1f}" fill="{DEMAND}" fill-opacity="0.45"'
            f' stroke="{DEMAND}"><title>site {site.site}: {site.unmet:,} unmet</title></circle>'
        )
    return _svg("sites", height, body, "sites sized by unmet demand")


def list_course(courses: Sequence[Course]) -> str:
    """The waiting list day by day, a line per scenario."""
    height, bottom, left = 240, 210, 50
    days = max([1] + [len(c.list_size) for c in courses])
    low, high = bounds([float(v) for c in courses for v in c.list_size])
    body = [f'<text x="{left}" y="12">waiting list, day by day</text>']
    for k, run in enumerate(courses):
        points = " ".join(
            f"{left + day / max(days - 1, 1) * (WIDTH - left - 10):.1f},"
            f"{bottom - (size - low) / (high - low) * (bottom - 24):.1f}"
            for day, size in enumerate(run.list_size)
        )
        final = run.list_size[-1] if run.list_size else 0
        colour = LINE[k % len(LINE)]
        body.append(
            f'<polyline data-scenario="{escape(run.scenario)}" data-value="{final}"'
            f' data-breaches="{run.breaches}" points="{points}" fill="none"'
            f' stroke="{colour}" stroke-width="2"><title>{escape(run.scenario)}: {final:,}'
            f" at the end, {run.breaches:,} breaches</title></polyline>"
            f'<text x="{left + 10 + 200 * k}" y="{height - 6}" fill="{colour}">'
            f"— {escape(run.scenario)}</text>"
        )
    body.append(f'<text x="{left - 4}" y="{bottom}" text-anchor="end">{low:,.0f}</text>')
    body.append(f'<text x="{left - 4}" y="30" text-anchor="end">{high:,.0f}</text>')
    return _svg("course", height, body, "the waiting list day by day under each scenario")
