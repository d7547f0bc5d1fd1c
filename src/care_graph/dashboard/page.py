"""The dashboard's HTML: one page, styles inline, charts inline SVG (dashboard/charts.py), a
form that runs a scenario. Works offline: it links to nothing outside itself."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from care_graph.dashboard import charts
from care_graph.dashboard.picture import Course, ServiceLoad, SiteDemand, WeekBreaches

STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 760px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
nav a { margin-right: .8em; } .error { color: #a00; border: 1px solid #a00; padding: .5em; }
textarea { width: 100%; font-family: monospace; } table { border-collapse: collapse; }
td, th { padding: .15em .6em; text-align: right; } td:first-child { text-align: left; }
"""
EXAMPLE_SCENARIO = '{"name": "ten percent more referrals", "arrival_factors": {"*": 1.1}}'


@dataclass(frozen=True, slots=True)
class Problem:
    """An error the page shows: its stable code and a message for a person."""

    code: str
    message: str


def page(
    *,
    region: str | None,
    regions: list[str],
    loads: list[ServiceLoad] | None = None,
    weeks: list[WeekBreaches] | None = None,
    sites: list[SiteDemand] | None = None,
    courses: list[Course] | None = None,
    scenario_text: str = EXAMPLE_SCENARIO,
    problem: Problem | None = None,
) -> str:
    """The whole page; sections without figures are left out."""
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        '<link rel="icon" href="data:,">',  # no favicon to fetch
        f"<title>care_graph: {escape(region or 'dashboard')}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Demand and capacity{': ' + escape(region) if region else ''}</h1>",
        "<nav>"
        + "".join(f'<a href="/dashboard?region={escape(r)}">{escape(r)}</a>' for r in regions)
        + "</nav>",
    ]
    if problem is not None:
        parts.append(
            f'<p class="error" data-code="{escape(problem.code)}">'
            f"{escape(problem.message)} ({escape(problem.code)})</p>"
        )
    if loads is not None:
        parts += ["<h2>Referrals expected and slots on offer</h2>",
                  charts.demand_and_capacity(loads)]  # fmt: skip
    if weeks is not None:
        total = sum(week.breaches_ahead for week in weeks)
        parts += [
            f'<h2>Breaches ahead: <span data-total="breaches">{total:,}</span></h2>',
            charts.breaches_by_week(weeks),
        ]
    if sites is not None:
        parts += ["<h2>Where demand goes unmet</h2>", charts.sites_map(sites)]
    if region is not None:
        parts.append(
            "<h2>What if</h2>"
            '<form method="post" action="/dashboard/simulate">'
            f'<input type="hidden" name="region" value="{escape(region)}">'
            '<label for="scenario">A scenario (JSON, as <code>care-graph simulate'
            " --scenario</code> reads it):</label>"
            f'<textarea id="scenario" name="scenario" rows="6">{escape(scenario_text)}</textarea>'
            '<button type="submit">Simulate 18 weeks</button></form>'
        )
    if courses:
        rows = "".join(
            f'<tr data-scenario="{escape(c.scenario)}"><td>{escape(c.scenario)}</td>'
            f"<td>{c.breaches:,}</td><td>{c.list_size[-1] if c.list_size else 0:,}</td></tr>"
            for c in courses
        )
        parts += [
            "<h2>The waiting list under each scenario</h2>",
            charts.list_course(courses),
            "<table><tr><th>scenario</th><th>breaches</th><th>waiting at the end</th></tr>"
            f"{rows}</table>",
        ]
    parts.append("</body></html>")
    return "".join(parts)
