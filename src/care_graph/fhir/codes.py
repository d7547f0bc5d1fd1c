"""FHIR code values, from the same enums the GraphQL API serves: the referral lifecycle's FHIR
status (domain/lifecycle.py), slot and appointment statuses as stored (domain/statuses.py), and
the e-Referral Service priorities mapped onto FHIR's request priorities once, here."""

from __future__ import annotations

from care_graph.domain.lifecycle import FHIR_STATUS, ReferralStatus
from care_graph.domain.waiting_times import Priority

NHS_NUMBER = "https://fhir.nhs.uk/Id/nhs-number"
UBRN = "https://fhir.nhs.uk/Id/UBRN"
_OURS = "https://care-graph.example/fhir"
SERVICE_CODE = f"{_OURS}/CodeSystem/service"
SERVICE_KIND = f"{_OURS}/CodeSystem/service-kind"
STAFF_ROLE = f"{_OURS}/CodeSystem/staff-role"
SKILL = f"{_OURS}/CodeSystem/skill"
CANCELLATION_REASON = f"{_OURS}/CodeSystem/cancellation-reason"
SITE_CODE = f"{_OURS}/Id/site"
OPERATION_DEFINITION = f"{_OURS}/OperationDefinition"  # $find, $hold, $book (fhir/operations.py)
REFERRER_KIND_EXTENSION = f"{_OURS}/StructureDefinition/referrer-kind"
REGION_EXTENSION = f"{_OURS}/StructureDefinition/region"  # a new patient's region code
SNOMED = "http://snomed.info/sct"
REFERRAL_CATEGORY = ("3457005", "Patient referral")

# e-RS priority -> FHIR request-priority; a two-week-wait (suspected cancer) referral is seen
# sooner than routine and later than urgent, and FHIR's order is routine < urgent < asap
FHIR_PRIORITY: dict[Priority, str] = {
    Priority.ROUTINE: "routine",
    Priority.TWO_WEEK_WAIT: "urgent",
    Priority.URGENT: "asap",
}
PRIORITY_OF_FHIR = {fhir: ours for ours, fhir in FHIR_PRIORITY.items()}


def referral_statuses(fhir_status: str) -> list[str]:
    """Our referral statuses that read as this ServiceRequest.status (none for an unknown
    code, so a search for it finds nothing)."""
    return [str(ours) for ours, fhir in FHIR_STATUS.items() if fhir == fhir_status]


def priorities(fhir_priority: str) -> list[str]:
    """Our priority that reads as this ServiceRequest.priority (none for an unknown code)."""
    found = PRIORITY_OF_FHIR.get(fhir_priority)
    return [] if found is None else [str(found)]


def case_sql(column: str, mapping: dict[Priority, str] | dict[ReferralStatus, str]) -> str:
    """SQL mapping a stored code (``column``) to its FHIR code; the codes are ours, not input."""
    whens = " ".join(f"WHEN '{ours}' THEN '{fhir}'" for ours, fhir in mapping.items())
    return f"(CASE {column} {whens} END)"
