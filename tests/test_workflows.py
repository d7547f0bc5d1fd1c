"""Patients, referrals, rescheduling, attendance and capacity through the GraphQL endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from care_graph.api.ids import encode_global_id
from care_graph.auth import Role
from care_graph.db.pool import connect
from care_graph.testing import DatabaseFactory, asgi_client, bearer
from tests.test_auth import WORLD

CLERK = bearer(Role.SCHEDULER, "clerk")
CLINICIAN = bearer(Role.CLINICIAN, "dr-who")
REFERRER = bearer(Role.REFERRER, "gp-smith")
PATIENT_1 = bearer(Role.PATIENT, "patient-1", 1)


def gid(type_name: str, key: int) -> str:
    return encode_global_id(type_name, key)


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


async def gql(
    client: httpx.AsyncClient, query: str, headers: dict[str, str], **input_: Any
) -> dict[str, Any]:
    response = await client.post(
        "/graphql", json={"query": query, "variables": {"i": input_}}, headers=headers
    )
    body: dict[str, Any] = response.json()
    return body


def code(body: dict[str, Any]) -> str:
    value: str = body["errors"][0]["extensions"]["code"]
    return value


CREATE_PATIENT = """mutation($i: CreatePatientInput!) { createPatient(input: $i) {
  patient { id nhsNumber version } } }"""
UPDATE_PATIENT = """mutation($i: UpdatePatientInput!) { updatePatient(input: $i) {
  patient { phone version } } }"""
CREATE_REFERRAL = """mutation($i: CreateReferralInput!) { createReferral(input: $i) {
  referral { id status priority breachDate fhirStatus patient { nhsNumber } } } }"""
TRIAGE = """mutation($i: TriageReferralInput!) { triageReferral(input: $i) {
  referral { id status priority breachDate redirectedFrom { id } toService { code } } } }"""
CANCEL_REFERRAL = """mutation($i: CancelReferralInput!) { cancelReferral(input: $i) {
  referral { status appointments { nodes { status } } } } }"""
BOOK = """mutation($i: BookAppointmentInput!) { bookAppointment(input: $i) {
  appointment { id } } }"""
RESCHEDULE = """mutation($i: RescheduleAppointmentInput!) { rescheduleAppointment(input: $i) {
  appointment { id status slot { id } rebookedFrom { id status slot { status } } } } }"""
ATTENDANCE = """mutation($i: RecordAttendanceInput!) { recordAttendance(input: $i) {
  appointment { status nonAttendanceReason referral { status } } } }"""
PUBLISH = """mutation($i: PublishRosterInput!) { publishRoster(input: $i) { slotCount } }"""
BLOCK = """mutation($i: BlockSlotsInput!) { blockSlots(input: $i) {
  cancelledAppointments { status cancellationReason slot { status }
                          referral { status } } } }"""

NEW_PATIENT = {
    "nhsNumber": "999 000 0018",
    "givenName": "Zara",
    "familyName": "Ali",
    "dateOfBirth": "1990-03-04",
    "postcode": "NW1 4DD",
    "region": "LONDON",
    "latitude": 51.52,
    "longitude": -0.13,
}


async def test_register_and_update_a_patient(client: httpx.AsyncClient) -> None:
    created = await gql(client, CREATE_PATIENT, CLERK, **NEW_PATIENT)
    patient = created["data"]["createPatient"]["patient"]
    assert (patient["nhsNumber"], patient["version"]) == ("9990000018", 1)
    assert code(await gql(client, CREATE_PATIENT, CLERK, **NEW_PATIENT)) == "ALREADY_EXISTS"
    bad = {**NEW_PATIENT, "nhsNumber": "9990000019"}
    assert code(await gql(client, CREATE_PATIENT, CLERK, **bad)) == "INVALID_NHS_NUMBER"
    assert code(await gql(client, CREATE_PATIENT, PATIENT_1, **NEW_PATIENT)) == "FORBIDDEN"
    updated = await gql(
        client, UPDATE_PATIENT, CLERK, patientId=patient["id"], version=1, phone="07700 900123"
    )
    assert updated["data"]["updatePatient"]["patient"] == {"phone": "07700 900123", "version": 2}
    stale = await gql(
        client, UPDATE_PATIENT, CLERK, patientId=patient["id"], version=1, phone="07700 900999"
    )
    assert code(stale) == "STALE_WRITE"


MOVE_PATIENT = """mutation($i: UpdatePatientInput!) { updatePatient(input: $i) {
  patient { postcode latitude longitude version } } }"""
NEAR_SLOTS = """query($id: ID!) { node(id: $id) { ... on Referral {
  candidateSlots(first: 20) { totalCount } } } }"""


async def test_a_patient_who_moves_is_measured_from_the_new_home(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    await db.execute("UPDATE referrals SET max_travel_km = 10 WHERE id = 1")

    async def near_slots() -> int:
        response = await client.post(
            "/graphql",
            json={"query": NEAR_SLOTS, "variables": {"id": gid("Referral", 1)}},
            headers=CLERK,
        )
        count: int = response.json()["data"]["node"]["candidateSlots"]["totalCount"]
        return count

    assert await near_slots() == 10  # Camden General is 1 km from home
    half = {"patientId": gid("Patient", 1), "version": 1, "postcode": "M14 5AB"}
    refused = await gql(client, MOVE_PATIENT, CLERK, **half)
    assert code(refused) == "INVALID_ARGUMENT"
    assert refused["errors"][0]["message"] == (
        "a new address needs its postcode, latitude and longitude together"
    )
    off_the_globe = await gql(client, MOVE_PATIENT, CLERK, **half, latitude=95.0, longitude=0.0)
    assert off_the_globe["errors"][0]["message"] == "coordinates out of range"
    moved = await gql(client, MOVE_PATIENT, CLERK, **half, latitude=53.45, longitude=-2.22)
    assert moved["data"]["updatePatient"]["patient"] == {
        "postcode": "M14 5AB",
        "latitude": 53.45,
        "longitude": -2.22,
        "version": 2,
    }
    reach = await db.fetchval(
        "SELECT reach ~= reach_box(53.45, -2.22, 10) FROM referrals WHERE id = 1"
    )
    assert reach is True
    assert await near_slots() == 0  # Manchester is 260 km from Camden


async def test_refer_triage_and_redirect(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    made = await gql(
        client,
        CREATE_REFERRAL,
        REFERRER,
        patientId=gid("Patient", 1),
        toService="CARDIOLOGY",
        priority="ROUTINE",
        referrerName="Dr A Smith",
        referrerKind="GP",
    )
    referral = made["data"]["createReferral"]["referral"]
    assert (referral["status"], referral["fhirStatus"]) == ("SUBMITTED", "active")
    assert referral["breachDate"] == (date.today() + timedelta(days=126)).isoformat()
    accepted = await gql(
        client, TRIAGE, CLINICIAN, referralId=referral["id"], decision="ACCEPT", priority="URGENT"
    )
    settled = accepted["data"]["triageReferral"]["referral"]
    assert (settled["status"], settled["priority"]) == ("ACCEPTED", "URGENT")
    assert settled["breachDate"] == (date.today() + timedelta(days=14)).isoformat()
    again = await gql(
        client, TRIAGE, CLINICIAN, referralId=referral["id"], decision="REJECT", reason="duplicate"
    )
    assert code(again) == "INVALID_TRANSITION"
    assert again["errors"][0]["message"] == "a referral that is ACCEPTED cannot become REJECTED"
    assert (
        code(await gql(client, TRIAGE, REFERRER, referralId=referral["id"], decision="ACCEPT"))
        == "FORBIDDEN"
    )
    made = await gql(
        client,
        CREATE_REFERRAL,
        REFERRER,
        patientId=gid("Patient", 1),
        toService="CARDIOLOGY",
        priority="ROUTINE",
        referrerName="Dr A Smith",
        referrerKind="GP",
    )
    second = made["data"]["createReferral"]["referral"]["id"]
    assert (
        code(await gql(client, TRIAGE, CLINICIAN, referralId=second, decision="REJECT"))
        == "INVALID_ARGUMENT"
    )
    await db.execute(
        "INSERT INTO skills VALUES ('DERMATOLOGY', 'Dermatology');"
        "INSERT INTO services (code, name, kind, slot_minutes)"
        " VALUES ('DERMATOLOGY', 'Dermatology', 'SPECIALTY', 15)"
    )
    redirected = await gql(
        client, TRIAGE, CLINICIAN, referralId=second, decision="REDIRECT", redirectTo="DERMATOLOGY"
    )
    new = redirected["data"]["triageReferral"]["referral"]
    assert new["status"] == "SUBMITTED"
    assert new["redirectedFrom"] == {"id": second}
    assert new["toService"] == {"code": "DERMATOLOGY"}
    clocks = await db.fetch(
        "SELECT r.id, r.clock_start FROM referrals r"
        " WHERE r.id IN (SELECT redirected_from_id FROM referrals"
        " WHERE redirected_from_id IS NOT NULL) OR r.redirected_from_id"
        " IS NOT NULL ORDER BY r.id"
    )
    assert clocks[0]["clock_start"] == clocks[1]["clock_start"]  # the wait carries on


async def test_a_referral_needs_a_skill_that_exists(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    referral = {
        "patientId": gid("Patient", 1),
        "toService": "CARDIOLOGY",
        "priority": "ROUTINE",
        "referrerName": "Dr A Smith",
        "referrerKind": "GP",
    }
    refused = await gql(client, CREATE_REFERRAL, REFERRER, **referral, requiredSkill="SEDATION")
    assert refused["errors"] == [
        {
            "message": "unknown skill 'SEDATION'",
            "locations": [{"line": 1, "column": 38}],
            "path": ["createReferral"],
            "extensions": {"code": "INVALID_ARGUMENT"},
        }
    ]
    assert await db.fetchval("SELECT count(*) FROM referrals") == 2
    await db.execute("INSERT INTO skills VALUES ('SEDATION', 'Conscious sedation')")
    made = await gql(client, CREATE_REFERRAL, REFERRER, **referral, requiredSkill="SEDATION")
    assert made["data"]["createReferral"]["referral"]["status"] == "SUBMITTED"


@pytest.mark.parametrize(
    ("sites", "expected"), [(None, "ACCEPTED"), ((1, 2), "ACCEPTED"), ((2,), "FORBIDDEN")]
)
async def test_site_bound_clinicians_triage_for_their_sites_services(
    client: httpx.AsyncClient,
    db: asyncpg.Connection[Any],
    sites: tuple[int, ...] | None,
    expected: str,
) -> None:
    await db.execute(
        "INSERT INTO skills VALUES ('DERMATOLOGY', 'Dermatology');"
        "INSERT INTO services (id, code, name, kind, slot_minutes)"
        " VALUES (2, 'DERMATOLOGY', 'Dermatology', 'SPECIALTY', 15);"
        "INSERT INTO sites (id, code, name, region_code, town, postcode, latitude, longitude)"
        " VALUES (2, 'S2', 'Kentish Town Skin Clinic', 'LONDON', 'Camden', 'NW5 1AA', 51.55,"
        " -0.14);"
        "INSERT INTO site_services VALUES (2, 2)"
    )
    made = await gql(
        client,
        CREATE_REFERRAL,
        REFERRER,
        patientId=gid("Patient", 1),
        toService="CARDIOLOGY",  # offered at site 1 only
        priority="ROUTINE",
        referrerName="Dr A Smith",
        referrerKind="GP",
    )
    referral = made["data"]["createReferral"]["referral"]["id"]
    clinician = bearer(Role.CLINICIAN, "dr-who", site_ids=sites)
    triaged = await gql(client, TRIAGE, clinician, referralId=referral, decision="ACCEPT")
    if expected == "ACCEPTED":
        assert triaged["data"]["triageReferral"]["referral"]["status"] == "ACCEPTED"
    else:
        assert code(triaged) == "FORBIDDEN"
        assert triaged["errors"][0]["message"] == (
            "the referral's service is not offered at your sites"
        )
        status = await db.fetchval("SELECT status FROM referrals ORDER BY id DESC LIMIT 1")
        assert status == "SUBMITTED"


async def test_reschedule_links_and_moves(client: httpx.AsyncClient) -> None:
    booked = await gql(client, BOOK, CLERK, referralId=gid("Referral", 1), slotId=gid("Slot", 1))
    first = booked["data"]["bookAppointment"]["appointment"]["id"]
    moved = await gql(client, RESCHEDULE, CLERK, appointmentId=first, slotId=gid("Slot", 2))
    appointment = moved["data"]["rescheduleAppointment"]["appointment"]
    assert appointment["status"] == "BOOKED"
    assert appointment["slot"] == {"id": gid("Slot", 2)}
    assert appointment["rebookedFrom"] == {
        "id": first,
        "status": "CANCELLED",
        "slot": {"status": "BUSY_TENTATIVE"},  # freed, and at once offered to someone waiting
    }


async def _has_started(db: asyncpg.Connection[Any], slot: int) -> None:
    """Let time pass: the slot's appointment is over (it started ``slot`` hours ago, so that
    the same clinician's slots never overlap)."""
    await db.execute(
        "UPDATE slots SET starts_at = now() - make_interval(hours => $1::int),"
        " ends_at = now() - make_interval(hours => $1::int) + (ends_at - starts_at) WHERE id = $1",
        slot,
    )


