"""A FHIR R4 REST API at ``/fhir/R4``, beside GraphQL, on the same tokens, row rules and audit
(docs/fhir.md): resources declared once (resources.py), searches compiled to one SQL statement
each (search.py), errors as OperationOutcomes with the GraphQL codes (outcome.py)."""
