"""Scheduling over FHIR ($find, $hold, $book, cancellation by update) through real requests:
$find proposes exactly the slots GraphQL's candidateSlots lists, and booking, holding and
cancelling go through the same rules and offers as the GraphQL mutations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from care_graph.api.ids import encode_global_id, key_of_type
from care_graph.auth import Role
from care_graph.db.bookable import bookable, referral_waits
from care_graph.fhir import codes
from care_graph.testing import asgi_client, bearer, fetch_one
from tests.test_fhir import outcome_code, valid

BASE = "/fhir/R4"
CLERK = bearer(Role.SCHEDULER, "fhir-clerk")
CANDIDATES = """query($id: ID!) { node(id: $id) { ... on Referral {
  candidateSlots(first: 10) { nodes { id } } } } }"""
FHIR = {"Content-Type": "application/fhir+json"}


@pytest.fixture
async def client(own_seeded_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(own_seeded_url, headers=CLERK) as found:
        yield found


async def waiting_referral(url: str, offset: int = 0) -> int:
    """A referral waiting to be booked that has slots it may take."""
    [found] = await fetch_one(
        url,
        f"SELECT r.id FROM referrals r WHERE {referral_waits('r')}"
        f" AND EXISTS (SELECT 1 FROM slots s WHERE {bookable('r', 's')})"
        " ORDER BY r.id OFFSET $1 LIMIT 1",
        offset,
    )
    return int(found)


def parameters(**named: Any) -> dict[str, Any]:
    return {
        "resourceType": "Parameters",
        "parameter": [{"name": name, **value} for name, value in named.items()],
    }


async def find(client: httpx.AsyncClient, referral: int, count: int = 10) -> list[dict[str, Any]]:
    response = await client.post(
        f"{BASE}/Appointment/$find",
        json=parameters(
            referral={"valueReference": {"reference": f"ServiceRequest/{referral}"}},
            _count={"valueInteger": count},
        ),
        headers=FHIR,
    )
    assert response.status_code == 200, response.text
    bundle = valid(response.json())
    return [valid(entry["resource"]) for entry in bundle["entry"]]


def slot_of(appointment: dict[str, Any]) -> int:
    return int(appointment["slot"][0]["reference"].split("/")[1])


async def test_find_proposes_what_graphql_lists_as_candidates(
    client: httpx.AsyncClient, own_seeded_url: str
) -> None:
    [booked] = await fetch_one(
        own_seeded_url, "SELECT min(id) FROM referrals WHERE status = 'BOOKED'"
    )
    referrals = [await waiting_referral(own_seeded_url, offset) for offset in range(3)] + [booked]
    for referral in referrals:
        proposed = await find(client, referral)
        assert all(p["status"] == "proposed" for p in proposed)
        assert all(p["basedOn"] == [{"reference": f"ServiceRequest/{referral}"}] for p in proposed)
        graphql = await client.post(
            "/graphql",
            json={"query": CANDIDATES, "variables": {"id": encode_global_id("Referral", referral)}},
        )
        listed = graphql.json()["data"]["node"]["candidateSlots"]["nodes"]
        assert [slot_of(p) for p in proposed] == [key_of_type(n["id"], "Slot") for n in listed]


async def test_hold_book_and_cancel_go_through_the_booking_rules(
    client: httpx.AsyncClient, own_seeded_url: str
) -> None:
    referral = await waiting_referral(own_seeded_url)
    first, second = (await find(client, referral, 2))[:2]
    held = await client.post(
        f"{BASE}/Appointment/$hold",
        json=parameters(appointment={"resource": first}),
        headers=FHIR,
    )
    assert held.status_code == 200, held.text
    assert valid(held.json())["status"] == "pending"
    slot = (await client.get(f"{BASE}/Slot/{slot_of(first)}")).json()
    assert slot["status"] == "busy-tentative"

    book = parameters(
        appointment={"resource": second}, **{"request-id": {"valueString": "fhir-book-0001"}}
    )
    booked = await client.post(f"{BASE}/Appointment/$book", json=book, headers=FHIR)
    assert booked.status_code == 201, booked.text
    appointment = valid(booked.json())
    assert appointment["status"] == "booked"
    assert booked.headers["location"].endswith(f"{BASE}/Appointment/{appointment['id']}")
    again = await client.post(f"{BASE}/Appointment/$book", json=book, headers=FHIR)
    assert again.json()["id"] == appointment["id"]  # the retry booked nothing more
    [first_held_for] = await fetch_one(
        own_seeded_url, "SELECT held_for_referral_id FROM slots WHERE id = $1", slot_of(first)
    )
    assert first_held_for != referral  # booking let go of the referral's hold

    cancelled = await client.put(
        f"{BASE}/Appointment/{appointment['id']}",
        json={
            **appointment,
            "status": "cancelled",
            "cancelationReason": {
                "coding": [{"system": codes.CANCELLATION_REASON, "code": "PATIENT_ILL"}]
            },
        },
        headers=FHIR,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert valid(cancelled.json())["status"] == "cancelled"
    again = await client.put(
        f"{BASE}/Appointment/{appointment['id']}",
        json=cancelled.json()
        | {
            "cancelationReason": {
                "coding": [{"system": codes.CANCELLATION_REASON, "code": "PATIENT_ILL"}]
            }
        },
        headers=FHIR,
    )
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")  # sent again
    [offered_to] = await fetch_one(
        own_seeded_url, "SELECT held_for_referral_id FROM slots WHERE id = $1", slot_of(second)
    )
    assert offered_to != referral  # offered on, never back to the one that gave it up


async def test_scheduling_refusals_are_coded(
    client: httpx.AsyncClient, own_seeded_url: str
) -> None:
    referral = await waiting_referral(own_seeded_url, 5)
    [first] = await find(client, referral, 1)
    booked = await client.post(
        f"{BASE}/Appointment/$book", json=parameters(appointment={"resource": first}), headers=FHIR
    )
    assert booked.status_code == 201
    [other] = await fetch_one(
        own_seeded_url,
        f"SELECT r.id FROM referrals r, slots s WHERE s.id = $1 AND {referral_waits('r')}"
        " AND r.to_service_id = s.service_id AND r.id <> $2 ORDER BY r.id LIMIT 1",
        slot_of(first),
        referral,
    )
    taken = {**first, "basedOn": [{"reference": f"ServiceRequest/{other}"}]}
    refused = await client.post(
        f"{BASE}/Appointment/$book", json=parameters(appointment={"resource": taken}), headers=FHIR
    )
    assert outcome_code(refused) == "SLOT_UNAVAILABLE"
    appointment_id = valid(booked.json())["id"]
    not_cancel = await client.put(
        f"{BASE}/Appointment/{appointment_id}",
        json={**booked.json(), "status": "noshow"},
        headers=FHIR,
    )
    assert outcome_code(not_cancel) == "INVALID_ARGUMENT"
    unknown = await client.post(f"{BASE}/Appointment/$teleport", json=parameters(), headers=FHIR)
    assert outcome_code(unknown) == "NOT_FOUND"
    assert outcome_code(await client.put(f"{BASE}/Patient/1", json={}, headers=FHIR)) == (
        "METHOD_NOT_ALLOWED"
    )
    async with asgi_client(
        own_seeded_url, headers=bearer(Role.PATIENT, "p-9", 999_999)
    ) as stranger:
        hidden = await stranger.post(
            f"{BASE}/Appointment/$find",
            json=parameters(referral={"valueReference": {"reference": f"ServiceRequest/{other}"}}),
            headers=FHIR,
        )
        assert outcome_code(hidden) == "NOT_FOUND"
    async with asgi_client(own_seeded_url, headers=bearer(Role.REFERRER, "gp-1")) as referrer:
        [proposal] = await find(client, await waiting_referral(own_seeded_url, 7), 1)
        forbidden = await referrer.post(
            f"{BASE}/Appointment/$book",
            json=parameters(appointment={"resource": proposal}),
            headers=FHIR,
        )
        assert outcome_code(forbidden) == "FORBIDDEN"
