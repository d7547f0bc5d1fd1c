"""Who may do what, through real ASGI requests: tokens are verified strictly, every bad one gets
the same answer, and each role sees and changes only what it may — in the compiled read path,
the resolver path and the mutations alike."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import orjson
import pytest

from care_graph.api.ids import encode_global_id
from care_graph.auth import DEVELOPMENT_SECRET, Role
from care_graph.db.pool import connect
from care_graph.testing import DatabaseFactory, asgi_client, bearer

# Two patients, each with a referral from a different referrer, and free slots.
WORLD = """
INSERT INTO regions VALUES ('LONDON', 'London');
INSERT INTO skills VALUES ('CARDIOLOGY', 'Cardiology');
INSERT INTO services (id, code, name, kind, slot_minutes)
    VALUES (1, 'CARDIOLOGY', 'Cardiology', 'SPECIALTY', 20);
INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude)
    VALUES (1, 'S1', 'Camden General', 'LONDON', 'Camden', 'NW1 1AA', 51.53, -0.14);
INSERT INTO site_services VALUES (1, 1);
INSERT INTO staff (id, given_name, family_name, role, base_site_id)
    VALUES (1, 'Ada', 'Jones', 'CONSULTANT', 1);
INSERT INTO staff_skills VALUES (1, 'CARDIOLOGY');
INSERT INTO slots (id, service_id, site_id, staff_id, starts_at, ends_at)
    SELECT n, 1, 1, 1, date_trunc('day', now()) + interval '3 days' + n * interval '20 minutes',
           date_trunc('day', now()) + interval '3 days' + (n + 1) * interval '20 minutes'
    FROM generate_series(1, 10) n;
INSERT INTO patients (id, nhs_number, given_name, family_name, date_of_birth, postcode,
                      region_code, latitude, longitude) VALUES
    (1, '9434765919', 'Sam', 'Khan', '1970-05-04', 'NW1 2BB', 'LONDON', 51.53, -0.15),
    (2, '4010232137', 'Ivy', 'Shaw', '1981-02-11', 'NW1 3CC', 'LONDON', 51.54, -0.16);
INSERT INTO referrals (id, ubrn, patient_id, referrer_name, referrer_kind, referrer_subject,
                       to_service_id, priority, status, received_at, clock_start, breach_date)
    VALUES (1, '100000000001', 1, 'Dr A Smith', 'GP', 'gp-smith', 1, 'ROUTINE', 'ACCEPTED',
            now(), now(), current_date + 90),
           (2, '100000000002', 2, 'Dr B Patel', 'GP', 'gp-patel', 1, 'ROUTINE', 'ACCEPTED',
            now(), now(), current_date + 90);
