"""Who sees which rows, declared once per role and type, and enforced in the SQL that reads them
(the compiled statement and the resolver path's loaders alike): a row the viewer may not see is
simply not there, so a forbidden record reads as not found.

Clinicians, schedulers and administrators see every row; services, sites, staff, rosters and
slots are visible to every authenticated caller, because patients search them to book.
"""

from __future__ import annotations

from dataclasses import dataclass

from care_graph.api.args import Arg, Params
from care_graph.api.errors import ApiError
from care_graph.auth import Role, Viewer
from care_graph.db.care_store import referrer_reaches_patient
from care_graph.errors import ErrorCode

_OWN_PATIENT = "{patient}::bigint"
_OWN_REFERRALS = "{subject}::text"

_ADMINISTRATORS_ONLY = {"AuditEvent": "false"}

ROW_FILTERS: dict[Role, dict[str, str]] = {
    Role.CLINICIAN: _ADMINISTRATORS_ONLY,
    Role.SCHEDULER: _ADMINISTRATORS_ONLY,
    Role.PATIENT: {
        **_ADMINISTRATORS_ONLY,
        "Patient": f"{{t}}.id = {_OWN_PATIENT}",
        "Referral": f"{{t}}.patient_id = {_OWN_PATIENT}",
        "Appointment": "{t}.referral_id IN (SELECT id FROM referrals"
        f" WHERE patient_id = {_OWN_PATIENT})",
    },
    Role.REFERRER: {
        **_ADMINISTRATORS_ONLY,
        # the patients they registered or referred: the one rule, shared with whom they may
        # refer (domain/referrals.py)
        "Patient": referrer_reaches_patient("{t}", _OWN_REFERRALS),
        "Referral": f"{{t}}.referrer_subject = {_OWN_REFERRALS}",
        "Appointment": "{t}.referral_id IN (SELECT id FROM referrals"
        f" WHERE referrer_subject = {_OWN_REFERRALS})",
    },
}


# The roles that see every row (as the database's cg_sees_every_row does): who may read what
# is drawn from all patients' rows, such as the capacity outlook's counts.
CLINIC_STAFF = frozenset({Role.CLINICIAN, Role.SCHEDULER, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class Policy:
    """Row filters for one role; the viewer's own values are bind parameters. ``filtered``
    False leaves the rows to PostgreSQL's row-level security alone (tests prove it suffices)."""

    role: Role
    filtered: bool = True

    def condition(self, type_name: str, alias: str, params: Params) -> str | None:
        """The SQL a row of ``type_name`` (aliased ``alias``) must meet, or None for all rows."""
        if not self.filtered:
            return None
        template = ROW_FILTERS.get(self.role, {}).get(type_name)
        if template is None:
            return None
        values = {}
        if "{patient}" in template:
            values["patient"] = params.add(Arg(None, lambda request: request.viewer.patient_id))
        if "{subject}" in template:
            values["subject"] = params.add(Arg(None, lambda request: request.viewer.subject))
        return template.format(t=alias, **values)

    def require(self, readers: frozenset[Role], title: str) -> None:
        """Refuse (FORBIDDEN) a viewer whose role is not among a list's ``readers``: for lists
        whose every row is drawn from other people's records, where hiding rows would give
        wrong figures rather than fewer."""
        if self.role not in readers:
            raise ApiError(ErrorCode.FORBIDDEN, f"{title} is read by clinic staff only")

    def audited(self, type_name: str, alias: str, json_sql: str, params: Params) -> str:
        """``json_sql`` (an object of ``type_name`` read from row ``alias``) wrapped so that
        reading a patient-identifiable record writes its audit event in the same statement."""
        record_type = AUDITED_READS.get(type_name)
        if record_type is None:
            return json_sql
        actor = params.add(Arg(None, lambda request: request.viewer.subject))
        role = params.add(Arg(None, lambda request: str(request.viewer.role)))
        return (
            f"{AUDIT_FUNCTION}('{record_type}', {alias}.id, {actor}::text, {role}::text,"
            f" {json_sql})"
        )


# The SQL function that returns a record read and writes its audit event (migration 0005): a
# statement calling it writes, so it runs on the primary, never on a standby.
AUDIT_FUNCTION = "cg_audited_read"

# Node types whose reads are audited, and the record type their audit events name.
AUDITED_READS: dict[str, str] = {"Patient": "patient"}


def policy_for(viewer: Viewer, *, filtered: bool = True) -> Policy:
    """The policy that applies to a viewer."""
    return Policy(viewer.role, filtered)
