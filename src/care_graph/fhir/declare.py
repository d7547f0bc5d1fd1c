"""How a FHIR resource is declared, once: each element an SQL expression over the row ``{t}``
that PostgreSQL turns into JSON, each search parameter the SQL it filters with, and the links
``_include`` follows. search.py compiles a search into one statement from this; capability.py
lists it in the CapabilityStatement; docs/fhir.md tabulates it.

Elements that evaluate to SQL null are left out of the resource (FHIR has no nulls)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class ParamKind(StrEnum):
    """FHIR search parameter types we serve (http://hl7.org/fhir/search-param-type)."""

    TOKEN = "token"
    STRING = "string"
    DATE = "date"
    REFERENCE = "reference"
    SPECIAL = "special"


@dataclass(frozen=True, slots=True)
class SearchParam:
    """A search parameter: its kind and the SQL expression over ``{t}`` it compares, or a
    condition in which ``{value}`` stands for ``ANY(<the values searched for>)``.

    ``codes`` (tokens): what a FHIR code searches for among the stored values (a FHIR status
    may stand for several of ours); None compares the value as it is. ``system``: the only
    identifier system a token accepts, when it names one. ``target``: a reference's resource.
    """

    name: str
    kind: ParamKind
    sql: str
    description: str
    codes: Callable[[str], list[str]] | None = None
    system: str | None = None
    target: str | None = None
    dates_only: bool = False  # the column is a date, not an instant


@dataclass(frozen=True, slots=True)
class Include:
    """``_include=Source:name``: the ``target`` resources whose id is ``key_sql`` over ``{t}``."""

    name: str
    target: str
    key_sql: str


@dataclass(frozen=True, slots=True)
class Resource:
    """One FHIR resource type served from one table: ``elements`` in output order, element
    name to SQL. ``policy_type`` names its rows in the GraphQL row rules and audit
    (api/policy.py), so both APIs filter and audit a record alike."""

    name: str
    table: str
    policy_type: str
    elements: dict[str, str]
    params: tuple[SearchParam, ...] = ()
    includes: tuple[Include, ...] = ()
    profile: str | None = None

    def param(self, name: str) -> SearchParam | None:
        """The search parameter of this name, if we serve it."""
        return next((param for param in self.params if param.name == name), None)

    def include(self, name: str) -> Include | None:
        """The include of this name, if we serve it."""
        return next((include for include in self.includes if include.name == name), None)

    def json_sql(self, alias: str) -> str:
        """The SQL building this resource as JSON from row ``alias``, nulls left out."""
        pairs = ", ".join(
            f"'{name}', {sql.format(t=alias)}"
            for name, sql in {"resourceType": f"'{self.name}'", **self.elements}.items()
        )
        return f"json_strip_nulls(json_build_object({pairs}))"
