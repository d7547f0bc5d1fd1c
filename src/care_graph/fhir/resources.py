"""Every resource the FHIR API serves, declared once (declare.py): element <- SQL over the row
``{t}``, search parameters, includes. A new element is one line here; docs/fhir.md tabulates
these declarations.

Ids are our primary keys as text. A Schedule is a member of staff's diary (one per staff
member, id the staff id); a HealthcareService is one of our services, located at every site
that offers it; a PractitionerRole and a Practitioner are both a member of staff."""

from __future__ import annotations

from care_graph.db.bookable import shown_status
from care_graph.domain.lifecycle import FHIR_STATUS
from care_graph.fhir import codes
from care_graph.fhir.declare import Include, ParamKind, Resource, SearchParam


def ref(resource: str, key_sql: str) -> str:
    """A Reference to ``resource/<key_sql>``."""
    return f"json_build_object('reference', '{resource}/' || ({key_sql}))"


def concept(system: str, code_sql: str, display_sql: str | None = None) -> str:
    """A CodeableConcept of one coding in ``system``."""
    display = f", 'display', {display_sql}" if display_sql else ""
    return (
        f"json_build_object('coding', json_build_array(json_build_object("
        f"'system', '{system}', 'code', {code_sql}{display})))"
    )


def meta(version_sql: str, updated_sql: str | None = None) -> str:
    """Resource.meta: the row's version, and when it last changed where we record it."""
    updated = f", 'lastUpdated', cg_timestamp({updated_sql})" if updated_sql else ""
    return f"json_build_object('versionId', ({version_sql})::text{updated})"


def fhir_date(sql: str) -> str:
    """A date as FHIR writes it."""
    return f"to_char({sql}, 'YYYY-MM-DD')"


def _id(resource: str) -> SearchParam:
    return SearchParam(
        "_id", ParamKind.REFERENCE, "{t}.id", f"the {resource}'s id", target=resource
    )


def _last_updated(sql: str) -> SearchParam:
    return SearchParam("_lastUpdated", ParamKind.DATE, sql, "when the record last changed")


def _service_of(key_sql: str, column: str) -> str:
    return f"(SELECT sv.{column} FROM services sv WHERE sv.id = {key_sql})"


def _service_type(key_sql: str) -> str:
    return concept(codes.SERVICE_CODE, _service_of(key_sql, "code"), _service_of(key_sql, "name"))


def _slot_of(appointment: str, column: str) -> str:
    return f"(SELECT sl.{column} FROM slots sl WHERE sl.id = {appointment}.slot_id)"


PATIENT = Resource(
    "Patient",
    table="patients",
    policy_type="Patient",
    profile="https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient",
    elements={
        "id": "{t}.id::text",
        "meta": meta("{t}.version", "{t}.updated_at"),
        "identifier": "json_build_array(json_build_object("
        f"'system', '{codes.NHS_NUMBER}', 'value', {{t}}.nhs_number))",
        "name": "json_build_array(json_build_object('use', 'official',"
        " 'family', {t}.family_name, 'given', json_build_array({t}.given_name)))",
        "telecom": "(SELECT json_agg(json_build_object('system', c.system, 'value', c.value))"
        " FROM (VALUES ('phone', {t}.phone), ('email', {t}.email)) c(system, value)"
        " WHERE c.value IS NOT NULL)",
        "birthDate": fhir_date("{t}.date_of_birth"),
        "address": "json_build_array(json_build_object('postalCode', {t}.postcode))",
    },
    params=(
        _id("Patient"),
        SearchParam(
            "identifier",
            ParamKind.TOKEN,
            "{t}.nhs_number",
            "NHS number",
            system=codes.NHS_NUMBER,
        ),
        SearchParam("family", ParamKind.STRING, "{t}.family_name", "family name, starts with"),
        SearchParam("given", ParamKind.STRING, "{t}.given_name", "given name, starts with"),
        SearchParam(
            "birthdate", ParamKind.DATE, "{t}.date_of_birth", "date of birth", dates_only=True
        ),
        _last_updated("{t}.updated_at"),
    ),
)

