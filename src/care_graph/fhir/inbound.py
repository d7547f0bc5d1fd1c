"""Reading an inbound referral — a ServiceRequest posted alone, or a transaction Bundle of a
Patient and a ServiceRequest — into the domain's ``InboundReferral`` (domain/intake.py).

Only the elements docs/fhir.md lists are read; others are ignored. A required element that is
missing or malformed is refused (INVALID_ARGUMENT) naming it, before any work."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeGuard, TypeVar

from care_graph.domain.intake import InboundReferral, NewPatient, Registration
from care_graph.domain.referrals import Constraints
from care_graph.fhir import codes
from care_graph.fhir.outcome import invalid
from care_graph.fhir.values import key_of, plain_text

GEOLOCATION = "http://hl7.org/fhir/StructureDefinition/geolocation"
MAX_ENTRIES = 2  # a transaction carries one referral and at most its patient
MAX_PREFERRED_SITES = 20
MAX_TEXT = 200
MAX_IDENTIFIER = 1000  # a sender's identifier of a message (system|value)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Message:
    """An inbound referral and the sender's identifier of it (its idempotency)."""

    referral: InboundReferral
    identifier: str
    patient_in_bundle: bool  # a transaction carried the patient as an entry of its own


def shaped(read: Callable[[Any], T]) -> Callable[[Any], T]:
    """Refuse, rather than fail on, a message whose elements are not the JSON types FHIR
    gives them (a string where an object belongs, a number where a list does)."""

    @functools.wraps(read)
    def checked(body: Any) -> T:
        try:
            return read(body)
        except (AttributeError, TypeError, KeyError, IndexError):
            raise invalid(
                "an element of the message is not of its FHIR type (an object, list or"
                " string where another belongs)"
            ) from None

    return checked


@shaped
def service_request_message(body: Any) -> Message:
    """``POST ServiceRequest``: the referral of a patient we hold (``subject`` is
    ``Patient/<id>``), identified by the first of its identifiers that is not a UBRN."""
    request = _resource(body, "ServiceRequest")
    identifier = _sender_identifier(request.get("identifier"))
    if identifier is None:
        raise invalid("ServiceRequest.identifier: give the sender's identifier of the referral")
    patient = _patient_key(_text(request.get("subject"), "reference", "ServiceRequest.subject"))
    return Message(_referral(request, patient), identifier, patient_in_bundle=False)


@shaped
def transaction_message(body: Any) -> Message:
    """A transaction Bundle of a ServiceRequest and, optionally, the Patient it refers (its
    ``subject`` is that entry's ``fullUrl``); identified by ``Bundle.identifier``, else the
    ServiceRequest's own."""
    bundle = _resource(body, "Bundle")
    if bundle.get("type") != "transaction":
        raise invalid("Bundle.type: only a transaction is accepted here")
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not 1 <= len(entries) <= MAX_ENTRIES:
        raise invalid(f"Bundle.entry: a ServiceRequest and at most its Patient ({MAX_ENTRIES})")
    by_type: dict[str, tuple[str | None, dict[str, Any]]] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("resource"), dict):
            raise invalid(f"Bundle.entry[{index}]: each entry carries a resource")
        kind = entry["resource"].get("resourceType")
        method = (entry.get("request") or {}).get("method")
        if kind not in ("Patient", "ServiceRequest") or kind in by_type or method != "POST":
            raise invalid(
                f"Bundle.entry[{index}]: one POST of a ServiceRequest, and at most one of a Patient"
            )
        full_url = entry.get("fullUrl")
        by_type[kind] = (full_url if isinstance(full_url, str) else None, entry["resource"])
    if "ServiceRequest" not in by_type:
        raise invalid("Bundle.entry: the transaction carries no ServiceRequest")
    _, request = by_type["ServiceRequest"]
    reference = _text(request.get("subject"), "reference", "ServiceRequest.subject")
    patient: int | NewPatient
    if "Patient" in by_type:
        full_url, resource = by_type["Patient"]
        if full_url is None or reference != full_url:
            raise invalid("ServiceRequest.subject.reference: the Patient entry's fullUrl")
        patient = _new_patient(resource)
    else:
        patient = _patient_key(reference)
    if bundle.get("identifier") is not None and not isinstance(bundle["identifier"], dict):
        raise invalid("Bundle.identifier: an Identifier (system and value)")
    identifier = _bundle_identifier(bundle.get("identifier")) or _sender_identifier(
        request.get("identifier")
    )
    if identifier is None:
        raise invalid("Bundle.identifier: give the sender's identifier of the message")
    return Message(_referral(request, patient), identifier, patient_in_bundle="Patient" in by_type)


