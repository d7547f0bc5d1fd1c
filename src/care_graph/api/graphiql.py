"""GraphiQL for development: served from assets the project's setup installs from the npm
registry (web/, no CDN), with a development token for a chosen role already in its headers,
example operations in its tabs, and subscriptions over graphql-transport-ws. None of it is
served in production (api/http.py and app.py check)."""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from care_graph.auth import Role, TokenSettings, mint_token
from care_graph.db import care_store
from care_graph.db.pool import ConnectionSource

# what the page loads, by the name it asks for -> where npm put it under web/node_modules
ASSETS = {
    "react.js": "react/umd/react.production.min.js",
    "react-dom.js": "react-dom/umd/react-dom.production.min.js",
    "graphiql.js": "graphiql/graphiql.min.js",
    "graphiql.css": "graphiql/graphiql.min.css",
}
ROLES = (Role.PATIENT, Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN)
TOKEN_SECONDS = 8 * 3600  # a working day in the IDE

WORKLIST = """# The longest-waiting referrals, with slots each may take. Press run.
query Worklist {
  referrals(first: 5, filter: {status: [ACCEPTED]}) {
    nodes {
      id ubrn priority breachDate
      candidateSlots(first: 3) { nodes { id startsAt site { name } } }
    }
  }
}
"""
MINE = """# My referrals, what is booked, and any offer waiting for me. Press run.
query MyReferrals {
  me {
    nhsNumber
    referrals(first: 10) {
      nodes {
        id status
        offer { id startsAt holdExpiresAt site { name } }
        appointments(first: 5) { nodes { id status slot { startsAt } } }
      }
    }
  }
}
"""
OFFERS = """# Slots offered to referrals I may see, as they are offered (leave it running).
subscription Offers { slotOffered { slotId referralId startsAt expiresAt } }
"""
SLOTS = """# Cardiology slots changing status in London, as they change.
subscription Slots {
  slotAvailabilityChanged(serviceCode: "CARDIOLOGY", region: "LONDON") { slotId status }
}
"""


def web_modules() -> Path:
    """Where the npm packages live: $CARE_GRAPH_WEB_MODULES, else the checkout's
    web/node_modules."""
    configured = os.environ.get("CARE_GRAPH_WEB_MODULES")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[3] / "web" / "node_modules"


def asset(request: Request) -> Response:
    """One of the page's assets, by name (only those in ASSETS)."""
    relative = ASSETS.get(request.path_params["name"])
    path = None if relative is None else web_modules() / relative
    if path is None or not path.is_file():
        return Response("not found", status_code=404, media_type="text/plain")
    return FileResponse(path, headers={"Cache-Control": "max-age=3600"})


async def page(request: Request) -> Response:
    """The IDE, for the role in ``?role=`` (scheduler by default); a patient token is for the
    first patient with a referral waiting, so that `me` has something to show."""
    asked = request.query_params.get("role")
    role = next((offered for offered in ROLES if offered == asked), Role.SCHEDULER)
    if not all((web_modules() / relative).is_file() for relative in ASSETS.values()):
        return HTMLResponse(
            "<!doctype html><title>care_graph GraphiQL</title><p>GraphiQL's assets are not"
            " installed: run <code>scripts/dev setup</code> (it installs them with npm into"
            " <code>web/node_modules</code>).</p>",
            status_code=503,
        )
    pool: ConnectionSource = request.app.state.pool
    patient_id = None
    if role is Role.PATIENT:
        async with pool.acquire() as connection:
            patient_id = await care_store.first_waiting_patient(connection)
    tokens: TokenSettings = request.app.state.tokens
    token = mint_token(
        tokens,
        role=role,
        subject=f"graphiql-{role}",
        patient_id=patient_id,
        ttl_seconds=TOKEN_SECONDS,
    )
    tabs = [MINE, OFFERS] if role is Role.PATIENT else [WORKLIST, OFFERS, SLOTS]
    config = {"token": token, "tabs": tabs}
    return HTMLResponse(_html(role, config))


def _html(role: Role, config: dict[str, Any]) -> str:
    picker = " · ".join(
        f"<b>{other}</b>" if other is role else f'<a href="?role={other}">{other}</a>'
        for other in ROLES
    )
    # the JSON sits in a script element: "</" must not end it early
    data = orjson.dumps(config).decode().replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>care_graph GraphiQL ({html.escape(str(role))})</title>
  <link rel="stylesheet" href="/graphiql/assets/graphiql.css">
  <style>
    body {{ margin: 0; height: 100vh; display: flex; flex-direction: column;
           font-family: system-ui, sans-serif; }}
    #roles {{ padding: 6px 12px; font-size: 14px; border-bottom: 1px solid #ddd; }}
    #graphiql {{ flex: 1; }}
  </style>
</head>
<body>
  <div id="roles">care_graph, development · signed in as {picker}</div>
  <div id="graphiql"></div>
  <script src="/graphiql/assets/react.js"></script>
  <script src="/graphiql/assets/react-dom.js"></script>
  <script src="/graphiql/assets/graphiql.js"></script>
  <script id="config" type="application/json">{data}</script>
  <script>
    const config = JSON.parse(document.getElementById("config").textContent);
    const url = new URL("/graphql", window.location.href).href;
    const authorization = "Bearer " + config.token;
    // the fetcher sends the token itself, so that no tab needs a header typed
    const fetcher = GraphiQL.createFetcher({{
      url,
      headers: {{ Authorization: authorization }},
      subscriptionUrl: url.replace(/^http/, "ws"),
      wsConnectionParams: {{ Authorization: authorization }},
    }});
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {{
        fetcher,
        defaultTabs: config.tabs.map((query) => ({{ query }})),
        defaultEditorToolsVisibility: true,
        shouldPersistHeaders: false,
      }})
    );
  </script>
</body>
</html>
"""
