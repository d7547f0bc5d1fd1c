"""The CapabilityStatement at ``/fhir/R4/metadata``: exactly what resources.py declares (each
resource's interactions, search parameters and includes), so it can never claim more or less
than is served."""

from __future__ import annotations

from typing import Any

from care_graph.fhir.resources import RESOURCES

FHIR_VERSION = "4.0.1"
INTERACTIONS = ("read", "search-type")


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
                "resource": [
                    {
                        "type": resource.name,
                        **({"profile": resource.profile} if resource.profile else {}),
                        "interaction": [{"code": code} for code in INTERACTIONS],
                        "searchParam": [
                            {
                                "name": param.name,
                                "type": str(param.kind),
                                "documentation": param.description,
                            }
                            for param in resource.params
                        ],
                        **(
                            {
                                "searchInclude": [
                                    f"{resource.name}:{include.name}"
                                    for include in resource.includes
                                ]
                            }
                            if resource.includes
                            else {}
                        ),
                    }
                    for resource in RESOURCES.values()
                ],
            }
        ],
    }