def _resource(body: Any, kind: str) -> dict[str, Any]:
    if not isinstance(body, dict) or body.get("resourceType") != kind:
        raise invalid(f"the body must be a {kind} resource")
    return body


def _text(value: Any, name: str, path: str, *, required: bool = True) -> str:
    found = value.get(name) if isinstance(value, dict) else None
    if found is None and not required:
        return ""
    if (
        not isinstance(found, str)
        or not found.strip()
        or len(found) > MAX_TEXT
        or not plain_text(found)
    ):
        raise invalid(f"{path}.{name}: a text of 1 to {MAX_TEXT} characters")
    return found


def _patient_key(reference: str) -> int:
    kind, _, text = reference.partition("/")
    key = key_of(text)
    if kind != "Patient" or key is None:
        raise invalid("ServiceRequest.subject.reference: Patient/<id> of a patient held here")
    return key


def _sender_identifier(identifiers: Any) -> str | None:
    for identifier in identifiers if isinstance(identifiers, list) else []:
        if isinstance(identifier, dict) and identifier.get("system") != codes.UBRN:
            value = identifier.get("value")
            if isinstance(value, str) and value.strip():
                found = f"{identifier.get('system') or ''}|{value}"
                if len(found) > MAX_IDENTIFIER:
                    raise invalid(f"identifier: at most {MAX_IDENTIFIER} characters")
                return found
    return None


def _bundle_identifier(identifier: Any) -> str | None:
    return _sender_identifier([identifier]) if isinstance(identifier, dict) else None


def _coded(concept: Any, system: str, path: str) -> str | None:
    """The code of ``concept``'s coding in ``system``, None when the element is absent."""
    if concept is None:
        return None
    codings = concept.get("coding") if isinstance(concept, dict) else None
    for coding in codings if isinstance(codings, list) else []:
        if isinstance(coding, dict) and coding.get("system") == system:
            code = coding.get("code")
            if isinstance(code, str) and 0 < len(code) <= MAX_TEXT and plain_text(code):
                return code
    raise invalid(f"{path}: a coding in {system}")


