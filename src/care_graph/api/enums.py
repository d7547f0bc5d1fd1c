"""GraphQL enums. Each value's name is the code stored in the database, except FHIR codes with
hyphens, which GraphQL names cannot hold: ``busy-tentative`` is served as ``BUSY_TENTATIVE``.
Priority and ReferralStatus are the domain's own classes, served as they are."""

from __future__ import annotations

from enum import Enum

import strawberry

from care_graph.domain.lifecycle import ReferralStatus
from care_graph.domain.waiting_times import Priority

__all__ = [
    "AppointmentOrder",
    "AppointmentStatus",
    "AuditOrder",
    "NameOrder",
    "Priority",
    "ReferralOrder",
    "ReferralStatus",
    "ReferrerKind",
    "ServiceKind",
    "ServiceOrder",
    "SlotOrder",
    "SlotStatus",
    "StaffRole",
]


@strawberry.enum(description="What kind of service: primary care or a hospital specialty.")
class ServiceKind(Enum):
    GP = "GP"
    OPTOMETRY = "OPTOMETRY"
    DENTISTRY = "DENTISTRY"
    COMMUNITY_PHARMACY = "COMMUNITY_PHARMACY"
    SPECIALTY = "SPECIALTY"


@strawberry.enum(description="A member of staff's professional role.")
class StaffRole(Enum):
    GP = "GP"
    NURSE = "NURSE"
    OPTOMETRIST = "OPTOMETRIST"
    DENTIST = "DENTIST"
    PHARMACIST = "PHARMACIST"
    CONSULTANT = "CONSULTANT"
    REGISTRAR = "REGISTRAR"
    ALLIED_HEALTH = "ALLIED_HEALTH"


@strawberry.enum(description="Who made a referral.")
class ReferrerKind(Enum):
    GP = "GP"
    OPTOMETRIST = "OPTOMETRIST"
    DENTIST = "DENTIST"
    PHARMACIST = "PHARMACIST"
    CONSULTANT = "CONSULTANT"


# Written once in the domain, served as they are: strawberry.enum registers the class itself.
strawberry.enum(
    Priority, description="Referral priority, as the national e-Referral Service codes it."
)
strawberry.enum(
    ReferralStatus, description="Where a referral is in its lifecycle (see fhirStatus for FHIR's)."
)


@strawberry.enum(description="FHIR R4 Slot.status.")
class SlotStatus(Enum):
    FREE = "FREE"
    BUSY = "BUSY"
    BUSY_UNAVAILABLE = "BUSY_UNAVAILABLE"
    BUSY_TENTATIVE = "BUSY_TENTATIVE"
    ENTERED_IN_ERROR = "ENTERED_IN_ERROR"


@strawberry.enum(description="FHIR R4 Appointment.status.")
class AppointmentStatus(Enum):
    PROPOSED = "PROPOSED"
    PENDING = "PENDING"
    BOOKED = "BOOKED"
    ARRIVED = "ARRIVED"
    FULFILLED = "FULFILLED"
    CANCELLED = "CANCELLED"
    NOSHOW = "NOSHOW"
    ENTERED_IN_ERROR = "ENTERED_IN_ERROR"
    CHECKED_IN = "CHECKED_IN"
    WAITLIST = "WAITLIST"


@strawberry.enum(description="Orderings of referrals.")
class ReferralOrder(Enum):
    BREACH_DATE = "BREACH_DATE"
    LONGEST_WAITING = "LONGEST_WAITING"
    NEWEST = "NEWEST"


@strawberry.enum(description="Orderings of slots.")
class SlotOrder(Enum):
    STARTS_AT = "STARTS_AT"


@strawberry.enum(description="Orderings of people: by family name, then given name.")
class NameOrder(Enum):
    NAME = "NAME"


@strawberry.enum(description="Orderings of services.")
class ServiceOrder(Enum):
    CODE = "CODE"


@strawberry.enum(description="Orderings of audit events.")
class AuditOrder(Enum):
    NEWEST = "NEWEST"


@strawberry.enum(description="Orderings of appointments.")
class AppointmentOrder(Enum):
    BOOKED_AT = "BOOKED_AT"