async def test_a_first_appointment_missed_restarts_the_clock(
    client: httpx.AsyncClient,
    db: asyncpg.Connection[Any],
) -> None:
    await db.execute("UPDATE referrals SET clock_start = now() - interval '60 days' WHERE id = 1")
    booked = await gql(client, BOOK, CLERK, referralId=gid("Referral", 1), slotId=gid("Slot", 3))
    appointment = booked["data"]["bookAppointment"]["appointment"]["id"]
    early = await gql(client, ATTENDANCE, CLERK, appointmentId=appointment, attended=True)
    assert code(early) == "INVALID_TRANSITION"  # not before the appointment has started
    assert await db.fetchval("SELECT status FROM appointments") == "booked"
    await _has_started(db, 3)
    missed = await gql(
        client,
        ATTENDANCE,
        CLERK,
        appointmentId=appointment,
        attended=False,
        reason="PATIENT_FORGOT",
    )
    assert missed["data"]["recordAttendance"]["appointment"] == {
        "status": "NOSHOW",
        "nonAttendanceReason": "PATIENT_FORGOT",
        "referral": {"status": "ACCEPTED"},
    }
    events = await db.fetch(
        "SELECT kind FROM referral_clock_events WHERE referral_id = 1 ORDER BY id"
    )
    assert [event["kind"] for event in events][-2:] == ["NULLIFIED", "STARTED"]
    restarted = await db.fetchval(
        "SELECT clock_start > now() - interval '1 minute' FROM referrals WHERE id = 1"
    )
    assert restarted is True
    booked = await gql(client, BOOK, CLERK, referralId=gid("Referral", 1), slotId=gid("Slot", 4))
    second = booked["data"]["bookAppointment"]["appointment"]["id"]
    await _has_started(db, 4)
    seen = await gql(client, ATTENDANCE, CLERK, appointmentId=second, attended=True)
    assert seen["data"]["recordAttendance"]["appointment"]["referral"] == {"status": "COMPLETED"}
    assert (
        code(await gql(client, ATTENDANCE, PATIENT_1, appointmentId=second, attended=True))
        == "FORBIDDEN"
    )