def _date(value: Any, path: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        pass
    raise invalid(f"{path}: a date, YYYY-MM-DD")


def _referral(request: dict[str, Any], patient: int | NewPatient) -> InboundReferral:
    if request.get("status") != "active" or request.get("intent") != "order":
        raise invalid("ServiceRequest: an inbound referral is status active, intent order")
    service = _coded(request.get("code"), codes.SERVICE_CODE, "ServiceRequest.code")
    if service is None:
        raise invalid(f"ServiceRequest.code: the service referred to, in {codes.SERVICE_CODE}")
    fhir_priority = request.get("priority", "routine")
    priority = codes.PRIORITY_OF_FHIR.get(fhir_priority) if isinstance(fhir_priority, str) else None
    if priority is None:
        raise invalid(f"ServiceRequest.priority: one of {', '.join(codes.PRIORITY_OF_FHIR)}")
    kinds = [
        extension.get("valueCode")
        for extension in request.get("extension") or []
        if isinstance(extension, dict) and extension.get("url") == codes.REFERRER_KIND_EXTENSION
    ]
    if len(kinds) != 1 or not isinstance(kinds[0], str):
        raise invalid(
            f"ServiceRequest.extension: one {codes.REFERRER_KIND_EXTENSION} valueCode"
            " (GP, OPTOMETRIST, DENTIST, PHARMACIST or CONSULTANT)"
        )
    period = request.get("occurrencePeriod")
    earliest = _date(
        period.get("start") if isinstance(period, dict) else None, "occurrencePeriod.start"
    )
    locations = request.get("locationReference") or []
    if not isinstance(locations, list) or len(locations) > MAX_PREFERRED_SITES:
        raise invalid(f"ServiceRequest.locationReference: at most {MAX_PREFERRED_SITES} sites")
    sites = []
    for location in locations:
        reference = _text(location, "reference", "ServiceRequest.locationReference")
        kind, _, text = reference.partition("/")
        site = key_of(text)
        if kind != "Location" or site is None or site >= 2**31:
            raise invalid("ServiceRequest.locationReference: Location/<id> of our sites")
        sites.append(site)
    return InboundReferral(
        patient=patient,
        to_service=service,
        priority=priority,
        referrer_name=_text(request.get("requester"), "display", "ServiceRequest.requester"),
        referrer_kind=kinds[0],
        constraints=Constraints(
            earliest_date=earliest,
            required_skill=_coded(request.get("performerType"), codes.SKILL, "performerType"),
            preferred_site_ids=tuple(sites),
        ),
    )


def _new_patient(patient: dict[str, Any]) -> NewPatient:
    numbers = [
        identifier.get("value")
        for identifier in patient.get("identifier") or []
        if isinstance(identifier, dict) and identifier.get("system") == codes.NHS_NUMBER
    ]
    if len(numbers) != 1 or not isinstance(numbers[0], str):
        raise invalid(f"Patient.identifier: one NHS number ({codes.NHS_NUMBER})")
    born = _date(patient.get("birthDate"), "Patient.birthDate")
    if born is None:
        raise invalid("Patient.birthDate: the patient's date of birth, YYYY-MM-DD")
    return NewPatient(numbers[0], born, _registration(patient))


def _registration(patient: dict[str, Any]) -> Registration | None:
    """What registering the patient takes, when the Patient carries it (a name, an address
    with its postcode and geolocation, and the region extension); None when it carries none
    of it, and the patient must then be one we hold."""
    names = patient.get("name") or []
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], dict) else {}
    addresses = patient.get("address") or []
    address = (
        addresses[0]
        if isinstance(addresses, list) and addresses and isinstance(addresses[0], dict)
        else {}
    )
    given = name.get("given")
    regions = [
        extension.get("valueCode")
        for extension in patient.get("extension") or []
        if isinstance(extension, dict) and extension.get("url") == codes.REGION_EXTENSION
    ]
    where = _geolocation(address)
    found = {
        "name.family": name.get("family"),
        "name.given": given[0] if isinstance(given, list) and given else None,
        "address.postalCode": address.get("postalCode"),
        "address geolocation extension": where,
        f"extension {codes.REGION_EXTENSION}": regions[0] if len(regions) == 1 else None,
    }
    if all(value is None for value in found.values()):
        return None
    missing = [path for path, value in found.items() if value is None]
    if missing:
        raise invalid("to register the patient, the Patient needs " + ", ".join(missing))
    texts = [path for path, value in found.items() if isinstance(value, str)]
    if len(texts) != len(found) - 1 or not all(_fits(found[path]) for path in texts):
        raise invalid(
            f"to register the patient: {', '.join(texts)} are texts of 1 to {MAX_TEXT} characters"
        )
    telecom = {
        point["system"]: point["value"]
        for point in patient.get("telecom") or []
        if isinstance(point, dict)
        and point.get("system") in ("phone", "email")
        and _fits(point.get("value"))
    }
    assert where is not None
    return Registration(
        given_name=str(found["name.given"]),
        family_name=str(found["name.family"]),
        postcode=str(found["address.postalCode"]),
        region=str(regions[0]),
        latitude=where[0],
        longitude=where[1],
        phone=telecom.get("phone"),
        email=telecom.get("email"),
    )


def _fits(value: Any) -> bool:
    """A text we keep: 1 to ``MAX_TEXT`` characters, no NUL."""
    return (
        isinstance(value, str)
        and len(value.strip()) > 0
        and len(value) <= MAX_TEXT
        and (plain_text(value))
    )


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _geolocation(address: dict[str, Any]) -> tuple[float, float] | None:
    for extension in address.get("extension") or []:
        if isinstance(extension, dict) and extension.get("url") == GEOLOCATION:
            parts = {
                part.get("url"): part.get("valueDecimal")
                for part in extension.get("extension") or []
                if isinstance(part, dict)
            }
            latitude, longitude = parts.get("latitude"), parts.get("longitude")
            if _number(latitude) and _number(longitude):
                return float(latitude), float(longitude)
            raise invalid("Patient.address geolocation: latitude and longitude valueDecimal")
    return None
