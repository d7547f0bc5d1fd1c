"""The dashboard over real HTTP (sign-in, refusals with their codes) and in a real headless
Chromium through Playwright: it loads without console errors, its charts hold the figures
the API and the simulator give, and a scenario runs from the page."""

from __future__ import annotations

import shutil
from collections import defaultdict
from datetime import date
from typing import Any

import httpx
import orjson
import pytest

from care_graph.auth import Role
from care_graph.db.pool import connect
from care_graph.simulation.scenarios import Scenario
from care_graph.simulation.snapshot import snapshot
from care_graph.simulation.study import study
from care_graph.simulation.world import Assumptions, Policy
from care_graph.testing import DatabaseFactory, bearer, live_server

REGION = "NORTH_WEST"
OUTLOOK = """query($r: String!) { capacityOutlook(region: $r) {
  service { code } weekStarting expectedArrivals slotsOffered breachesAhead } }"""
SCENARIO_NAME = "half as many referrals again"
SCENARIO = {"name": SCENARIO_NAME, "arrival_factors": {"*": 1.5}}


@pytest.fixture(scope="module")
def today_url(databases: DatabaseFactory) -> str:
    """The tiny demo anchored today, so that its rosters lie ahead."""
    return databases.create(seeded=True, anchor=date.today())


def token(role: Role) -> str:
    return bearer(role, "dashboard-user")["Authorization"].removeprefix("Bearer ")


def code_of(html: str) -> str | None:
    marker = 'class="error" data-code="'
    return html.split(marker, 1)[1].split('"', 1)[0] if marker in html else None


async def test_signing_in_keeps_the_token_in_a_strict_cookie_and_refuses_with_codes(
    today_url: str,
) -> None:
    async with live_server(today_url) as address:
        base = f"http://{address}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            nobody = await client.get("/dashboard")
            assert nobody.status_code == 401
            assert code_of(nobody.text) == "UNAUTHENTICATED"
            assert (await client.get("/dashboard?token=not-a-token")).status_code == 401
            patient = await client.get("/dashboard", headers=bearer(Role.PATIENT, "p", 1))
            assert patient.status_code == 403
            assert code_of(patient.text) == "FORBIDDEN"
            signed = await client.get(f"/dashboard?token={token(Role.SCHEDULER)}&region={REGION}")
            assert signed.status_code == 303
            assert signed.headers["location"] == f"/dashboard?region={REGION}"
            cookie = signed.headers["set-cookie"].lower()
            for part in ("httponly", "samesite=strict", "path=/dashboard", "max-age="):
                assert part in cookie
            shown = await client.get(signed.headers["location"])  # the cookie signs it in
            assert shown.status_code == 200
            assert code_of(shown.text) is None
            assert "default-src 'none'" in shown.headers["content-security-policy"]
            own = shown.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
            assert "http://" not in own  # nothing fetched from anywhere: it works offline
            assert "https://" not in own
            unknown = await client.get("/dashboard?region=ATLANTIS")
            assert unknown.status_code == 400
            assert code_of(unknown.text) == "INVALID_ARGUMENT"
            for form, status, code in (
                ({"region": REGION, "scenario": "{"}, 400, "INVALID_ARGUMENT"),
                ({"region": REGION, "scenario": '{"name": "baseline"}'}, 400, "INVALID_ARGUMENT"),
                ({"region": REGION, "scenario": '{"colour": 1}'}, 400, "INVALID_ARGUMENT"),
                ({"region": "ATLANTIS", "scenario": "{}"}, 400, "INVALID_ARGUMENT"),
                ({"region": REGION, "scenario": "x" * 70_000}, 413, "PAYLOAD_TOO_LARGE"),
            ):
                refused = await client.post("/dashboard/simulate", data=form)
                assert refused.status_code == status, form
                assert code_of(refused.text) == code
                assert "Traceback" not in refused.text
        async with httpx.AsyncClient(base_url=base, timeout=60) as stranger:
            posted = await stranger.post("/dashboard/simulate", data={"region": REGION})
            assert posted.status_code == 401  # no cookie, no bearer: nothing runs


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "no Chromium: scripts/dev installs Debian's (apt-get install chromium)"
    return found


