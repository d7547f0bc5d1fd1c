"""A referrer reaches only their patients: through real HTTP requests, registering and referring
never read, nor tell of, a record the referrer may not read.

The world (tests/test_auth.py): patient 1 has a referral from gp-smith, the referrer here;
patient 2 has one from gp-patel only, and nobody registered either through the API. An attacker
holds gp-smith's token and global ids or NHS numbers, but not patient 2's date of birth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role
from care_graph.db.pool import connect
from care_graph.testing import DatabaseFactory, asgi_client, bearer
from tests.test_auth import WORLD

REFERRER = bearer(Role.REFERRER, "gp-smith")
CLINICIAN = bearer(Role.CLINICIAN, "dr-who")
CLERK = bearer(Role.SCHEDULER, "clerk")
OTHERS = encode_global_id("Patient", 2)  # Ivy Shaw, 4010232137, born 1981-02-11
OTHERS_NUMBER, OTHERS_BIRTH = "401 023 2137", "1981-02-11"
NOBODY = encode_global_id("Patient", 999)
UNISSUED = "999 000 0018"  # valid, and held by no one in the world

# the finding's query, word for word: what a referrer could read of any patient by id
FINDING = """mutation($i: CreateReferralInput!) { createReferral(input: $i) {
  referral { patient { nhsNumber dateOfBirth phone email postcode } } } }"""
READ_PATIENT = """query($id: ID!) { node(id: $id) { ... on Patient { nhsNumber givenName } } }"""
CREATE_PATIENT = """mutation($i: CreatePatientInput!) { createPatient(input: $i) {
  patient { id nhsNumber givenName dateOfBirth } } }"""
REFERRAL = {
    "toService": "CARDIOLOGY",
    "priority": "ROUTINE",
    "referrerName": "Dr A Smith",
    "referrerKind": "GP",
}
NEW_PATIENT = {
    "nhsNumber": UNISSUED,
    "givenName": "Zara",
    "familyName": "Ali",
    "dateOfBirth": "1990-03-04",
    "postcode": "NW1 4DD",
    "region": "LONDON",
    "latitude": 51.52,
    "longitude": -0.13,
}
NOT_FOUND = [
    {
        "message": "no such patient",
        "locations": [{"line": 1, "column": 38}],
        "path": ["createReferral"],
        "extensions": {"code": "NOT_FOUND"},
    }
]


@pytest.fixture
def world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


@pytest.fixture
async def client(world_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(world_url) as client:
        yield client


@pytest.fixture
async def db(world_url: str) -> AsyncIterator[asyncpg.Connection[Any]]:
    connection = await connect(world_url)
    try:
        yield connection
    finally:
        await connection.close()


async def ask(
    client: httpx.AsyncClient, query: str, headers: dict[str, str], **variables: Any
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def refer(client: httpx.AsyncClient, headers: dict[str, str], **patient: Any) -> Any:
    return await ask(client, FINDING, headers, i={**REFERRAL, **patient})


async def read(client: httpx.AsyncClient, headers: dict[str, str], global_id: str) -> Any:
    return (await ask(client, READ_PATIENT, headers, id=global_id))["data"]["node"]


async def counts(db: asyncpg.Connection[Any]) -> tuple[int, int, int]:
    """Referrals, patients and audited writes: what a refused request must leave as it was."""
    row = await db.fetchrow(
        "SELECT (SELECT count(*) FROM referrals) AS referrals,"
        " (SELECT count(*) FROM patients) AS patients,"
        " (SELECT count(*) FROM audit_events WHERE operation <> 'READ') AS writes"
    )
    assert row is not None
    return row["referrals"], row["patients"], row["writes"]


async def test_the_findings_query_is_refused_as_for_nobody(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    before = await counts(db)
    refused = await refer(client, REFERRER, patientId=OTHERS)
    assert refused == {"data": None, "errors": NOT_FOUND}
    # the same answer, word for word, as an id that names no one, or no id at all
    assert await refer(client, REFERRER, patientId=NOBODY) == refused
    assert await refer(client, REFERRER, patientId="not an id") == refused
    assert await read(client, REFERRER, OTHERS) is None  # and still unreadable afterwards
    assert await counts(db) == before


async def test_a_referrer_refers_the_patients_they_reach(client: httpx.AsyncClient) -> None:
    # patient 1 through the referral gp-smith made before; a new one by registering it
    again = await refer(client, REFERRER, patientId=encode_global_id("Patient", 1))
    assert again["data"]["createReferral"]["referral"]["patient"]["nhsNumber"] == "9434765919"
    created = await ask(client, CREATE_PATIENT, REFERRER, i=NEW_PATIENT)
    mine = created["data"]["createPatient"]["patient"]
    made = await refer(client, REFERRER, patientId=mine["id"])
    assert made["data"]["createReferral"]["referral"]["patient"] == {
        "nhsNumber": "9990000018",
        "dateOfBirth": "1990-03-04",
        "phone": None,
        "email": None,
        "postcode": "NW1 4DD",
    }


async def test_a_demographic_match_refers_and_then_reaches_the_patient(
    client: httpx.AsyncClient,
) -> None:
    made = await refer(
        client, REFERRER, patient={"nhsNumber": OTHERS_NUMBER, "dateOfBirth": OTHERS_BIRTH}
    )
    assert made["data"]["createReferral"]["referral"]["patient"]["nhsNumber"] == "4010232137"
    # the referral made is the referrer's, and its patient with it (the existing rule)
    assert await read(client, REFERRER, OTHERS) == {"nhsNumber": "4010232137", "givenName": "Ivy"}
    again = await refer(client, REFERRER, patientId=OTHERS)
    assert again["data"]["createReferral"]["referral"]["patient"]["nhsNumber"] == "4010232137"


@pytest.mark.parametrize(
    "patient",
    [
        {"nhsNumber": OTHERS_NUMBER, "dateOfBirth": "1981-02-12"},  # a day out
        {"nhsNumber": OTHERS_NUMBER, "dateOfBirth": "1970-05-04"},  # patient 1's birthday
        {"nhsNumber": "9434765919", "dateOfBirth": OTHERS_BIRTH},  # patient 1's number
    ],
    ids=["day-out", "another-birthday", "another-number"],
)
async def test_a_mismatch_is_answered_as_a_patient_never_registered(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any], patient: dict[str, str]
) -> None:
    before = await counts(db)
    mismatch = await refer(client, REFERRER, patient=patient)
    unknown = await refer(client, REFERRER, patient={**patient, "nhsNumber": UNISSUED})
    assert mismatch == unknown == {"data": None, "errors": NOT_FOUND}
    assert await read(client, REFERRER, OTHERS) is None
    assert await counts(db) == before


async def test_a_referral_names_its_patient_once(client: httpx.AsyncClient) -> None:
    match = {"nhsNumber": OTHERS_NUMBER, "dateOfBirth": OTHERS_BIRTH}
    for patient in ({}, {"patientId": OTHERS, "patient": match}):
        refused = await refer(client, CLINICIAN, **patient)
        assert refused["errors"][0]["extensions"] == {"code": "INVALID_ARGUMENT"}
        assert refused["errors"][0]["message"] == (
            "name the patient by patientId or by patient {nhsNumber, dateOfBirth}: one of the two"
        )
    bad = await refer(client, REFERRER, patient={**match, "nhsNumber": "401 023 2138"})
    assert bad["errors"][0]["extensions"] == {"code": "INVALID_NHS_NUMBER"}


NOT_REGISTRABLE = (
    "this NHS number cannot be registered: refer the patient by NHS number and date of birth"
)


async def test_registering_a_held_number_tells_a_referrer_nothing_of_the_record(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    before = await counts(db)
    answers = []
    for number, born, name in [
        (OTHERS_NUMBER, "1990-03-04", "Zara"),  # patient 2's number, out of reach
        (OTHERS_NUMBER, "1981-02-12", "Ivy"),  # a day out, with the name on record
        (OTHERS_NUMBER, OTHERS_BIRTH, "Ivy"),  # the date of birth on record: not confirmed
        ("9434765919", "1970-05-04", "Sam"),  # patient 1's, whom gp-smith reaches
    ]:
        attempt = {**NEW_PATIENT, "nhsNumber": number, "dateOfBirth": born, "givenName": name}
        answers.append(await ask(client, CREATE_PATIENT, REFERRER, i=attempt))
    assert answers[0] == {
        "data": None,
        "errors": [
            {
                "message": NOT_REGISTRABLE,
                "locations": [{"line": 1, "column": 37}],
                "path": ["createPatient"],
                "extensions": {"code": "INVALID_ARGUMENT"},
            }
        ],
    }
    assert answers[1] == answers[2] == answers[3] == answers[0]
    assert await read(client, REFERRER, OTHERS) is None
    assert await refer(client, REFERRER, patientId=OTHERS) == {"data": None, "errors": NOT_FOUND}
    assert await counts(db) == before
    # the way on: refer them by NHS number and date of birth
    match = {"nhsNumber": OTHERS_NUMBER, "dateOfBirth": OTHERS_BIRTH}
    made = await refer(client, REFERRER, patient=match)
    assert made["data"]["createReferral"]["referral"]["patient"]["nhsNumber"] == "4010232137"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"region": "ATLANTIS"}, "unknown region 'ATLANTIS'"),
        ({"latitude": 95.0}, "coordinates out of range"),
        ({"dateOfBirth": "2999-01-01"}, "a date of birth cannot be in the future"),
    ],
    ids=["region", "coordinates", "born-later"],
)
async def test_a_refused_registration_does_not_depend_on_the_number_being_held(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any], change: dict[str, Any], message: str
) -> None:
    # probing with an input sure to be refused writes nothing, so it must tell nothing
    before = await counts(db)
    held = await ask(
        client, CREATE_PATIENT, REFERRER, i={**NEW_PATIENT, "nhsNumber": OTHERS_NUMBER, **change}
    )
    free = await ask(client, CREATE_PATIENT, REFERRER, i={**NEW_PATIENT, **change})
    assert held == free
    assert held["errors"][0]["message"] == message
    assert await counts(db) == before


async def test_clinic_staff_refer_anyone_and_hear_of_duplicates(
    client: httpx.AsyncClient,
) -> None:
    made = await refer(client, CLINICIAN, patientId=OTHERS)
    assert made["data"]["createReferral"]["referral"]["patient"]["nhsNumber"] == "4010232137"
    assert await refer(client, CLINICIAN, patientId=NOBODY) == {"data": None, "errors": NOT_FOUND}
    for headers in (CLINICIAN, CLERK):
        duplicate = {**NEW_PATIENT, "nhsNumber": OTHERS_NUMBER}
        refused = await ask(client, CREATE_PATIENT, headers, i=duplicate)
        assert refused["errors"][0]["extensions"] == {"code": "ALREADY_EXISTS"}
        assert refused["errors"][0]["message"] == "a patient with this NHS number is registered"


@pytest.mark.parametrize(
    "bad_input",
    [{"toService": "NOPE"}, {"fromService": "NOPE"}, {"requiredSkill": "NOPE"}],
    ids=["to-service", "from-service", "skill"],
)
async def test_bad_input_is_refused_alike_for_a_right_and_a_wrong_birthday(
    client: httpx.AsyncClient, bad_input: dict[str, str]
) -> None:
    """Review finding: the match ran before the input checks, so a referral with an unknown
    service answered NOT_FOUND for a wrong date of birth and INVALID_ARGUMENT for the right
    one, and wrote nothing either way: an unaudited oracle of birthdays."""
    right = {"nhsNumber": OTHERS_NUMBER, "dateOfBirth": OTHERS_BIRTH}
    wrong = {"nhsNumber": OTHERS_NUMBER, "dateOfBirth": "1981-02-12"}
    answers = [
        await ask(client, FINDING, REFERRER, i={**REFERRAL, **bad_input, "patient": patient})
        for patient in (right, wrong)
    ]
    assert answers[0] == answers[1]
    assert answers[0]["errors"][0]["extensions"]["code"] == "INVALID_ARGUMENT"
