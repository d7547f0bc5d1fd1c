"""GraphQL subscriptions over the graphql-transport-ws protocol, fed by PostgreSQL
LISTEN/NOTIFY (db/live.py): slot availability for a service and region, and appointment
changes — a patient hears only their own, a referrer those of their referrals."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import strawberry

from care_graph.api.enums import AppointmentStatus, SlotStatus
from care_graph.api.ids import encode_global_id
from care_graph.auth import Role, Viewer
from care_graph.db.live import APPOINTMENTS, OFFERS, SLOTS, LiveEvents


@dataclass(frozen=True, slots=True)
class LiveContext:
    """What subscription resolvers see as ``info.context``: the events and the caller (proved
    at connect, api/websocket.py)."""

    live: LiveEvents
    viewer: Viewer


@strawberry.type(description="A slot became free, held or booked.")
class SlotAvailabilityEvent:
    slot_id: strawberry.ID
    service_code: str
    region: str
    status: SlotStatus
    starts_at: datetime


@strawberry.type(description="An appointment was booked or cancelled.")
class AppointmentEvent:
    appointment_id: strawberry.ID
    referral_id: strawberry.ID
    slot_id: strawberry.ID
    status: AppointmentStatus


@strawberry.type(description="A freed slot held for a waiting referral: book it before it lapses.")
class SlotOfferEvent:
    slot_id: strawberry.ID
    referral_id: strawberry.ID
    starts_at: datetime
    expires_at: datetime


def _may_hear(viewer: Viewer, event: dict[str, Any]) -> bool:
    if viewer.role is Role.PATIENT:
        return bool(event["patient"] == viewer.patient_id)
    if viewer.role is Role.REFERRER:
        return bool(event["referrer"] == viewer.subject)
    return True


def _enum_name(code: str) -> str:
    return code.upper().replace("-", "_")


@strawberry.type(description="Changes as they happen.")
class Subscription:
    @strawberry.subscription(description="Slots of a service (and region) changing status.")
    async def slot_availability_changed(
        self, info: strawberry.Info, service_code: str, region: str | None = None
    ) -> AsyncGenerator[SlotAvailabilityEvent, None]:
        async for event in info.context.live.subscribe(SLOTS):
            if event["serviceCode"] != service_code or region not in (None, event["region"]):
                continue
            yield SlotAvailabilityEvent(
                slot_id=strawberry.ID(encode_global_id("Slot", event["slot"])),
                service_code=event["serviceCode"],
                region=event["region"],
                status=SlotStatus(_enum_name(event["status"])),
                starts_at=datetime.fromisoformat(event["startsAt"]),
            )

    @strawberry.subscription(description="Appointments the caller may see, as they change.")
    async def appointment_changed(
        self, info: strawberry.Info
    ) -> AsyncGenerator[AppointmentEvent, None]:
        viewer: Viewer = info.context.viewer
        async for event in info.context.live.subscribe(APPOINTMENTS):
            if not _may_hear(viewer, event):
                continue
            yield AppointmentEvent(
                appointment_id=strawberry.ID(encode_global_id("Appointment", event["appointment"])),
                referral_id=strawberry.ID(encode_global_id("Referral", event["referral"])),
                slot_id=strawberry.ID(encode_global_id("Slot", event["slot"])),
                status=AppointmentStatus(_enum_name(event["status"])),
            )

    @strawberry.subscription(description="Freed slots held for referrals the caller may see.")
    async def slot_offered(self, info: strawberry.Info) -> AsyncGenerator[SlotOfferEvent, None]:
        async for event in _offers(info):
            yield event


async def _offers(info: strawberry.Info) -> AsyncGenerator[SlotOfferEvent, None]:
    viewer: Viewer = info.context.viewer
    async for event in info.context.live.subscribe(OFFERS):
        if _may_hear(viewer, event):
            yield SlotOfferEvent(
                slot_id=strawberry.ID(encode_global_id("Slot", event["slot"])),
                referral_id=strawberry.ID(encode_global_id("Referral", event["referral"])),
                starts_at=datetime.fromisoformat(event["startsAt"]),
                expires_at=datetime.fromisoformat(event["expires"]),
            )