async def test_the_page_in_a_browser_shows_the_apis_figures_and_runs_a_scenario(
    today_url: str,
) -> None:
    from playwright.async_api import async_playwright

    async with live_server(today_url) as address:
        base = f"http://{address}"
        async with httpx.AsyncClient(base_url=base, timeout=60) as client:
            answer = await client.post(
                "/graphql",
                json={"query": OUTLOOK, "variables": {"r": REGION}},
                headers=bearer(Role.SCHEDULER, "dashboard-user"),
            )
        outlook = answer.json()["data"]["capacityOutlook"]
        breaches: dict[str, int] = defaultdict(int)
        arrivals: dict[str, float] = defaultdict(float)
        offered: dict[str, int] = defaultdict(int)
        for row in outlook:
            breaches[row["weekStarting"]] += row["breachesAhead"]
            arrivals[row["service"]["code"]] += row["expectedArrivals"]
            offered[row["service"]["code"]] += row["slotsOffered"]

        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=chromium(),
                args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            )
            try:
                page = await browser.new_page()
                problems: list[str] = []
                page.on(
                    "console",
                    lambda m: problems.append(m.text) if m.type in ("error", "warning") else None,
                )
                page.on("pageerror", lambda error: problems.append(str(error)))
                await page.goto(f"{base}/dashboard?token={token(Role.SCHEDULER)}&region={REGION}")
                assert page.url == f"{base}/dashboard?region={REGION}"  # the token is gone
                loaded = await page.evaluate(
                    "performance.getEntriesByType('navigation')[0].duration"
                )
                print(f"dashboard ({REGION}, tiny) loaded in {loaded:.0f} ms")

                weeks = await page.eval_on_selector_all(
                    "svg[data-chart=breaches] rect",
                    "bars => bars.map(b => [b.dataset.week, Number(b.dataset.value)])",
                )
                assert dict(weeks) == dict(breaches)
                total = await page.text_content("[data-total=breaches]")
                assert total == f"{sum(breaches.values()):,}"
                bars = await page.eval_on_selector_all(
                    "svg[data-chart=demand-capacity] rect",
                    "bars => bars.map(b => [b.dataset.service, b.dataset.measure,"
                    " Number(b.dataset.value)])",
                )
                assert {s for s, m, _ in bars if m == "slots_offered"} == set(offered)
                for service, measure, value in bars:
                    figure = (
                        arrivals[service] if measure == "expected_arrivals" else offered[service]
                    )
                    assert value == pytest.approx(figure, abs=0.05), (service, measure)
                sites = await page.eval_on_selector_all(
                    "svg[data-chart=sites] circle", "cs => cs.map(c => Number(c.dataset.value))"
                )
                assert sites
                assert all(value >= 0 for value in sites)

                await page.fill("#scenario", orjson.dumps(SCENARIO).decode())
                await page.click("button[type=submit]")
                await page.wait_for_selector("svg[data-chart=course]")
                lines = await page.eval_on_selector_all(
                    "svg[data-chart=course] polyline",
                    "ls => ls.map(l => [l.dataset.scenario, Number(l.dataset.breaches),"
                    " Number(l.dataset.value)])",
                )
                assert problems == []
            finally:
                await browser.close()

    connection = await connect(today_url)
    try:
        world = await snapshot(connection, REGION)
    finally:
        await connection.close()
    result = study(
        world,
        Assumptions(),
        policies=(Policy.CARE_GRAPH,),
        scenarios=(Scenario(), Scenario.from_json(SCENARIO)),
        replications=1,
    )
    expected: list[Any] = []
    for name in ("baseline", SCENARIO_NAME):
        outcome = result.outcomes[(name, Policy.CARE_GRAPH)][0]
        expected.append([name, outcome.total_breaches, outcome.list_size[-1]])
    assert lines == expected  # the page's lines are the simulator's runs
