"""The root Query and the strawberry schema built from it."""

from __future__ import annotations

import asyncio
from functools import cache

import strawberry
from graphql import GraphQLError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from care_graph.api import lists
from care_graph.api.connections import connection
from care_graph.api.declare import SQL, RootRows
from care_graph.api.enums import (
    AppointmentOrder,
    AuditOrder,
    NameOrder,
    ReferralOrder,
    ServiceOrder,
    SlotOrder,
)
from care_graph.api.inputs import (
    AppointmentFilter,
    AuditEventFilter,
    PatientFilter,
    ReferralFilter,
    ServiceFilter,
    SiteFilter,
    SlotFilter,
    StaffFilter,
)
from care_graph.api.mutations import Mutation
from care_graph.api.scalars import SCALARS
from care_graph.api.subscriptions import Subscription
from care_graph.api.types import (
    Appointment,
    AuditEvent,
    CapacityWeek,
    Connection,
    Node,
    Patient,
    Referral,
    Service,
    Site,
    Slot,
    Staff,
)
from care_graph.db import capacity_store


@strawberry.type(description="Everything care_graph lets a client read.")
class Query:
    @strawberry.field(
        description="The patient the token speaks for, with their referrals, appointments and"
        " live offers (Referral.offer); null for a token of any other role."
    )
    async def me(self, info: strawberry.Info) -> Patient | None:
        patient_id = info.context.viewer.patient_id
        if patient_id is None:
            return None
        found: Patient | None = await info.context.loaders.node("Patient", patient_id)
        return found

    @strawberry.field(description="The object with this global ID, or null.")
    async def node(self, info: strawberry.Info, id: strawberry.ID) -> Node | None:
        found: Node | None = await info.context.loaders.node_by_global_id(id)
        return found

    @strawberry.field(description="The objects with these global IDs, null where not found.")
    async def nodes(self, info: strawberry.Info, ids: list[strawberry.ID]) -> list[Node | None]:
        found = await asyncio.gather(*(info.context.loaders.node_by_global_id(one) for one in ids))
        return list(found)

    referrals: Connection[Referral] = connection(
        Referral,
        lists.REFERRALS,
        ReferralFilter,
        ReferralOrder,
        ReferralOrder.BREACH_DATE,
        description="Referrals; the worklist is ordered by breach date.",
        nested=False,
    )

    slots: Connection[Slot] = connection(
        Slot,
        lists.SLOTS,
        SlotFilter,
        SlotOrder,
        SlotOrder.STARTS_AT,
        description="Appointment slots.",
        nested=False,
    )

    patients: Connection[Patient] = connection(
        Patient,
        lists.PATIENTS,
        PatientFilter,
        NameOrder,
        NameOrder.NAME,
        description="Patients.",
        nested=False,
    )

    staff: Connection[Staff] = connection(
        Staff,
        lists.STAFF,
        StaffFilter,
        NameOrder,
        NameOrder.NAME,
        description="Staff.",
        nested=False,
    )

    sites: Connection[Site] = connection(
        Site,
        lists.SITES,
        SiteFilter,
        NameOrder,
        NameOrder.NAME,
        description="Sites.",
        nested=False,
    )

    services: Connection[Service] = connection(
        Service,
        lists.SERVICES,
        ServiceFilter,
        ServiceOrder,
        ServiceOrder.CODE,
        description="Services.",
        nested=False,
    )

    appointments: Connection[Appointment] = connection(
        Appointment,
        lists.APPOINTMENTS,
        AppointmentFilter,
        AppointmentOrder,
        AppointmentOrder.BOOKED_AT,
        description="Appointments.",
        nested=False,
    )

    @strawberry.field(
        description="The operating picture of a region (clinic staff only): for each service"
        " it offers or its patients are referred to, and each week from the current one"
        " (Monday to Sunday, Europe/London), what arrives, what is on offer and booked, and what"
        " breaches; the waiting list as it stands on the current week's row. weeks: 1 to 52.",
        metadata={SQL: RootRows(lists.CAPACITY_OUTLOOK)},
    )
    async def capacity_outlook(
        self,
        info: strawberry.Info,
        region: str,
        service: str | None = None,
        weeks: int = capacity_store.DEFAULT_WEEKS,
    ) -> list[CapacityWeek]:
        found: list[CapacityWeek] = await info.context.loaders.rows(
            lists.CAPACITY_OUTLOOK, {"region": region, "service": service, "weeks": weeks}
        )
        return found

    audit_events: Connection[AuditEvent] = connection(
        AuditEvent,
        lists.AUDIT_EVENTS,
        AuditEventFilter,
        AuditOrder,
        AuditOrder.NEWEST,
        description="Who did what to which record (administrators only).",
        nested=False,
    )


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Nothing: errors are logged where they are shaped for the client (api/errors.py),
        once and without the document or its variables, which strawberry's log would carry."""


@cache
def build_schema() -> strawberry.Schema:
    """The schema (built once per process): strawberry owns types, validation, introspection."""
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True, scalar_map=SCALARS),
    )


def schema_sdl() -> str:
    """The SDL the server serves (what schema.graphql at the repo root must equal)."""
    return build_schema().as_str() + "\n"