async def test_cancelling_a_booked_referral_frees_its_slot(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    await gql(client, BOOK, CLERK, referralId=gid("Referral", 1), slotId=gid("Slot", 5))
    cancelled = await gql(
        client, CANCEL_REFERRAL, PATIENT_1, referralId=gid("Referral", 1), reason="feeling better"
    )
    assert cancelled["data"]["cancelReferral"]["referral"] == {
        "status": "CANCELLED",
        "appointments": {"nodes": [{"status": "CANCELLED"}]},
    }
    # the freed slot is offered at once to a referral still waiting
    held = await db.fetchrow("SELECT status, held_for_referral_id FROM slots WHERE id = 5")
    assert held is not None
    assert held["status"] == "busy-tentative"
    assert held["held_for_referral_id"] not in (None, 1)
    other = await gql(
        client, CANCEL_REFERRAL, PATIENT_1, referralId=gid("Referral", 2), reason="not mine"
    )
    assert code(other) == "NOT_FOUND"


async def test_publish_a_roster_and_block_a_booked_slot(
    client: httpx.AsyncClient, db: asyncpg.Connection[Any]
) -> None:
    monday = date.today() + timedelta(days=14 - date.today().weekday())
    roster = {
        "staffId": gid("Staff", 1),
        "siteId": gid("Site", 1),
        "service": "CARDIOLOGY",
        "weekdays": [1, 3],
        "starts": "09:00:00",
        "ends": "11:00:00",
        "firstDay": monday.isoformat(),
        "lastDay": (monday + timedelta(days=6)).isoformat(),
    }
    published = await gql(client, PUBLISH, CLERK, **roster)
    assert published["data"]["publishRoster"] == {"slotCount": 12}  # 2 days x 6 x 20 minutes
    # new capacity goes straight to the waiting list: both waiting referrals get an offer
    held = await db.fetch("SELECT held_for_referral_id FROM slots WHERE status = 'busy-tentative'")
    assert sorted(row["held_for_referral_id"] for row in held) == [1, 2]
    assert code(await gql(client, PUBLISH, CLERK, **roster)) == "ROSTER_OVERLAP"
    assert code(await gql(client, PUBLISH, REFERRER, **roster)) == "FORBIDDEN"
    await gql(client, BOOK, CLERK, referralId=gid("Referral", 2), slotId=gid("Slot", 6))
    blocked = await gql(client, BLOCK, CLERK, slotIds=[gid("Slot", 6), gid("Slot", 7)])
    assert blocked["data"]["blockSlots"]["cancelledAppointments"] == [
        {
            "status": "CANCELLED",
            "cancellationReason": "CLINIC_CANCELLED",
            "slot": {"status": "BUSY_UNAVAILABLE"},
            "referral": {"status": "ACCEPTED"},
        }
    ]


@pytest.mark.parametrize(
    ("sites", "expected"), [(None, "BOOKED"), ((1,), "BOOKED"), ((2, 3), "FORBIDDEN")]
)
async def test_clinic_staff_act_only_at_their_sites(
    client: httpx.AsyncClient, sites: tuple[int, ...] | None, expected: str
) -> None:
    clerk = bearer(Role.SCHEDULER, "clerk-2", site_ids=sites)
    booked = await gql(client, BOOK, clerk, referralId=gid("Referral", 2), slotId=gid("Slot", 9))
    if expected == "BOOKED":
        assert booked["data"]["bookAppointment"]["appointment"]["id"]
    else:
        assert code(booked) == "FORBIDDEN"
        monday = date.today() + timedelta(days=14 - date.today().weekday())
        roster = {
            "staffId": gid("Staff", 1),
            "siteId": gid("Site", 1),
            "service": "CARDIOLOGY",
            "weekdays": [2],
            "starts": "09:00:00",
            "ends": "10:00:00",
            "firstDay": monday.isoformat(),
            "lastDay": monday.isoformat(),
        }
        assert code(await gql(client, PUBLISH, clerk, **roster)) == "FORBIDDEN"
        assert code(await gql(client, BLOCK, clerk, slotIds=[gid("Slot", 9)])) == "FORBIDDEN"
