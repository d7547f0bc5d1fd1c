"""The FHIR R4 API through real requests on the seeded demo world: every resource it emits
validates against the FHIR models (``fhir.resources``, R4B) and our code bindings; read equals
search; paging, totals and includes; the row rules and read audit of the GraphQL API; and every
refusal an OperationOutcome with a stable code."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir.resources.R4B import get_fhir_model_class

from care_graph.api.errors import ApiErrorCode
from care_graph.auth import Role
from care_graph.errors import ErrorCode
from care_graph.fhir import codes
from care_graph.fhir.outcome import status_of
from care_graph.fhir.resources import RESOURCES
from care_graph.testing import asgi_client, bearer, fetch_one, live_server

BASE = "/fhir/R4"
CLERK = bearer(Role.SCHEDULER, "fhir-clerk")
# FHIR's required bindings, which the models do not check
BINDINGS: dict[str, dict[str, frozenset[str]]] = {
    "ServiceRequest": {
        "status": frozenset(
            {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error", "unknown"}
        ),
        "intent": frozenset({"proposal", "plan", "directive", "order", "original-order"}),
        "priority": frozenset({"routine", "urgent", "asap", "stat"}),
    },
    "Slot": {
        "status": frozenset(
            {"busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error"}
        )
    },
    "Appointment": {
        "status": frozenset(
            {
                "proposed",
                "pending",
                "booked",
                "arrived",
                "fulfilled",
                "cancelled",
                "noshow",
                "entered-in-error",
                "checked-in",
                "waitlist",
            }
        )
    },
    "Location": {"status": frozenset({"active", "suspended", "inactive"})},
}


@pytest.fixture
async def client(own_seeded_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(own_seeded_url, headers=CLERK) as found:
        yield found


def valid(resource: dict[str, Any]) -> dict[str, Any]:
    """``resource``, once it validates against its FHIR model and our required bindings."""
    model = get_fhir_model_class(resource["resourceType"])
    model.model_validate(resource)
    for element, allowed in BINDINGS.get(resource["resourceType"], {}).items():
        if element in resource:
            assert resource[element] in allowed, (resource["resourceType"], element, resource)
    return resource


def outcome_code(response: httpx.Response) -> str:
    """The stable code of an OperationOutcome answer, once it validates."""
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = valid(response.json())
    assert body["resourceType"] == "OperationOutcome"
    [issue] = body["issue"]
    code: str = issue["details"]["coding"][0]["code"]
    assert response.status_code == status_of(
        ErrorCode(code) if code in ErrorCode.__members__ else ApiErrorCode(code)
    )
    return code


async def test_metadata_lists_exactly_what_is_declared(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{BASE}/metadata", headers={"Authorization": ""})
    assert response.status_code == 200
    statement = valid(response.json())
    [rest] = statement["rest"]
    assert [entry["type"] for entry in rest["resource"]] == list(RESOURCES)
    service_request = next(e for e in rest["resource"] if e["type"] == "ServiceRequest")
    assert {p["name"] for p in service_request["searchParam"]} == {
        p.name for p in RESOURCES["ServiceRequest"].params
    }
    assert service_request["searchInclude"] == ["ServiceRequest:patient"]
    assert {"read", "search-type", "create"} == {i["code"] for i in service_request["interaction"]}
    appointment = next(e for e in rest["resource"] if e["type"] == "Appointment")
    assert [op["name"] for op in appointment["operation"]] == ["find", "hold", "book"]
    assert rest["interaction"] == [{"code": "transaction"}]


@pytest.mark.parametrize("name", list(RESOURCES))
async def test_every_resource_validates_and_reads_as_it_searches(
    client: httpx.AsyncClient, name: str
) -> None:
    response = await client.get(f"{BASE}/{name}", params={"_count": "5"})
    assert response.status_code == 200, response.text
    bundle = valid(response.json())
    assert bundle["type"] == "searchset"
    entries = bundle["entry"]
    assert 1 <= len(entries) <= 5
    for entry in entries:
        resource = valid(entry["resource"])
        assert entry["fullUrl"].endswith(f"{BASE}/{name}/{resource['id']}")
        read = await client.get(f"{BASE}/{name}/{resource['id']}")
        assert read.status_code == 200
        assert read.json() == resource


async def test_paging_walks_every_referral_once_and_back(
    client: httpx.AsyncClient, own_seeded_url: str
) -> None:
    [expected] = await fetch_one(own_seeded_url, "SELECT count(*) FROM referrals")
    seen: list[int] = []
    pages = []
    url: str | None = f"{BASE}/ServiceRequest?_count=100&_total=accurate"
    while url is not None:
        bundle = (await client.get(url)).json()
        assert bundle["total"] == expected
        pages.append(bundle)
        seen += [int(entry["resource"]["id"]) for entry in bundle.get("entry", [])]
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert seen == sorted(set(seen))
    assert len(seen) == expected
    previous = next(link["url"] for link in pages[1]["link"] if link["relation"] == "previous")
    back = (await client.get(previous)).json()
    assert [e["resource"]["id"] for e in back["entry"]] == [
        e["resource"]["id"] for e in pages[0]["entry"]
    ]


async def test_include_brings_each_referral_patient(client: httpx.AsyncClient) -> None:
    bundle = valid(
        (
            await client.get(
                f"{BASE}/ServiceRequest",
                params={"_count": "10", "_include": "ServiceRequest:patient"},
            )
        ).json()
    )
    matches = [e["resource"] for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = {e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert {m["subject"]["reference"].split("/")[1] for m in matches} == included


async def test_search_parameters_filter_as_declared(
    client: httpx.AsyncClient, own_seeded_url: str
) -> None:
    [patient, nhs, family, born] = await fetch_one(
        own_seeded_url,
        "SELECT id, nhs_number, family_name, date_of_birth::text FROM patients ORDER BY id LIMIT 1",
    )

    async def ids(name: str, **params: str) -> set[str]:
        bundle = (await client.get(f"{BASE}/{name}", params={"_count": "100", **params})).json()
        return {entry["resource"]["id"] for entry in bundle.get("entry", [])}

    assert await ids("Patient", identifier=f"{codes.NHS_NUMBER}|{nhs}") == {str(patient)}
    assert await ids("Patient", identifier=f"http://other.example|{nhs}") == set()
    assert str(patient) in await ids("Patient", family=family[:3].lower(), birthdate=born)
    active = await ids("ServiceRequest", status="active", patient=f"Patient/{patient}")
    [wanted] = await fetch_one(
        own_seeded_url,
        "SELECT coalesce(array_agg(id::text), '{}') FROM referrals"
        " WHERE patient_id = $1 AND status IN ('SUBMITTED', 'ACCEPTED', 'BOOKED')",
        patient,
    )
    assert active == set(wanted)
    [day] = await fetch_one(own_seeded_url, "SELECT min(starts_at)::date::text FROM slots")
    on_day = await ids("Slot", start=f"ge{day}T00:00:00+00:00", _count="10")
    assert on_day


async def test_patients_see_only_their_own_records_and_reads_are_audited(
    own_seeded_url: str,
) -> None:
    [mine, theirs] = await fetch_one(
        own_seeded_url,
        "SELECT min(id), max(id) FROM (SELECT id FROM patients ORDER BY id LIMIT 2) p",
    )
    [before] = await fetch_one(
        own_seeded_url, "SELECT count(*) FROM audit_events WHERE record_type = 'patient'"
    )
    async with asgi_client(own_seeded_url, headers=bearer(Role.PATIENT, "p-1", mine)) as client:
        assert (await client.get(f"{BASE}/Patient/{mine}")).status_code == 200
        assert outcome_code(await client.get(f"{BASE}/Patient/{theirs}")) == "NOT_FOUND"
        bundle = (await client.get(f"{BASE}/ServiceRequest", params={"_count": "100"})).json()
        subjects = {e["resource"]["subject"]["reference"] for e in bundle.get("entry", [])}
        assert subjects <= {f"Patient/{mine}"}
    [after] = await fetch_one(
        own_seeded_url, "SELECT count(*) FROM audit_events WHERE record_type = 'patient'"
    )
    assert after == before + 1  # the read shown; the one refused was never read


async def test_every_refusal_is_an_operation_outcome_with_a_code(client: httpx.AsyncClient) -> None:
    assert outcome_code(await client.get(f"{BASE}/Nonsense")) == "NOT_FOUND"
    assert outcome_code(await client.get(f"{BASE}/Patient/abc")) == "NOT_FOUND"
    assert (
        outcome_code(await client.get(f"{BASE}/Patient", params={"_count": "101"}))
        == "INVALID_ARGUMENT"
    )
    assert (
        outcome_code(await client.get(f"{BASE}/Patient", params={"birthdate": "yesterday"}))
        == "INVALID_ARGUMENT"
    )
    assert (
        outcome_code(await client.get(f"{BASE}/Patient", headers={"Authorization": ""}))
        == "UNAUTHENTICATED"
    )
    assert outcome_code(await client.post(f"{BASE}/Patient", json={})) == "METHOD_NOT_ALLOWED"
    refused = await client.get(f"{BASE}/Patient", headers={"Accept": "text/html"})
    assert refused.status_code == 406
    strict = await client.get(
        f"{BASE}/Patient", params={"colour": "blue"}, headers={"Prefer": "handling=strict"}
    )
    assert outcome_code(strict) == "INVALID_ARGUMENT"
    lenient = valid(
        (await client.get(f"{BASE}/Patient", params={"colour": "blue", "_count": "1"})).json()
    )
    [warning] = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert "colour" in warning["resource"]["issue"][0]["diagnostics"]
    assert all("colour" not in link["url"] for link in lenient["link"])


def test_the_docs_table_is_the_declarations() -> None:
    docs = (Path(__file__).parent.parent / "docs" / "fhir.md").read_text()
    for resource in RESOURCES.values():
        elements = ", ".join(f"`{element}`" for element in resource.elements)
        params = ", ".join(f"`{param.name}`" for param in resource.params)
        includes = ", ".join(f"`{resource.name}:{i.name}`" for i in resource.includes) or "—"
        row = f"| {resource.name} | `{resource.table}` | {elements} | {params} | {includes} |"
        assert row in docs, f"docs/fhir.md's table is out of date for {resource.name}"


async def test_served_over_a_real_socket(own_seeded_url: str) -> None:
    async with (
        live_server(own_seeded_url) as address,
        httpx.AsyncClient(base_url=f"http://{address}", headers=CLERK) as client,
    ):
        bundle = valid((await client.get(f"{BASE}/Location", params={"_count": "2"})).json())
        next_page = next(link["url"] for link in bundle["link"] if link["relation"] == "next")
        assert next_page.startswith(f"http://{address}{BASE}/Location?")
        assert valid((await client.get(next_page)).json())["entry"]


def _first(items: Any) -> Any:
    return items[0] if isinstance(items, list) and items else None


def _code(concept: Any) -> str | None:
    coding = _first((concept or {}).get("coding"))
    return None if coding is None else coding.get("code")


def _actor(resource: dict[str, Any], kind: str) -> str | None:
    return next(
        (
            p["actor"]["reference"]
            for p in resource.get("participant", [])
            if p["actor"]["reference"].startswith(f"{kind}/")
        ),
        None,
    )


def _km(resource: dict[str, Any], latitude: float, longitude: float) -> float:
    from math import asin, cos, radians, sin, sqrt

    here = resource["position"]
    la1, lo1, la2, lo2 = map(radians, (latitude, longitude, here["latitude"], here["longitude"]))
    half = sin((la2 - la1) / 2) ** 2 + cos(la1) * cos(la2) * sin((lo2 - lo1) / 2) ** 2
    return 2 * 6371.0088 * asin(sqrt(half))


def _starts(text: str | None, prefix: str) -> bool:
    return text is not None and text.lower().startswith(prefix.lower())


Value = Callable[[dict[str, Any]], str | None]
Matches = Callable[[dict[str, Any], str], bool]
# each search parameter: the value to search for, taken from a resource's own JSON, and whether
# a resource found matches it, judged from its JSON alone (never from the SQL it was found by)
SEMANTICS: dict[tuple[str, str], tuple[Value, Matches]] = {
    ("Patient", "identifier"): (
        lambda r: f"{codes.NHS_NUMBER}|{r['identifier'][0]['value']}",
        lambda r, v: r["identifier"][0]["value"] == v.split("|")[1],
    ),
    ("Patient", "family"): (
        lambda r: r["name"][0]["family"][:3],
        lambda r, v: _starts(r["name"][0]["family"], v),
    ),
    ("Patient", "given"): (
        lambda r: r["name"][0]["given"][0][:2],
        lambda r, v: _starts(r["name"][0]["given"][0], v),
    ),
    ("Patient", "birthdate"): (lambda r: r["birthDate"], lambda r, v: r["birthDate"] == v),
    ("ServiceRequest", "identifier"): (
        lambda r: r["identifier"][0]["value"],
        lambda r, v: r["identifier"][0]["value"] == v,
    ),
    ("ServiceRequest", "status"): (lambda r: r["status"], lambda r, v: r["status"] == v),
    ("ServiceRequest", "priority"): (lambda r: r["priority"], lambda r, v: r["priority"] == v),
    ("ServiceRequest", "patient"): (
        lambda r: r["subject"]["reference"],
        lambda r, v: r["subject"]["reference"] == v,
    ),
    ("ServiceRequest", "subject"): (
        lambda r: r["subject"]["reference"].split("/")[1],
        lambda r, v: r["subject"]["reference"] == f"Patient/{v}",
    ),
    ("Appointment", "patient"): (
        lambda r: _actor(r, "Patient"),
        lambda r, v: _actor(r, "Patient") == v,
    ),
    ("Appointment", "status"): (lambda r: r["status"], lambda r, v: r["status"] == v),
    ("Appointment", "date"): (lambda r: "ge" + r["start"], lambda r, v: r["start"] >= v[2:]),
    ("Appointment", "slot"): (
        lambda r: r["slot"][0]["reference"],
        lambda r, v: r["slot"][0]["reference"] == v,
    ),
    ("Appointment", "based-on"): (
        lambda r: r["basedOn"][0]["reference"],
        lambda r, v: r["basedOn"][0]["reference"] == v,
    ),
    ("Slot", "schedule"): (
        lambda r: r["schedule"]["reference"],
        lambda r, v: r["schedule"]["reference"] == v,
    ),
    ("Slot", "service-type"): (
        lambda r: _code(r["serviceType"][0]),
        lambda r, v: _code(r["serviceType"][0]) == v,
    ),
    ("Slot", "start"): (lambda r: "le" + r["start"], lambda r, v: r["start"] <= v[2:]),
    ("Slot", "status"): (lambda r: r["status"], lambda r, v: r["status"] == v),
    ("Schedule", "actor"): (
        lambda r: r["actor"][0]["reference"],
        lambda r, v: r["actor"][0]["reference"] == v,
    ),
    ("HealthcareService", "name"): (
        lambda r: r["name"][:4],
        lambda r, v: _starts(r["name"], v),
    ),
    ("HealthcareService", "service-type"): (
        lambda r: _code(r["type"][0]),
        lambda r, v: _code(r["type"][0]) == v,
    ),
    ("HealthcareService", "service-category"): (
        lambda r: _code(r["category"][0]),
        lambda r, v: _code(r["category"][0]) == v,
    ),
    ("HealthcareService", "location"): (
        lambda r: _first(r.get("location") or [{}]).get("reference"),
        lambda r, v: v in [one["reference"] for one in r.get("location", [])],
    ),
    ("Location", "name"): (lambda r: r["name"][:3], lambda r, v: _starts(r["name"], v)),
    ("Location", "address-postalcode"): (
        lambda r: r["address"]["postalCode"][:2],
        lambda r, v: _starts(r["address"]["postalCode"], v),
    ),
    ("Location", "near"): (
        lambda r: f"{r['position']['latitude']}|{r['position']['longitude']}|25|km",
        lambda r, v: _km(r, float(v.split("|")[0]), float(v.split("|")[1])) <= 25.01,
    ),
    ("PractitionerRole", "practitioner"): (
        lambda r: r["practitioner"]["reference"],
        lambda r, v: r["practitioner"]["reference"] == v,
    ),
    ("PractitionerRole", "role"): (
        lambda r: _code(r["code"][0]),
        lambda r, v: _code(r["code"][0]) == v,
    ),
    ("PractitionerRole", "specialty"): (
        lambda r: _code(_first(r.get("specialty"))),
        lambda r, v: v in [_code(one) for one in r.get("specialty", [])],
    ),
    ("PractitionerRole", "location"): (
        lambda r: r["location"][0]["reference"],
        lambda r, v: r["location"][0]["reference"] == v,
    ),
    ("Practitioner", "family"): (
        lambda r: r["name"][0]["family"][:3],
        lambda r, v: _starts(r["name"][0]["family"], v),
    ),
    ("Practitioner", "given"): (
        lambda r: r["name"][0]["given"][0][:2],
        lambda r, v: _starts(r["name"][0]["given"][0], v),
    ),
}
COMMON = {"_id", "_lastUpdated"}  # tested for every resource below


def test_every_search_parameter_is_tested() -> None:
    declared = {
        (resource.name, param.name)
        for resource in RESOURCES.values()
        for param in resource.params
        if param.name not in COMMON
    }
    assert declared == set(SEMANTICS)


@pytest.mark.parametrize(("name", "parameter"), sorted(SEMANTICS), ids="{0[0]}-{0[1]}".format)
async def test_each_search_parameter_finds_what_it_says(
    client: httpx.AsyncClient, name: str, parameter: str
) -> None:
    value_of, matches = SEMANTICS[(name, parameter)]
    page = (await client.get(f"{BASE}/{name}", params={"_count": "100"})).json()
    chosen = next(
        entry["resource"] for entry in page["entry"] if value_of(entry["resource"]) is not None
    )
    value = value_of(chosen)
    assert value is not None
    found = (await client.get(f"{BASE}/{name}", params={parameter: value, "_count": "100"})).json()
    resources = [valid(entry["resource"]) for entry in found.get("entry", [])]
    assert resources, (parameter, value)
    assert all(matches(resource, value) for resource in resources), (parameter, value)
    itself = await client.get(f"{BASE}/{name}", params={parameter: value, "_id": chosen["id"]})
    assert [entry["resource"]["id"] for entry in itself.json()["entry"]] == [chosen["id"]]


@pytest.mark.parametrize("name", list(RESOURCES))
async def test_id_and_last_updated_search_every_resource(
    client: httpx.AsyncClient, name: str
) -> None:
    page = (await client.get(f"{BASE}/{name}", params={"_count": "3"})).json()
    ids = [entry["resource"]["id"] for entry in page["entry"]]
    found = (await client.get(f"{BASE}/{name}", params={"_id": ",".join(ids[:2])})).json()
    assert sorted(entry["resource"]["id"] for entry in found["entry"]) == sorted(ids[:2])
    if RESOURCES[name].param("_lastUpdated") is not None:
        updated = page["entry"][0]["resource"]["meta"]["lastUpdated"]
        later = (await client.get(f"{BASE}/{name}", params={"_lastUpdated": f"gt{updated}"})).json()
        assert all(
            entry["resource"]["meta"]["lastUpdated"] > updated for entry in later.get("entry", [])
        )
        since = (await client.get(f"{BASE}/{name}", params={"_lastUpdated": f"ge{updated}"})).json()
        assert page["entry"][0]["resource"]["id"] in [e["resource"]["id"] for e in since["entry"]]


async def test_hostile_values_are_refused_with_a_code_never_a_failure(
    client: httpx.AsyncClient,
) -> None:
    superscript_two = "\u00b2"  # a digit to str.isdigit, not to int()
    assert outcome_code(await client.get(f"{BASE}/Patient/{superscript_two}")) == "NOT_FOUND"
    for params in (
        {"_count": superscript_two},
        {"_count": "9" * 5000},
        {"_after": "9" * 5000},
        {"family": "\x00"},
        {"birthdate": "eq0001-01-01T00:00:00+01:00"},
        {"x" * 65: "1"},
    ):
        assert outcome_code(await client.get(f"{BASE}/Patient", params=params)) == (
            "INVALID_ARGUMENT"
        ), params
    slots = await client.get(f"{BASE}/Slot", params={"start": "gt0001-01-01T00:00:00+01:00"})
    assert outcome_code(slots) == "INVALID_ARGUMENT"
    assert outcome_code(await client.get(f"{BASE}/Patient/1/_history")) == "NOT_FOUND"


async def test_an_include_asked_twice_brings_each_record_once(client: httpx.AsyncClient) -> None:
    twice: list[tuple[str, str | int | float | bool | None]] = [
        ("_count", "10"),
        *[("_include", "ServiceRequest:patient")] * 2,
    ]
    bundle = (await client.get(f"{BASE}/ServiceRequest", params=twice)).json()
    included = [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert included
    assert len(included) == len(set(included))
    assert all("identifier" not in e["resource"].get("requester", {}) for e in bundle["entry"])
