"""What every example shares: the operations in operations/, and a GraphQL client (gql, over
HTTP) that sends a bearer token. Examples are what a frontend or an integrator writes against
care_graph; they use only its public API, never care_graph's own modules."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXAsyncTransport

OPERATIONS = Path(__file__).parent / "operations"


def arguments(
    description: str, more: Callable[[argparse.ArgumentParser], None] | None = None
) -> argparse.Namespace:
    """The options every example takes (where the API is, whose token to send), and those
    ``more`` adds."""
    parser = argparse.ArgumentParser(description=description)
    if more is not None:
        more(parser)
    parser.add_argument(
        "--url",
        default=os.environ.get("CARE_GRAPH_URL", "http://127.0.0.1:8000/graphql"),
        help="the GraphQL endpoint (default $CARE_GRAPH_URL or http://127.0.0.1:8000/graphql)",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("CARE_GRAPH_TOKEN"),
        help="a bearer token (default $CARE_GRAPH_TOKEN; mint one with `care-graph token`)",
    )
    options = parser.parse_args()
    if not options.token:
        parser.error("a token is needed: --token or $CARE_GRAPH_TOKEN")
    return options


def operation(name: str, **variables: Any) -> GraphQLRequest:
    """The operation in operations/<name>.graphql, with these variables."""
    return GraphQLRequest((OPERATIONS / f"{name}.graphql").read_text(), variable_values=variables)


def client(url: str, token: str) -> Client:
    """A client for the API that sends the token on every request."""
    return Client(
        transport=HTTPXAsyncTransport(url=url, headers={"Authorization": f"Bearer {token}"}),
        fetch_schema_from_transport=False,
    )


def run(
    doc: str | None,
    journey: Callable[[argparse.Namespace], Coroutine[Any, Any, None]],
    more: Callable[[argparse.ArgumentParser], None] | None = None,
) -> None:
    """Run a journey with the options its script was given (the first line of ``doc`` is its
    --help); an error the API answered with ends it with the code and message on stderr, and
    exit status 1."""
    options = arguments((doc or "").splitlines()[0], more)
    try:
        asyncio.run(journey(options))
    except TransportQueryError as error:
        for item in error.errors or []:
            code = item.get("extensions", {}).get("code", "?")
            print(f"refused: {code}: {item.get('message')}", file=sys.stderr)
        raise SystemExit(1) from None