SERVICE_REQUEST = Resource(
    "ServiceRequest",
    table="referrals",
    policy_type="Referral",
    profile="https://fhir.hl7.org.uk/StructureDefinition/UKCore-ServiceRequest",
    elements={
        "id": "{t}.id::text",
        "meta": meta("{t}.version", "{t}.updated_at"),
        "extension": "json_build_array(json_build_object("
        f"'url', '{codes.REFERRER_KIND_EXTENSION}', 'valueCode', {{t}}.referrer_kind))",
        "identifier": "json_build_array(json_build_object("
        f"'system', '{codes.UBRN}', 'value', {{t}}.ubrn))",
        "status": codes.case_sql("{t}.status", FHIR_STATUS),
        "intent": "'order'",
        "category": "json_build_array("
        + concept(
            codes.SNOMED, f"'{codes.REFERRAL_CATEGORY[0]}'", f"'{codes.REFERRAL_CATEGORY[1]}'"
        )
        + ")",
        "priority": codes.case_sql("{t}.priority", codes.FHIR_PRIORITY),
        "code": _service_type("{t}.to_service_id"),
        "subject": ref("Patient", "{t}.patient_id"),
        "occurrencePeriod": "json_build_object("
        f"'start', {fhir_date('{t}.earliest_date')}, 'end', {fhir_date('{t}.breach_date')})",
        "authoredOn": "cg_timestamp({t}.received_at)",
        # the referrer's name only: their account (token subject) is shown to no one
        "requester": "json_build_object('display', {t}.referrer_name)",
        "performerType": f"CASE WHEN {{t}}.required_skill IS NOT NULL THEN "
        f"{concept(codes.SKILL, '{t}.required_skill')} END",
        "locationReference": "(SELECT json_agg(json_build_object('reference',"
        " 'Location/' || site) ORDER BY site) FROM unnest({t}.preferred_site_ids) site)",
    },
    params=(
        _id("ServiceRequest"),
        SearchParam("identifier", ParamKind.TOKEN, "{t}.ubrn", "UBRN", system=codes.UBRN),
        SearchParam(
            "status",
            ParamKind.TOKEN,
            "{t}.status",
            "active | completed | revoked",
            codes=codes.referral_statuses,
        ),
        SearchParam(
            "priority",
            ParamKind.TOKEN,
            "{t}.priority",
            "routine | urgent | asap",
            codes=codes.priorities,
        ),
        SearchParam(
            "patient", ParamKind.REFERENCE, "{t}.patient_id", "the patient", target="Patient"
        ),
        SearchParam(
            "subject", ParamKind.REFERENCE, "{t}.patient_id", "the patient", target="Patient"
        ),
        _last_updated("{t}.updated_at"),
    ),
    includes=(Include("patient", "Patient", "{t}.patient_id"),),
)

APPOINTMENT = Resource(
    "Appointment",
    table="appointments",
    policy_type="Appointment",
    elements={
        "id": "{t}.id::text",
        "meta": meta("{t}.version"),
        "status": "{t}.status",
        "cancelationReason": f"CASE WHEN {{t}}.cancellation_reason IS NOT NULL THEN "
        f"{concept(codes.CANCELLATION_REASON, '{t}.cancellation_reason')} END",
        "serviceType": "json_build_array(" + _service_type(_slot_of("{t}", "service_id")) + ")",
        "start": f"cg_timestamp({_slot_of('{t}', 'starts_at')})",
        "end": f"cg_timestamp({_slot_of('{t}', 'ends_at')})",
        "slot": "json_build_array(" + ref("Slot", "{t}.slot_id") + ")",
        "created": "cg_timestamp({t}.booked_at)",
        "basedOn": "json_build_array(" + ref("ServiceRequest", "{t}.referral_id") + ")",
        "participant": "json_build_array("
        "json_build_object('actor', "
        + ref("Patient", "(SELECT rf.patient_id FROM referrals rf WHERE rf.id = {t}.referral_id)")
        + ", 'status', 'accepted'), json_build_object('actor', "
        + ref("Practitioner", _slot_of("{t}", "staff_id"))
        + ", 'status', 'accepted'), json_build_object('actor', "
        + ref("Location", _slot_of("{t}", "site_id"))
        + ", 'status', 'accepted'))",
    },
    params=(
        _id("Appointment"),
        SearchParam(
            "patient",
            ParamKind.REFERENCE,
            "{t}.referral_id IN (SELECT rf.id FROM referrals rf WHERE rf.patient_id = {value})",
            "the patient",
            target="Patient",
        ),
        SearchParam(
            "status", ParamKind.TOKEN, "{t}.status", "Appointment.status", codes=lambda c: [c]
        ),
        SearchParam("date", ParamKind.DATE, _slot_of("{t}", "starts_at"), "when it starts"),
        SearchParam("slot", ParamKind.REFERENCE, "{t}.slot_id", "the slot", target="Slot"),
        SearchParam(
            "based-on",
            ParamKind.REFERENCE,
            "{t}.referral_id",
            "the referral",
            target="ServiceRequest",
        ),
    ),
    includes=(Include("slot", "Slot", "{t}.slot_id"),),
)


