"""GraphQL input types: the filters each list takes (lists.py turns them into SQL)."""

from __future__ import annotations

from datetime import date, datetime

import strawberry

from care_graph.api.enums import (
    AppointmentStatus,
    Priority,
    ReferralStatus,
    ServiceKind,
    SlotStatus,
    StaffRole,
)


@strawberry.input(description="Referrals matching every given condition.")
class ReferralFilter:
    status: list[ReferralStatus] | None = None
    priority: list[Priority] | None = None
    service_code: str | None = strawberry.field(default=None, description="Receiving service.")
    region: str | None = strawberry.field(default=None, description="The patient's region.")
    patient_id: strawberry.ID | None = None
    waiting_longer_than_days: int | None = None
    breaching_before: date | None = None


@strawberry.input(description="A circle on the map.")
class NearInput:
    latitude: float
    longitude: float
    radius_km: float


@strawberry.input(description="Slots matching every given condition.")
class SlotFilter:
    service_code: str | None = None
    site_id: strawberry.ID | None = None
    region: str | None = None
    starts_after: datetime | None = strawberry.field(default=None, description="Inclusive.")
    starts_before: datetime | None = strawberry.field(default=None, description="Exclusive.")
    status: list[SlotStatus] | None = None
    near: NearInput | None = strawberry.field(
        default=None, description="At a site within radiusKm of the point."
    )


@strawberry.input(description="Staff matching every given condition.")
class StaffFilter:
    role: list[StaffRole] | None = None
    skill: str | None = None
    site_id: strawberry.ID | None = strawberry.field(default=None, description="Base site.")


@strawberry.input(description="Patients matching every given condition.")
class PatientFilter:
    nhs_number: str | None = strawberry.field(default=None, description="Spaces are ignored.")
    family_name: str | None = None
    region: str | None = None


@strawberry.input(description="Sites matching every given condition.")
class SiteFilter:
    region: str | None = None
    service_code: str | None = strawberry.field(default=None, description="Offered here.")


@strawberry.input(description="Services matching every given condition.")
class ServiceFilter:
    kind: list[ServiceKind] | None = None


@strawberry.input(description="Audit events matching every given condition.")
class AuditEventFilter:
    record_type: str | None = strawberry.field(default=None, description="patient, referral, …")
    operation: str | None = strawberry.field(default=None, description="READ, BOOK, …")
    actor: str | None = None


@strawberry.input(description="Appointments matching every given condition.")
class AppointmentFilter:
    status: list[AppointmentStatus] | None = None
