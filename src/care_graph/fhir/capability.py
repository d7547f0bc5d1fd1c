"""The CapabilityStatement at ``/fhir/R4/metadata``: exactly what resources.py declares (each
resource's interactions, search parameters and includes), so it can never claim more or less
than is served."""

from __future__ import annotations

from typing import Any

from care_graph.fhir import codes
from care_graph.fhir.declare import Resource
from care_graph.fhir.operations import OPERATIONS
from care_graph.fhir.resources import APPOINTMENT, RESOURCES

FHIR_VERSION = "4.0.1"
INTERACTIONS = ("read", "search-type")
# the writes fhir/http.py and fhir/operations.py serve, by resource
WRITES = {"ServiceRequest": ("create",), "Appointment": ("update",)}


def capability_statement(base_url: str, software_version: str) -> dict[str, Any]:
    """The server's CapabilityStatement; ``base_url`` is the FHIR base the client used."""
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-12-03",
        "kind": "instance",
        "software": {"name": "care_graph", "version": software_version},
        "implementation": {"description": "care_graph FHIR R4 API", "url": base_url},
        "fhirVersion": FHIR_VERSION,
        "format": ["application/fhir+json", "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "A bearer JWT, the same as the GraphQL API's; the token's"
                    " role decides which records are visible (docs/fhir.md)."
                },
                "resource": [_resource_entry(resource) for resource in RESOURCES.values()],
                "interaction": [{"code": "transaction"}],
            }
        ],
    }


def _resource_entry(resource: Resource) -> dict[str, Any]:
    """What is served of one resource type."""
    entry: dict[str, Any] = {"type": resource.name}
    if resource.profile:
        entry["profile"] = resource.profile
    entry["interaction"] = [
        {"code": code} for code in (*INTERACTIONS, *WRITES.get(resource.name, ()))
    ]
    entry["searchParam"] = [
        {"name": param.name, "type": str(param.kind), "documentation": param.description}
        for param in resource.params
    ]
    if resource.includes:
        entry["searchInclude"] = [f"{resource.name}:{one.name}" for one in resource.includes]
    if resource is APPOINTMENT:
        entry["operation"] = [
            {
                "name": name.lstrip("$"),
                "definition": f"{codes.OPERATION_DEFINITION}/appointment-{name.lstrip('$')}",
            }
            for name in OPERATIONS
        ]
    return entry