def proposed_appointment(slot: str, referral: str, status: str) -> str:
    """An Appointment not (yet) made, as $find proposes it and $hold holds it: slot ``slot``
    for referral ``referral`` (row aliases), in ``status`` (proposed, pending)."""
    return (
        "json_build_object('resourceType', 'Appointment', 'status', '" + status + "',"
        " 'serviceType', json_build_array(" + _service_type(f"{slot}.service_id") + "),"
        f" 'start', cg_timestamp({slot}.starts_at), 'end', cg_timestamp({slot}.ends_at),"
        " 'slot', json_build_array(" + ref("Slot", f"{slot}.id") + "),"
        " 'basedOn', json_build_array(" + ref("ServiceRequest", f"{referral}.id") + "),"
        " 'participant', json_build_array("
        "json_build_object('actor', " + ref("Patient", f"{referral}.patient_id") + ","
        " 'status', 'needs-action'), json_build_object('actor', "
        + ref("Practitioner", f"{slot}.staff_id")
        + ", 'status', 'accepted'), json_build_object('actor', "
        + ref("Location", f"{slot}.site_id")
        + ", 'status', 'accepted')))"
    )


SLOT = Resource(
    "Slot",
    table="slots",
    policy_type="Slot",
    elements={
        "id": "{t}.id::text",
        "meta": meta("{t}.version"),
        "serviceType": "json_build_array(" + _service_type("{t}.service_id") + ")",
        "schedule": ref("Schedule", "{t}.staff_id"),
        "status": shown_status("{t}"),
        "start": "cg_timestamp({t}.starts_at)",
        "end": "cg_timestamp({t}.ends_at)",
    },
    params=(
        _id("Slot"),
        SearchParam(
            "schedule", ParamKind.REFERENCE, "{t}.staff_id", "the diary", target="Schedule"
        ),
        SearchParam(
            "service-type",
            ParamKind.TOKEN,
            "{t}.service_id IN (SELECT sv.id FROM services sv WHERE sv.code = {value})",
            "the service's code",
            system=codes.SERVICE_CODE,
        ),
        SearchParam("start", ParamKind.DATE, "{t}.starts_at", "when it starts"),
        SearchParam(
            "status", ParamKind.TOKEN, shown_status("{t}"), "Slot.status", codes=lambda c: [c]
        ),
    ),
)

_STAFF_SKILLS = (
    "(SELECT json_agg({concept} ORDER BY ss.skill_code) FROM staff_skills ss"
    " WHERE ss.staff_id = {{t}}.id)".format(concept=concept(codes.SKILL, "ss.skill_code"))
)

SCHEDULE = Resource(
    "Schedule",
    table="staff",
    policy_type="Staff",
    elements={
        "id": "{t}.id::text",
        "active": "true",
        "serviceType": _STAFF_SKILLS,
        "actor": "json_build_array("
        + ref("Practitioner", "{t}.id")
        + ", "
        + ref("Location", "{t}.base_site_id")
        + ")",
    },
    params=(
        _id("Schedule"),
        SearchParam(
            "actor", ParamKind.REFERENCE, "{t}.id", "the practitioner", target="Practitioner"
        ),
    ),
)

