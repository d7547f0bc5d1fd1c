"""Inbound referrals over FHIR through real requests: a transaction Bundle from each kind of
referring service registers its patient (or matches one held) and makes the referral at once,
by the same rules as GraphQL's createReferral (the two agree, field for field); a retried
message makes nothing twice; a refused one leaves nothing behind."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from care_graph.api.ids import key_of_type
from care_graph.auth import Role
from care_graph.fhir import codes
from care_graph.fhir.inbound import GEOLOCATION
from care_graph.nhs import check_digit
from care_graph.testing import asgi_client, bearer, fetch_one
from tests.test_fhir import outcome_code, valid

BASE = "/fhir/R4"
REFERRER = bearer(Role.REFERRER, "optician-7")
KINDS = ("GP", "OPTOMETRIST", "DENTIST", "PHARMACIST")
CREATE_REFERRAL = """mutation($i: CreateReferralInput!) { createReferral(input: $i) {
  referral { id } } }"""


@pytest.fixture
async def client(own_seeded_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(own_seeded_url, headers=REFERRER) as found:
        yield found


def fresh_nhs_number(rng: random.Random) -> str:
    """A valid NHS number the demo data does not hold (theirs start 999)."""
    while True:
        first_nine = f"97{rng.randrange(10**7):07d}"
        digit = check_digit(first_nine)
        if digit is not None:
            return first_nine + str(digit)


def patient_entry(nhs_number: str, born: str, *, register: bool = True) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "identifier": [{"system": codes.NHS_NUMBER, "value": nhs_number}],
        "birthDate": born,
    }
    if register:
        resource |= {
            "extension": [{"url": codes.REGION_EXTENSION, "valueCode": "LONDON"}],
            "name": [{"family": "Okafor", "given": ["Ada"]}],
            "telecom": [{"system": "phone", "value": "07700 900123"}],
            "address": [
                {
                    "postalCode": "SE1 7EH",
                    "extension": [
                        {
                            "url": GEOLOCATION,
                            "extension": [
                                {"url": "latitude", "valueDecimal": 51.5},
                                {"url": "longitude", "valueDecimal": -0.11},
                            ],
                        }
                    ],
                }
            ],
        }
    return {
        "fullUrl": "urn:uuid:0f4e2a3c-1b2d-4c5e-8f90-123456789abc",
        "resource": resource,
        "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={nhs_number}"},
    }


def service_request(kind: str, subject: str, **overrides: Any) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "extension": [{"url": codes.REFERRER_KIND_EXTENSION, "valueCode": kind}],
        "identifier": [{"system": "https://sender.example/referrals", "value": f"{kind}-1"}],
        "status": "active",
        "intent": "order",
        "priority": "urgent",
        "code": {"coding": [{"system": codes.SERVICE_CODE, "code": "OPHTHALMOLOGY"}]},
        "subject": {"reference": subject},
        "requester": {"display": f"A {kind.lower()} of Riverside"},
        "occurrencePeriod": {"start": (date.today() + timedelta(days=3)).isoformat()},
        **overrides,
    }


def transaction(identifier: str, *entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "identifier": {"system": "https://sender.example/messages", "value": identifier},
        "entry": list(entries),
    }


def referral_entry(resource: dict[str, Any]) -> dict[str, Any]:
    return {"resource": resource, "request": {"method": "POST", "url": "ServiceRequest"}}


async def post(client: httpx.AsyncClient, path: str, body: Any) -> httpx.Response:
    return await client.post(
        f"{BASE}{path}", json=body, headers={"Content-Type": "application/fhir+json"}
    )


async def counts(url: str) -> tuple[int, int]:
    [patients, referrals] = await fetch_one(
        url, "SELECT (SELECT count(*) FROM patients), (SELECT count(*) FROM referrals)"
    )
    return patients, referrals


@pytest.mark.parametrize("kind", KINDS)
async def test_a_bundle_from_each_referring_service_registers_and_refers_once(
    client: httpx.AsyncClient, own_seeded_url: str, kind: str
) -> None:
    number = fresh_nhs_number(random.Random(kind))
    patient = patient_entry(number, "1961-04-02")
    message = transaction(
        f"message-{kind}", patient, referral_entry(service_request(kind, patient["fullUrl"]))
    )
    before = await counts(own_seeded_url)
    response = await post(client, "", message)
    assert response.status_code == 200, response.text
    answered = valid(response.json())
    assert [entry["response"]["status"] for entry in answered["entry"]] == ["201 Created"] * 2
    patient_id = answered["entry"][0]["response"]["location"].split("/")[1]
    referral_id = answered["entry"][1]["response"]["location"].split("/")[1]
    assert await counts(own_seeded_url) == (before[0] + 1, before[1] + 1)

    read = valid((await client.get(f"{BASE}/ServiceRequest/{referral_id}")).json())
    assert read["subject"] == {"reference": f"Patient/{patient_id}"}
    assert read["extension"][0]["valueCode"] == kind
    assert (read["status"], read["intent"], read["priority"]) == ("active", "order", "urgent")
    assert read["code"]["coding"][0]["code"] == "OPHTHALMOLOGY"
    assert read["requester"]["display"] == f"A {kind.lower()} of Riverside"
    assert (
        read["occurrencePeriod"]["start"]
        == message["entry"][1]["resource"]["occurrencePeriod"]["start"]
    )
    [region, clock, breach] = await fetch_one(
        own_seeded_url,
        "SELECT p.region_code, r.clock_start > now() - interval '1 minute', r.breach_date"
        " FROM referrals r JOIN patients p ON p.id = r.patient_id WHERE r.id = $1",
        int(referral_id),
    )
    assert (region, clock) == ("LONDON", True)
    assert breach > date.today()

    again = valid((await post(client, "", message)).json())
    assert [entry["response"]["status"] for entry in again["entry"]] == ["200 OK"] * 2
    assert again["entry"][1]["response"]["location"] == f"ServiceRequest/{referral_id}"
    assert await counts(own_seeded_url) == (before[0] + 1, before[1] + 1)

    changed = transaction(
        f"message-{kind}",
        patient,
        referral_entry(service_request(kind, patient["fullUrl"], priority="routine")),
    )
    assert outcome_code(await post(client, "", changed)) == "IDEMPOTENCY_KEY_REUSED"


async def test_a_patient_held_is_matched_by_nhs_number_and_date_of_birth(
    client: httpx.AsyncClient, own_seeded_url: str
) -> None:
    [patient, number, born] = await fetch_one(
        own_seeded_url,
        "SELECT id, nhs_number, date_of_birth::text FROM patients ORDER BY id LIMIT 1",
    )
    held = patient_entry(number, born, register=False)
    message = transaction("match-1", held, referral_entry(service_request("GP", held["fullUrl"])))
    before = await counts(own_seeded_url)
    answered = valid((await post(client, "", message)).json())
    assert answered["entry"][0]["response"] == {
        "status": "200 OK",
        "location": f"Patient/{patient}",
    }
    assert await counts(own_seeded_url) == (before[0], before[1] + 1)

    wrong = patient_entry(number, "1900-01-01", register=False)
    message = transaction("match-2", wrong, referral_entry(service_request("GP", wrong["fullUrl"])))
    assert outcome_code(await post(client, "", message)) == "NOT_FOUND"
    assert await counts(own_seeded_url) == (before[0], before[1] + 1)


async def test_a_service_request_posted_alone_refers_a_patient_reached(
    own_seeded_url: str,
) -> None:
    [patient] = await fetch_one(own_seeded_url, "SELECT min(id) FROM patients")
    async with asgi_client(own_seeded_url, headers=bearer(Role.CLINICIAN, "dr-1")) as client:
        body = service_request("CONSULTANT", f"Patient/{patient}")
        made = await post(client, "/ServiceRequest", body)
        assert made.status_code == 201, made.text
        resource = valid(made.json())
        assert made.headers["location"].endswith(f"{BASE}/ServiceRequest/{resource['id']}")
        replayed = await post(client, "/ServiceRequest", body)
        assert replayed.status_code == 200
        assert replayed.json()["id"] == resource["id"]


async def test_fhir_and_graphql_make_the_same_referral(
    client: httpx.AsyncClient, own_seeded_url: str
) -> None:
    [patient, number, born] = await fetch_one(
        own_seeded_url,
        "SELECT id, nhs_number, date_of_birth::text FROM patients ORDER BY id LIMIT 1",
    )
    earliest = (date.today() + timedelta(days=3)).isoformat()
    graphql = await client.post(
        "/graphql",
        json={
            "query": CREATE_REFERRAL,
            "variables": {
                "i": {
                    "patient": {"nhsNumber": number, "dateOfBirth": born},
                    "toService": "OPHTHALMOLOGY",
                    "priority": "TWO_WEEK_WAIT",
                    "referrerName": "A dentist of Riverside",
                    "referrerKind": "DENTIST",
                    "earliestDate": earliest,
                }
            },
        },
    )
    by_graphql = graphql.json()["data"]["createReferral"]["referral"]["id"]
    held = patient_entry(number, born, register=False)
    sent = service_request("DENTIST", held["fullUrl"], priority="urgent")
    answered = (await post(client, "", transaction("agree-1", held, referral_entry(sent)))).json()
    by_fhir = int(answered["entry"][1]["response"]["location"].split("/")[1])
    columns = (
        "patient_id, referrer_name, referrer_kind, referrer_subject, to_service_id, priority,"
        " status, breach_date, earliest_date, max_travel_km, required_skill, preferred_site_ids"
    )
    rows = [
        await fetch_one(own_seeded_url, f"SELECT {columns} FROM referrals WHERE id = $1", key)
        for key in (key_of_type(by_graphql, "Referral"), by_fhir)
    ]
    assert rows[0] == rows[1]
    assert rows[0][0] == patient


async def test_refused_messages_change_nothing_and_say_why(
    client: httpx.AsyncClient, own_seeded_url: str
) -> None:
    before = await counts(own_seeded_url)
    new = patient_entry(fresh_nhs_number(random.Random(1)), "1970-01-01")
    unknown_service = service_request(
        "GP", new["fullUrl"], code={"coding": [{"system": codes.SERVICE_CODE, "code": "NOPE"}]}
    )
    refusals = {
        "unknown service, new patient": (
            transaction("bad-1", new, referral_entry(unknown_service)),
            "INVALID_ARGUMENT",
        ),
        "bad NHS number": (
            transaction(
                "bad-2",
                bad := patient_entry("1234567890", "1970-01-01"),
                referral_entry(service_request("GP", bad["fullUrl"])),
            ),
            "INVALID_NHS_NUMBER",
        ),
        "no referrer kind": (
            transaction(
                "bad-3", new, referral_entry(service_request("GP", new["fullUrl"], extension=[]))
            ),
            "INVALID_ARGUMENT",
        ),
        "subject not the patient entry": (
            transaction("bad-4", new, referral_entry(service_request("GP", "urn:uuid:other"))),
            "INVALID_ARGUMENT",
        ),
        "not a transaction": ({"resourceType": "Bundle", "type": "batch"}, "INVALID_ARGUMENT"),
        "not a Bundle": ({"resourceType": "Patient"}, "INVALID_ARGUMENT"),
    }
    for name, (body, code) in refusals.items():
        assert outcome_code(await post(client, "", body)) == code, name
    not_json = await client.post(
        f"{BASE}", content=b"{", headers={"Content-Type": "application/fhir+json"}
    )
    assert outcome_code(not_json) == "BAD_REQUEST"
    as_text = await client.post(f"{BASE}", content=b"{}", headers={"Content-Type": "text/plain"})
    assert outcome_code(as_text) == "UNSUPPORTED_MEDIA_TYPE"
    assert outcome_code(await post(client, "/Patient", {"resourceType": "Patient"})) == (
        "METHOD_NOT_ALLOWED"
    )
    async with asgi_client(own_seeded_url, headers=bearer(Role.PATIENT, "p", 1)) as patient:
        message = transaction("bad-5", new, referral_entry(service_request("GP", new["fullUrl"])))
        assert outcome_code(await post(patient, "", message)) == "FORBIDDEN"
    assert await counts(own_seeded_url) == before


def test_the_models_accept_what_we_send() -> None:
    """The messages these tests send are valid FHIR themselves."""
    patient = patient_entry(fresh_nhs_number(random.Random(2)), "1961-04-02")
    bundle = transaction("x", patient, referral_entry(service_request("GP", patient["fullUrl"])))
    get_fhir_model_class("Bundle").model_validate(bundle)


async def test_malformed_messages_are_refused_not_failed_on(client: httpx.AsyncClient) -> None:
    new = patient_entry(fresh_nhs_number(random.Random(3)), "1970-01-01")
    good = service_request("GP", new["fullUrl"])
    shapes = [
        transaction("shape-1", {**new, "request": "POST"}, referral_entry(good)),
        transaction("shape-2", new, referral_entry({**good, "extension": 1})),
        transaction("shape-3", {**new, "resource": {**new["resource"], "telecom": 1}}),
        transaction("shape-4", new, referral_entry({**good, "subject": {"reference": 5}})),
        transaction("shape-5", new, referral_entry({**good, "requester": {"display": "\x00"}})),
        {**transaction("shape-6", new, referral_entry(good)), "identifier": "not an object"},
    ]
    for body in shapes:
        assert outcome_code(await post(client, "", body)) == "INVALID_ARGUMENT", body


async def test_a_refused_referral_tells_nothing_of_the_patient(
    client: httpx.AsyncClient, own_seeded_url: str
) -> None:
    """The referral's own checks come first: a message refused for them answers alike whether
    its patient is held, held under another date of birth, or new."""
    [number] = await fetch_one(
        own_seeded_url, "SELECT nhs_number FROM patients ORDER BY id LIMIT 1"
    )
    answers = set()
    for index, (nhs_number, born) in enumerate(
        [(number, "1900-01-01"), (fresh_nhs_number(random.Random(4)), "1900-01-01")]
    ):
        patient = patient_entry(nhs_number, born)
        bad_kind = service_request("XX", patient["fullUrl"])
        response = await post(
            client, "", transaction(f"probe-{index}", patient, referral_entry(bad_kind))
        )
        answers.add((outcome_code(response), response.json()["issue"][0]["diagnostics"]))
    assert len(answers) == 1, answers
