"""The dashboard at /dashboard: a page for clinic staff, signed in as the API is.

A browser has no way to send a bearer header from a link, so ``/dashboard?token=T`` (the link
``care-graph token --dashboard URL`` prints) checks the token, keeps it in a cookie (HttpOnly,
SameSite=Strict, for /dashboard only, expiring with the token) and redirects to the page
without it, so the token leaves the address bar and the history. The cookie is never sent on
a request from another site, which is what keeps the scenario form from being posted there.

Figures come from where the API's come from: the capacity outlook's query
(db/capacity_store.py, what ``capacityOutlook`` compiles) and the simulator, run as heavy work
(care_graph/heavy.py: one at a time per worker, in a thread).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from care_graph.api.errors import ApiErrorCode
from care_graph.api.policy import CLINIC_STAFF
from care_graph.auth import Unauthenticated, Viewer, verify, viewer_of_header
from care_graph.dashboard import picture
from care_graph.dashboard.page import EXAMPLE_SCENARIO, Problem, page
from care_graph.db import capacity_store
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.heavy import run_heavy
from care_graph.simulation.scenarios import Scenario
from care_graph.simulation.snapshot import snapshot
from care_graph.simulation.study import study
from care_graph.simulation.world import Assumptions, Policy, World

COOKIE = "care_graph_dashboard"
WEEKS = capacity_store.DEFAULT_WEEKS
MAX_FORM_BYTES = 64 * 1024
STATUS = {
    str(ApiErrorCode.UNAUTHENTICATED): 401,
    str(ErrorCode.FORBIDDEN): 403,
    str(ErrorCode.INVALID_ARGUMENT): 400,
    str(ApiErrorCode.PAYLOAD_TOO_LARGE): 413,
    str(ErrorCode.SERVICE_UNAVAILABLE): 503,
}


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.problem = Problem(code, message)


def _viewer(request: Request) -> Viewer:
    """The signed-in caller (cookie, or a bearer header for programs), clinic staff only."""
    tokens = request.app.state.tokens
    viewer = None
    header = request.headers.get("authorization")
    if header:
        viewer = viewer_of_header(header, tokens)
    elif COOKIE in request.cookies:
        try:
            viewer = verify(request.cookies[COOKIE], tokens)
        except Unauthenticated:
            viewer = None
    if viewer is None:
        raise _Refused(
            str(ApiErrorCode.UNAUTHENTICATED),
            "sign in with the link `care-graph token --dashboard URL` prints",
        )
    if viewer.role not in CLINIC_STAFF:
        raise _Refused(str(ErrorCode.FORBIDDEN), "the dashboard is for clinic staff")
    return viewer


async def _regions(request: Request) -> list[str]:
    async with request.app.state.pool.acquire() as connection:
        rows = await connection.fetch("SELECT code FROM regions ORDER BY code")
    return [row["code"] for row in rows]


async def _picture(request: Request, region: str) -> tuple[list[dict[str, Any]], World]:
    async with request.app.state.pool.acquire() as connection:
        rows = await capacity_store.read_outlook(connection, region, None, WEEKS)
        world = await snapshot(connection, region)
    return rows, world


def _answer(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(
        html,
        status,
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
            " img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
        },
    )


def _refusal(refused: _Refused, regions: list[str], region: str | None = None) -> HTMLResponse:
    body = page(region=region, regions=regions, problem=refused.problem)
    return _answer(body, STATUS.get(refused.problem.code, 400))


async def dashboard(request: Request) -> Response:
    """The page: demand against capacity, breaches ahead, unmet demand by site."""
    token = request.query_params.get("token")
    if token is not None:
        return _sign_in(request, token)
    try:
        _viewer(request)
    except _Refused as denied:
        return _refusal(denied, [])
    regions = await _regions(request)
    region = request.query_params.get("region") or (regions[0] if regions else None)
    if region is None:
        return _answer(page(region=None, regions=[]))
    if region not in regions:
        refused = _Refused(str(ErrorCode.INVALID_ARGUMENT), f"unknown region {region!r}")
        return _refusal(refused, regions)
    started = time.perf_counter()
    rows, world = await _picture(request, region)
    body = page(
        region=region,
        regions=regions,
        loads=picture.service_loads(rows),
        weeks=picture.week_breaches(rows),
        sites=picture.site_demand(world, WEEKS),
    )
    response = _answer(body)
    response.headers["Server-Timing"] = f"page;dur={1000 * (time.perf_counter() - started):.1f}"
    return response


def _sign_in(request: Request, token: str) -> Response:
    try:
        viewer = verify(token, request.app.state.tokens)
    except Unauthenticated:
        refused = _Refused(str(ApiErrorCode.UNAUTHENTICATED), "the link's token is not valid")
        return _refusal(refused, [])
    if viewer.role not in CLINIC_STAFF:
        return _refusal(_Refused(str(ErrorCode.FORBIDDEN), "the dashboard is for clinic staff"), [])
    region = request.query_params.get("region")
    target = "/dashboard" + (f"?{urlencode({'region': region})}" if region else "")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=max(int((viewer.expires_at or time.time() + 3600) - time.time()), 1),
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def simulate(request: Request) -> Response:
    """Run the form's scenario against the baseline (care_graph's booking, one replication,
    18 weeks) and show the waiting list's course under each."""
    try:
        _viewer(request)
    except _Refused as denied:
        return _refusal(denied, [])
    regions = await _regions(request)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            too_large = _Refused(
                str(ApiErrorCode.PAYLOAD_TOO_LARGE), f"the form is over {MAX_FORM_BYTES} bytes"
            )
            return _refusal(too_large, regions)
    form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=4)
    region = (form.get("region") or [""])[0]
    text = (form.get("scenario") or [EXAMPLE_SCENARIO])[0]
    if region not in regions:
        refused = _Refused(str(ErrorCode.INVALID_ARGUMENT), f"unknown region {region!r}")
        return _refusal(refused, regions)
    try:
        scenario = Scenario.from_json(orjson.loads(text))
        if scenario.name == "baseline":
            raise ValueError("name the scenario: 'baseline' is the one it is compared with")
    except (ValueError, orjson.JSONDecodeError) as error:
        refused = _Refused(str(ErrorCode.INVALID_ARGUMENT), f"the scenario: {error}")
        return _answer(
            page(region=region, regions=regions, scenario_text=text, problem=refused.problem),
            400,
        )
    rows, world = await _picture(request, region)
    try:
        result = await run_heavy(
            study,
            world,
            Assumptions(),
            policies=(Policy.CARE_GRAPH,),
            scenarios=(Scenario(), scenario),
            replications=1,
        )
    except CareGraphError as error:
        return _refusal(_Refused(str(error.code), error.message), regions, region)
    except ValueError as error:
        refused = _Refused(str(ErrorCode.INVALID_ARGUMENT), f"the scenario: {error}")
        return _answer(
            page(region=region, regions=regions, scenario_text=text, problem=refused.problem),
            400,
        )
    courses = [
        picture.course(name, result.outcomes[(name, Policy.CARE_GRAPH)][0])
        for name in ("baseline", scenario.name)
    ]
    return _answer(
        page(
            region=region,
            regions=regions,
            loads=picture.service_loads(rows),
            weeks=picture.week_breaches(rows),
            sites=picture.site_demand(world, WEEKS),
            courses=courses,
            scenario_text=text,
        )
    )


def dashboard_routes() -> list[Route]:
    """The dashboard's routes."""
    return [
        Route("/dashboard", dashboard, methods=["GET"]),
        Route("/dashboard/simulate", simulate, methods=["POST"]),
    ]
