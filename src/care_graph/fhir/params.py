"""Reading a FHIR search's query string into a checked ``Search``, every limit before any work.

Unknown parameters follow FHIR's default, lenient handling: they are ignored, and the Bundle
says so in an OperationOutcome entry and leaves them out of its ``self`` link. With
``Prefer: handling=strict`` they are refused (INVALID_ARGUMENT). A known parameter with a bad
value, a modifier or prefix we do not serve, or a limit passed is refused either way."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from care_graph.fhir.declare import Include, ParamKind, Resource, SearchParam
from care_graph.fhir.outcome import invalid
from care_graph.fhir.values import key_of, plain_text, zoned

DEFAULT_COUNT = 20
MAX_COUNT = 100  # as a GraphQL page (api/lists.py MAX_PAGE_SIZE)
MAX_PARAMETERS = 30  # query items in one search
MAX_VALUES = 50  # comma-separated values in one parameter
MAX_VALUE_CHARS = 200
MAX_NAME_CHARS = 64
MAX_NEAR_KM = 500.0
DEFAULT_NEAR_KM = 10.0
DATE_PREFIXES = {"eq": "=", "ne": "<>", "gt": ">", "lt": "<", "ge": ">=", "le": "<="}
_PREFIXED = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)(?=\d)")
_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_STRING_MODIFIERS = ("", "exact", "contains")


@dataclass(frozen=True, slots=True)
class Filter:
    """One search parameter as given: its declaration, modifier, date prefix and values."""

    param: SearchParam
    modifier: str
    prefix: str
    values: tuple[Any, ...]
    text: str  # as it was written, for the self link


@dataclass(frozen=True, slots=True)
class Search:
    """A checked search: its filters, page and what else the Bundle carries."""

    resource: Resource
    filters: tuple[Filter, ...]
    count: int
    after: int | None
    before: int | None
    total: bool
    includes: tuple[Include, ...]
    ignored: tuple[str, ...]

    def canonical(self) -> list[tuple[str, str]]:
        """The query items that reproduce this search (paging and ignored items left out)."""
        items = [
            (
                filter_.param.name + (f":{filter_.modifier}" if filter_.modifier else ""),
                filter_.text,
            )
            for filter_ in self.filters
        ]
        items += [("_include", f"{self.resource.name}:{include.name}") for include in self.includes]
        if self.total:
            items.append(("_total", "accurate"))
        items.append(("_count", str(self.count)))
        return items


def parse_search(resource: Resource, items: Sequence[tuple[str, str]], *, strict: bool) -> Search:
    """The search these query items ask for, checked; FhirError when refused."""
    if len(items) > MAX_PARAMETERS:
        raise invalid(f"a search takes at most {MAX_PARAMETERS} parameters")
    filters: list[Filter] = []
    ignored: list[str] = []
    count, after, before, total = DEFAULT_COUNT, None, None, False
    includes: list[Include] = []
    for key, value in items:
        if len(key) > MAX_NAME_CHARS:
            raise invalid(f"a parameter's name has at most {MAX_NAME_CHARS} characters")
        if len(value) > MAX_VALUE_CHARS * MAX_VALUES:
            raise invalid(f"the value of {key!r} is too long")
        if not plain_text(value):
            raise invalid(f"the value of {key!r} holds a NUL character")
        name, _, modifier = key.partition(":")
        if name == "_count":
            count = _count(value)
        elif name == "_total":
            total = _total(value)
        elif name == "_include":
            include = _include(resource, value)
            if include not in includes:  # the same include twice brings nothing more
                includes.append(include)
        elif name in ("_after", "_before"):
            key_value = _key(value, name)
            after, before = (key_value, before) if name == "_after" else (after, key_value)
        elif name == "_format":
            continue  # the media type is negotiated from Accept; _format asks the same
        elif (param := resource.param(name)) is not None:
            filters.append(_filter(param, modifier, value))
        elif strict:
            raise invalid(
                f"{resource.name} has no search parameter {name!r}"
                " (Prefer: handling=strict refuses unknown parameters)"
            )
        else:
            ignored.append(key)
    if after is not None and before is not None:
        raise invalid("page with _after or _before, not both")
    return Search(
        resource, tuple(filters), count, after, before, total, tuple(includes), tuple(ignored)
    )


def _count(value: str) -> int:
    count = key_of(value)
    if count is None or count > MAX_COUNT:
        raise invalid(f"_count is a whole number from 0 to {MAX_COUNT}")
    return count


def _total(value: str) -> bool:
    if value not in ("none", "estimate", "accurate"):
        raise invalid("_total is none, estimate or accurate")
    return value == "accurate"  # an estimate is not worth a count's cost: none is given


def _include(resource: Resource, value: str) -> Include:
    source, _, name = value.partition(":")
    include = resource.include(name) if source == resource.name else None
    if include is None:
        served = ", ".join(f"{resource.name}:{one.name}" for one in resource.includes) or "none"
        raise invalid(f"_include={value!r} is not served here (served: {served})")
    return include


def _key(value: str, name: str) -> int:
    key = key_of(value)
    if key is None:
        raise invalid(f"{name} is a cursor from a Bundle's link")
    return key


def _filter(param: SearchParam, modifier: str, value: str) -> Filter:
    values = value.split(",")
    if len(values) > MAX_VALUES or any(len(one) > MAX_VALUE_CHARS for one in values):
        raise invalid(
            f"{param.name} takes at most {MAX_VALUES} values of {MAX_VALUE_CHARS} characters"
        )
    if any(not one for one in values):
        raise invalid(f"{param.name} has an empty value")
    if param.kind is ParamKind.STRING:
        if modifier not in _STRING_MODIFIERS:
            raise invalid(f"{param.name} takes :exact or :contains, not :{modifier}")
        return Filter(param, modifier, "", tuple(values), value)
    if modifier:
        raise invalid(f"{param.name} takes no modifier (:{modifier})")
    if param.kind is ParamKind.DATE:
        if len(values) > 1:
            raise invalid(f"{param.name} takes one date; repeat the parameter for a range")
        prefix, when = _date(param, values[0])
        return Filter(param, prefix, "", (when,), value)
    if param.kind is ParamKind.SPECIAL:
        if len(values) > 1:
            raise invalid(f"{param.name} takes one point")
        return Filter(param, "", "", _near(values[0]), value)
    if param.kind is ParamKind.REFERENCE:
        return Filter(param, "", "", tuple(_reference(param, one) for one in values), value)
    return Filter(param, "", "", tuple(_token(param, one) for one in values), value)


def _date(param: SearchParam, value: str) -> tuple[str, date | datetime]:
    match = _PREFIXED.match(value)
    prefix = match.group(1) if match else "eq"
    if prefix not in DATE_PREFIXES:
        raise invalid(f"{param.name} takes the prefixes {', '.join(DATE_PREFIXES)}")
    text = value[len(match.group(1)) :] if match else value
    try:
        if _DATE_ONLY.match(text):
            return prefix, date.fromisoformat(text)
        if param.dates_only:
            raise ValueError
        when = datetime.fromisoformat(text)
    except ValueError:
        kind = "a date (YYYY-MM-DD)" if param.dates_only else "a date or a date-time with a zone"
        raise invalid(f"{param.name} takes {kind}, not {text!r}") from None
    if zoned(when) is None:
        raise invalid(f"{param.name}: a date-time with its time zone, within the calendar")
    return prefix, when


def _near(value: str) -> tuple[float, float, float]:
    parts = value.split("|")
    try:
        latitude, longitude = float(parts[0]), float(parts[1])
        km = float(parts[2]) if len(parts) > 2 and parts[2] else DEFAULT_NEAR_KM
    except (ValueError, IndexError):
        raise invalid("near is latitude|longitude|distance|km") from None
    units = parts[3] if len(parts) > 3 else "km"
    if len(parts) > 4 or units != "km":
        raise invalid("near is latitude|longitude|distance|km: distances in km")
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180 and 0 < km <= MAX_NEAR_KM):
        raise invalid(f"near: a point on Earth, and a distance up to {MAX_NEAR_KM:g} km")
    return latitude, longitude, km


def _reference(param: SearchParam, value: str) -> int | None:
    """The key a reference names: ``123``, ``Type/123`` or a URL ending so; None for an id
    that is no key of ours (it matches nothing)."""
    *path, key = value.rstrip("/").split("/")
    if path and path[-1] != param.target:
        raise invalid(f"{param.name} refers to a {param.target}, not {path[-1]!r}")
    return key_of(key)


def _token(param: SearchParam, value: str) -> str | None:
    """The code a token names, or None when its system is not the parameter's (it matches
    nothing)."""
    system, bar, code = value.rpartition("|")
    if bar and system and param.system is not None and system != param.system:
        return None
    return code
