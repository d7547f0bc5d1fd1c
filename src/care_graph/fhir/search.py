"""Compiling a checked search (params.py) into one SQL statement in which PostgreSQL builds
every entry of the Bundle as JSON, under the row rules and read audit the GraphQL reads use
(api/policy.py), and a read of one resource likewise.

The statement pages by primary key (keyset, either direction), builds and audits only the rows
shown, never the extra row that tells whether there is more, and counts only when asked."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from care_graph.api.args import Arg, Params
from care_graph.api.policy import Policy
from care_graph.clinic_time import day_sql
from care_graph.fhir.declare import Include, ParamKind, Resource
from care_graph.fhir.params import DATE_PREFIXES, Filter, Search
from care_graph.fhir.resources import RESOURCES

_CASTS = {ParamKind.REFERENCE: "bigint[]", ParamKind.TOKEN: "text[]", ParamKind.STRING: "text[]"}


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL and its bind parameters (computed from the viewer: ``Params.values``)."""

    sql: str
    params: Params


def _constant(params: Params, value: Any) -> str:
    return params.add(Arg.constant(value))


def _entry(resource: Resource, alias: str, body: str, base: str, mode: str) -> str:
    return (
        f"json_build_object('fullUrl', {base} || '{resource.name}/' || {alias}.id,"
        f" 'resource', {body}, 'search', json_build_object('mode', '{mode}'))"
    )


def conditions(search: Search, alias: str, params: Params, policy: Policy) -> list[str]:
    """The SQL conditions a row ``alias`` meets to match: each filter, and the row rules."""
    found = [_condition(filter_, alias, params) for filter_ in search.filters]
    visible = policy.condition(search.resource.policy_type, alias, params)
    return found + ([visible] if visible is not None else [])


def _condition(filter_: Filter, alias: str, params: Params) -> str:
    param = filter_.param
    if param.kind is ParamKind.SPECIAL:  # near: latitude, longitude, km
        lat, lon, km = (_constant(params, value) for value in filter_.values)
        return param.sql.format(
            t=alias, lat=f"{lat}::float8", lon=f"{lon}::float8", km=f"{km}::float8"
        )
    if param.kind is ParamKind.DATE:
        return _date_condition(filter_, alias, params)
    values = [value for value in filter_.values if value is not None]
    if param.codes is not None:
        values = [code for value in values for code in param.codes(value)]
    if param.kind is ParamKind.STRING:
        return _string_condition(filter_, alias, params)
    if not values:
        return "false"
    placeholder = f"ANY({_constant(params, values)}::{_CASTS[param.kind]})"
    if "{value}" in param.sql:
        return param.sql.format(t=alias, value=placeholder)
    return f"({param.sql.format(t=alias)}) = {placeholder}"


def _string_condition(filter_: Filter, alias: str, params: Params) -> str:
    column = filter_.param.sql.format(t=alias)
    if filter_.modifier == "exact":
        return f"{column} = ANY({_constant(params, list(filter_.values))}::text[])"
    escaped = [_like_escaped(str(value).lower()) for value in filter_.values]
    lead = "%" if filter_.modifier == "contains" else ""
    patterns = [f"{lead}{value}%" for value in escaped]
    return f"lower({column}) LIKE ANY({_constant(params, patterns)}::text[])"


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _date_condition(filter_: Filter, alias: str, params: Params) -> str:
    column = filter_.param.sql.format(t=alias)
    (when,) = filter_.values
    operator = DATE_PREFIXES[filter_.modifier]
    if isinstance(when, datetime):
        return f"({column}) {operator} {_constant(params, when)}::timestamptz"
    day = column if filter_.param.dates_only else day_sql(f"({column})")
    return f"{day} {operator} {_constant(params, when)}::date"


def compile_search(search: Search, policy: Policy, base_url: str) -> Statement:
    """One statement answering ``search``: a row of (match entries as JSON text, first and
    last id shown, whether more rows follow, the count when asked, include entries)."""
    resource = search.resource
    params = Params()
    base = _constant(params, base_url)
    where = conditions(search, "t", params, policy)
    backward = search.before is not None
    if search.after is not None:
        where.append(f"t.id > {_constant(params, search.after)}::bigint")
    if backward:
        where.append(f"t.id < {_constant(params, search.before)}::bigint")
    direction = "DESC" if backward else "ASC"
    size = _constant(params, search.count)
    keys = "".join(
        f", {include.key_sql.format(t='t')} AS k{n}" for n, include in enumerate(search.includes)
    )
    body = policy.audited(resource.policy_type, "t", resource.json_sql("t"), params)
    page = (
        f"SELECT t.*, row_number() OVER (ORDER BY t.id {direction}) AS cg_n FROM"
        f" {resource.table} t{_where(where)} ORDER BY t.id {direction} LIMIT {size}::int + 1"
    )
    shown = f"SELECT t.id, {body} AS body{keys} FROM page t WHERE t.cg_n <= {size}::int"
    columns = [
        f"(SELECT json_agg({_entry(resource, 's', 's.body', base, 'match')} ORDER BY s.id)"
        " FROM shown s)::text",
        "(SELECT min(id) FROM shown)",
        "(SELECT max(id) FROM shown)",
        f"(SELECT count(*) FROM page) > {size}::int",
    ]
    if search.total:
        counted = conditions(search, "c", params, policy)
        columns.append(f"(SELECT count(*) FROM {resource.table} c{_where(counted)})")
    else:
        columns.append("NULL::bigint")
    columns.append(_includes(search.includes, params, policy, base))
    return Statement(
        f"WITH page AS MATERIALIZED ({page}), shown AS MATERIALIZED ({shown})"
        f" SELECT {', '.join(columns)}",
        params,
    )


def _includes(includes: tuple[Include, ...], params: Params, policy: Policy, base: str) -> str:
    """The include entries as one JSON array text (null when there are none)."""
    parts = []
    for n, include in enumerate(includes):
        target = RESOURCES[include.target]
        where = [f"i.id IN (SELECT k{n} FROM shown)"]
        visible = policy.condition(target.policy_type, "i", params)
        where += [visible] if visible is not None else []
        body = policy.audited(target.policy_type, "i", target.json_sql("i"), params)
        parts.append(
            f"SELECT {_entry(target, 'i', body, base, 'include')} AS entry, i.id AS id, {n} AS n"
            f" FROM {target.table} i{_where(where)}"
        )
    if not parts:
        return "NULL::text"
    union = " UNION ALL ".join(parts)
    return f"(SELECT json_agg(u.entry ORDER BY u.n, u.id) FROM ({union}) u)::text"


def compile_read(resource: Resource, key: int, policy: Policy) -> Statement:
    """One statement answering a read: the resource as JSON text, or no row when there is
    none the viewer may see (which reads as not found)."""
    params = Params()
    where = [f"t.id = {_constant(params, key)}::bigint"]
    visible = policy.condition(resource.policy_type, "t", params)
    where += [visible] if visible is not None else []
    body = policy.audited(resource.policy_type, "t", resource.json_sql("t"), params)
    return Statement(f"SELECT ({body})::text FROM {resource.table} t{_where(where)}", params)


def _where(conditions_: list[str]) -> str:
    return f" WHERE {' AND '.join(conditions_)}" if conditions_ else ""