"""

READ = """query($own: ID!, $other: ID!) {
  referrals { nodes { ubrn } }
  patients { nodes { nhsNumber } }
  own: node(id: $own) { ... on Referral { ubrn patient { nhsNumber } } }
  other: node(id: $other) { ... on Referral { ubrn } }
}"""
BOOK = """mutation($r: ID!, $s: ID!) { bookAppointment(input: {referralId: $r, slotId: $s}) {
  appointment { status } } }"""

# role -> (subject, patient) of a caller whose "own" record is referral/patient 1
CALLERS: dict[Role, tuple[str, int | None]] = {
    Role.PATIENT: ("patient-1", 1),
    Role.REFERRER: ("gp-smith", None),
    Role.CLINICIAN: ("dr-who", None),
    Role.SCHEDULER: ("clerk", None),
    Role.ADMIN: ("root", None),
}


@pytest.fixture(scope="module")
def world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


@pytest.fixture
async def client(world_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(world_url) as client:
        yield client


async def ask(
    client: httpx.AsyncClient, query: str, headers: dict[str, str], **variables: Any
) -> httpx.Response:
    return await client.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


def token(**changes: Any) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "sub": "clerk",
        "role": "scheduler",
        "iss": "care-graph",
        "aud": "care-graph-api",
        "iat": now,
        "exp": now + 600,
        **changes,
    }
    secret = claims.pop("secret", DEVELOPMENT_SECRET)
    algorithm = claims.pop("alg", "HS256")
    encoded = jwt.encode(
        {k: v for k, v in claims.items() if v is not None}, secret, algorithm=algorithm
    )
    return {"Authorization": f"Bearer {encoded}"}


def unsigned() -> dict[str, str]:
    """A token that claims admin with ``alg: none`` and no signature."""
    claims = {
        "sub": "x",
        "role": "admin",
        "iss": "care-graph",
        "aud": "care-graph-api",
        "exp": int(time.time()) + 600,
    }
    header = jwt.utils.base64url_encode(orjson.dumps({"alg": "none", "typ": "JWT"})).decode()
    body = jwt.utils.base64url_encode(orjson.dumps(claims)).decode()
    return {"Authorization": f"Bearer {header}.{body}."}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        unsigned(),
        token(secret="another-secret-entirely-32-bytes!"),
        token(exp=int(time.time()) - 10),
        token(aud="someone-else"),
        token(iss="someone-else"),
        token(role="superuser"),
        token(role="patient"),  # a patient token must name its patient
        token(exp=None),
    ],
    ids=[
        "none",
        "basic",
        "empty",
        "alg-none",
        "wrong-signature",
        "expired",
        "wrong-audience",
        "wrong-issuer",
        "unknown-role",
        "patient-without-record",
        "no-expiry",
    ],
)
async def test_bad_credentials_get_one_answer(
    client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await ask(client, "{ __typename }", headers)
    assert response.status_code == 401
    assert response.json() == {
        "errors": [
            {"message": "authentication required", "extensions": {"code": "UNAUTHENTICATED"}}
        ]
    }


@pytest.mark.parametrize("role", list(CALLERS))
async def test_what_each_role_reads(client: httpx.AsyncClient, role: Role) -> None:
    subject, patient = CALLERS[role]
    response = await ask(
        client,
        READ,
        bearer(role, subject, patient),
        own=encode_global_id("Referral", 1),
        other=encode_global_id("Referral", 2),
    )
    data = response.json()["data"]
    sees_all = role in (Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN)
    assert [n["ubrn"] for n in data["referrals"]["nodes"]] == (
        ["100000000001", "100000000002"] if sees_all else ["100000000001"]
    )
    assert sorted(n["nhsNumber"] for n in data["patients"]["nodes"]) == (
        ["4010232137", "9434765919"] if sees_all else ["9434765919"]
    )
    assert data["own"] == {"ubrn": "100000000001", "patient": {"nhsNumber": "9434765919"}}
    assert data["other"] == ({"ubrn": "100000000002"} if sees_all else None)


@pytest.mark.parametrize("role", list(CALLERS))
async def test_the_resolver_path_applies_the_same_rules(
    client: httpx.AsyncClient, role: Role
) -> None:
    subject, patient = CALLERS[role]
    # introspection sends the whole request down the resolver path
    query = "{ __schema { queryType { name } } referrals { totalCount nodes { ubrn } } }"
    data = (await ask(client, query, bearer(role, subject, patient))).json()["data"]
    expected = 2 if role in (Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN) else 1
    assert data["referrals"]["totalCount"] == expected
    assert len(data["referrals"]["nodes"]) == expected


@pytest.mark.parametrize(
    ("role", "referral", "expected"),
    [
        (Role.PATIENT, 1, "BOOKED"),
        (Role.PATIENT, 2, "NOT_FOUND"),
        (Role.REFERRER, 1, "FORBIDDEN"),
        (Role.CLINICIAN, 2, "BOOKED"),
        (Role.SCHEDULER, 2, "BOOKED"),
        (Role.ADMIN, 2, "BOOKED"),
    ],
)
async def test_who_may_book(
    client: httpx.AsyncClient, world_url: str, role: Role, referral: int, expected: str
) -> None:
    subject, patient = CALLERS[role]
    slot = list(CALLERS).index(role) + 1
    response = await ask(
        client,
        BOOK,
        bearer(role, subject, patient),
        r=encode_global_id("Referral", referral),
        s=encode_global_id("Slot", slot),
    )
    body = response.json()
    if expected == "BOOKED":
        assert body["data"]["bookAppointment"]["appointment"]["status"] == "BOOKED"
        connection = await connect(world_url)
        try:  # put the world back for the next case
            await connection.execute(
                "DELETE FROM audit_events; DELETE FROM appointments;"
                " UPDATE slots SET status = 'free'; UPDATE referrals SET status = 'ACCEPTED'"
            )
        finally:
            await connection.close()
    else:
        assert body["errors"][0]["extensions"]["code"] == expected


@pytest.mark.parametrize("path", ["compiled", "resolver"])
async def test_reading_a_patient_leaves_an_audit_event(
    client: httpx.AsyncClient, world_url: str, path: str
) -> None:
    # introspection in the same document sends a request down the resolver path
    extra = " __schema { queryType { name } }" if path == "resolver" else ""
    query = "query { patients { nodes { nhsNumber } } services { nodes { code } }" + extra + " }"
    connection = await connect(world_url)
    try:
        await connection.execute("DELETE FROM audit_events")
        response = await ask(client, query, bearer(Role.SCHEDULER, "clerk-7"))
        assert len(response.json()["data"]["patients"]["nodes"]) == 2
        rows = await connection.fetch(
            "SELECT actor, actor_role, operation, record_type, record_id FROM audit_events"
            " ORDER BY record_id"
        )
    finally:
        await connection.close()
    assert [tuple(row) for row in rows] == [
        ("clerk-7", "scheduler", "READ", "patient", 1),
        ("clerk-7", "scheduler", "READ", "patient", 2),
    ]


@pytest.mark.parametrize("role", list(CALLERS))
async def test_only_administrators_read_the_audit_trail(
    client: httpx.AsyncClient, role: Role
) -> None:
    subject, patient = CALLERS[role]
    await ask(client, "{ patients { nodes { nhsNumber } } }", bearer(role, subject, patient))
    query = (
        '{ auditEvents(first: 5, filter: {operation: "READ", recordType: "patient"}) {'
        " totalCount nodes { actor operation recordType recordId } } }"
    )
    data = (await ask(client, query, bearer(role, subject, patient))).json()["data"]
    if role is Role.ADMIN:
        assert data["auditEvents"]["totalCount"] > 0
        assert data["auditEvents"]["nodes"][0]["recordId"] in (
            encode_global_id("Patient", 1),
            encode_global_id("Patient", 2),
        )
    else:
        assert data["auditEvents"] == {"totalCount": 0, "nodes": []}


OK, NOT_FOUND, FORBIDDEN = "ok", "NOT_FOUND", "FORBIDDEN"
P, R, C, S, A = Role.PATIENT, Role.REFERRER, Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN

MUTATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "create patient": (
        "mutation($i: CreatePatientInput!) { createPatient(input: $i) { patient { id } } }",
        {
            "nhsNumber": "9990000018",
            "givenName": "Zara",
            "familyName": "Ali",
            "dateOfBirth": "1990-03-04",
            "postcode": "NW1 4DD",
            "region": "LONDON",
            "latitude": 51.52,
            "longitude": -0.13,
        },
    ),
    "update own patient": (
        "mutation($i: UpdatePatientInput!) { updatePatient(input: $i) { patient { id } } }",
        {"patientId": encode_global_id("Patient", 1), "version": 1, "phone": "07700 900001"},
    ),
    "update other patient": (
        "mutation($i: UpdatePatientInput!) { updatePatient(input: $i) { patient { id } } }",
        {"patientId": encode_global_id("Patient", 2), "version": 1, "phone": "07700 900002"},
    ),
    "refer": (
        "mutation($i: CreateReferralInput!) { createReferral(input: $i) { referral { id } } }",
        {
            "patientId": encode_global_id("Patient", 1),
            "toService": "CARDIOLOGY",
            "priority": "ROUTINE",
            "referrerName": "Dr A Smith",
            "referrerKind": "GP",
        },
    ),
    "triage": (
        "mutation($i: TriageReferralInput!) { triageReferral(input: $i) { referral { id } } }",
        {
            "referralId": encode_global_id("Referral", 1),
            "decision": "REDIRECT",
            "redirectTo": "CARDIOLOGY",
        },
    ),
    "hold own": (
        "mutation($i: HoldSlotInput!) { holdSlot(input: $i) { slot { id } } }",
        {"referralId": encode_global_id("Referral", 1), "slotId": encode_global_id("Slot", 1)},
    ),
    "hold other": (
        "mutation($i: HoldSlotInput!) { holdSlot(input: $i) { slot { id } } }",
        {"referralId": encode_global_id("Referral", 2), "slotId": encode_global_id("Slot", 1)},
    ),
    "cancel own referral": (
        "mutation($i: CancelReferralInput!) { cancelReferral(input: $i) { referral { id } } }",
        {"referralId": encode_global_id("Referral", 1), "reason": "better"},
    ),
    "cancel other referral": (
        "mutation($i: CancelReferralInput!) { cancelReferral(input: $i) { referral { id } } }",
        {"referralId": encode_global_id("Referral", 2), "reason": "better"},
    ),
    "publish roster": (
        "mutation($i: PublishRosterInput!) { publishRoster(input: $i) { slotCount } }",
        {
            "staffId": encode_global_id("Staff", 1),
            "siteId": encode_global_id("Site", 1),
            "service": "CARDIOLOGY",
            "weekdays": [1],
            "starts": "14:00:00",
            "ends": "15:00:00",
            "firstDay": "2031-06-02",
            "lastDay": "2031-06-02",
        },
    ),
}

# "own" is patient 1 and referral 1 (made by gp-smith, the referrer below)
EXPECTED: dict[str, dict[Role, str]] = {
    "create patient": {P: FORBIDDEN, R: OK, C: OK, S: OK, A: OK},
    "update own patient": {P: OK, R: FORBIDDEN, C: OK, S: OK, A: OK},
    "update other patient": {P: NOT_FOUND, R: FORBIDDEN, C: OK, S: OK, A: OK},
    "refer": {P: FORBIDDEN, R: OK, C: OK, S: FORBIDDEN, A: OK},
    "triage": {P: FORBIDDEN, R: FORBIDDEN, C: OK, S: FORBIDDEN, A: OK},
    "hold own": {P: OK, R: FORBIDDEN, C: OK, S: OK, A: OK},
    "hold other": {P: NOT_FOUND, R: FORBIDDEN, C: OK, S: OK, A: OK},
    "cancel own referral": {P: OK, R: OK, C: OK, S: OK, A: OK},
    "cancel other referral": {P: NOT_FOUND, R: NOT_FOUND, C: OK, S: OK, A: OK},
    "publish roster": {P: FORBIDDEN, R: FORBIDDEN, C: OK, S: OK, A: OK},
}


@pytest.fixture
def fresh_world_url(databases: DatabaseFactory) -> str:
    return databases.create(sql=WORLD)


@pytest.mark.parametrize("role", list(CALLERS))
@pytest.mark.parametrize("mutation", list(MUTATIONS))
async def test_permission_matrix(fresh_world_url: str, mutation: str, role: Role) -> None:
    query, input_ = MUTATIONS[mutation]
    subject, patient = CALLERS[role]
    async with asgi_client(fresh_world_url, headers=bearer(role, subject, patient)) as client:
        body = (
            await client.post("/graphql", json={"query": query, "variables": {"i": input_}})
        ).json()
    expected = EXPECTED[mutation][role]
    if expected == OK:
        assert body.get("data"), body
    else:
        assert body["errors"][0]["extensions"]["code"] == expected, body