HEALTHCARE_SERVICE = Resource(
    "HealthcareService",
    table="services",
    policy_type="Service",
    elements={
        "id": "{t}.id::text",
        "active": "true",
        "category": "json_build_array(" + concept(codes.SERVICE_KIND, "{t}.kind") + ")",
        "type": "json_build_array(" + concept(codes.SERVICE_CODE, "{t}.code", "{t}.name") + ")",
        "location": "(SELECT json_agg(" + ref("Location", "ls.site_id") + " ORDER BY ls.site_id)"
        " FROM site_services ls WHERE ls.service_id = {t}.id)",
        "name": "{t}.name",
    },
    params=(
        _id("HealthcareService"),
        SearchParam("name", ParamKind.STRING, "{t}.name", "name, starts with"),
        SearchParam(
            "service-type",
            ParamKind.TOKEN,
            "{t}.code",
            "the service's code",
            system=codes.SERVICE_CODE,
        ),
        SearchParam(
            "service-category",
            ParamKind.TOKEN,
            "{t}.kind",
            "GP | OPTOMETRY | DENTISTRY | COMMUNITY_PHARMACY | SPECIALTY",
            system=codes.SERVICE_KIND,
        ),
        SearchParam(
            "location",
            ParamKind.REFERENCE,
            "{t}.id IN (SELECT ls.service_id FROM site_services ls WHERE ls.site_id = {value})",
            "a site offering it",
            target="Location",
        ),
    ),
)

LOCATION = Resource(
    "Location",
    table="sites",
    policy_type="Site",
    elements={
        "id": "{t}.id::text",
        "identifier": "json_build_array(json_build_object("
        f"'system', '{codes.SITE_CODE}', 'value', {{t}}.code))",
        "status": "'active'",
        "name": "{t}.name",
        "address": "json_build_object('city', {t}.town, 'postalCode', {t}.postcode)",
        "position": "json_build_object('longitude', {t}.longitude, 'latitude', {t}.latitude)",
    },
    params=(
        _id("Location"),
        SearchParam("name", ParamKind.STRING, "{t}.name", "name, starts with"),
        SearchParam(
            "address-postalcode", ParamKind.STRING, "{t}.postcode", "postcode, starts with"
        ),
        SearchParam(
            "near",
            ParamKind.SPECIAL,
            "great_circle_km({t}.latitude, {t}.longitude, {lat}, {lon}) <= {km}",
            "latitude|longitude|distance|km (distance defaults to 10 km)",
        ),
    ),
)

PRACTITIONER_ROLE = Resource(
    "PractitionerRole",
    table="staff",
    policy_type="Staff",
    elements={
        "id": "{t}.id::text",
        "active": "true",
        "practitioner": ref("Practitioner", "{t}.id"),
        "code": "json_build_array(" + concept(codes.STAFF_ROLE, "{t}.role") + ")",
        "specialty": _STAFF_SKILLS,
        "location": "json_build_array(" + ref("Location", "{t}.base_site_id") + ")",
    },
    params=(
        _id("PractitionerRole"),
        SearchParam(
            "practitioner",
            ParamKind.REFERENCE,
            "{t}.id",
            "the practitioner",
            target="Practitioner",
        ),
        SearchParam("role", ParamKind.TOKEN, "{t}.role", "the staff role", system=codes.STAFF_ROLE),
        SearchParam(
            "specialty",
            ParamKind.TOKEN,
            "{t}.id IN (SELECT ss.staff_id FROM staff_skills ss WHERE ss.skill_code = {value})",
            "a skill",
            system=codes.SKILL,
        ),
        SearchParam(
            "location",
            ParamKind.REFERENCE,
            "{t}.base_site_id",
            "the base site",
            target="Location",
        ),
    ),
)

PRACTITIONER = Resource(
    "Practitioner",
    table="staff",
    policy_type="Staff",
    elements={
        "id": "{t}.id::text",
        "active": "true",
        "name": "json_build_array(json_build_object("
        "'family', {t}.family_name, 'given', json_build_array({t}.given_name)))",
    },
    params=(
        _id("Practitioner"),
        SearchParam("family", ParamKind.STRING, "{t}.family_name", "family name, starts with"),
        SearchParam("given", ParamKind.STRING, "{t}.given_name", "given name, starts with"),
    ),
)

RESOURCES: dict[str, Resource] = {
    resource.name: resource
    for resource in (
        PATIENT,
        SERVICE_REQUEST,
        APPOINTMENT,
        SLOT,
        SCHEDULE,
        HEALTHCARE_SERVICE,
        LOCATION,
        PRACTITIONER_ROLE,
        PRACTITIONER,
    )
}
