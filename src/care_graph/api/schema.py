"""The root Query and the strawberry schema built from it."""

from __future__ import annotations

import asyncio
from functools import cache
from typing import Any

import strawberry
from strawberry.schema.config import StrawberryConfig

from care_graph.api import lists
from care_graph.api.declare import SQL, Root
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
from care_graph.api.subscriptions import Subscription
from care_graph.api.types import (
    Appointment,
    AuditEvent,
    Connection,
    Node,
    Patient,
    Referral,
    Service,
    Site,
    Slot,
    Staff,
)


def _root(spec: lists.ListSpec) -> dict[str, Any]:
    return {SQL: Root(spec)}


async def _page(info: strawberry.Info, spec: lists.ListSpec, **arguments: Any) -> Any:
    return Connection(page=await info.context.loaders.page(spec, None, arguments))


@strawberry.type(description="Everything care_graph lets a client read.")
class Query:
    @strawberry.field(description="The object with this global ID, or null.")
    async def node(self, info: strawberry.Info, id: strawberry.ID) -> Node | None:
        found: Node | None = await info.context.loaders.node_by_global_id(id)
        return found

    @strawberry.field(description="The objects with these global IDs, null where not found.")
    async def nodes(self, info: strawberry.Info, ids: list[strawberry.ID]) -> list[Node | None]:
        found = await asyncio.gather(*(info.context.loaders.node_by_global_id(one) for one in ids))
        return list(found)

    @strawberry.field(
        description="Referrals; the worklist is ordered by breach date.",
        metadata=_root(lists.REFERRALS),
    )
    async def referrals(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ReferralFilter | None = None,
        order_by: ReferralOrder = ReferralOrder.BREACH_DATE,
    ) -> Connection[Referral]:
        page: Connection[Referral] = await _page(
            info,
            lists.REFERRALS,
            first=first,
            after=after,
            last=last,
            before=before,
            filter=filter,
            order_by=order_by,
        )
        return page

    @strawberry.field(description="Appointment slots.", metadata=_root(lists.SLOTS))
    async def slots(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: SlotFilter | None = None,
        order_by: SlotOrder = SlotOrder.STARTS_AT,
    ) -> Connection[Slot]:
        page: Connection[Slot] = await _page(
            info,
            lists.SLOTS,
            first=first,
            after=after,
            last=last,
            before=before,
            filter=filter,
            order_by=order_by,
        )
        return page

    @strawberry.field(description="Patients.", metadata=_root(lists.PATIENTS))
    async def patients(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: PatientFilter | None = None,
        order_by: NameOrder = NameOrder.NAME,
    ) -> Connection[Patient]:
        page: Connection[Patient] = await _page(
            info,
            lists.PATIENTS,
            first=first,
            after=after,
            last=last,
            before=before,
            filter=filter,
            order_by=order_by,
        )
        return page

    @strawberry.field(description="Staff.", metadata=_root(lists.STAFF))
    async def staff(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: StaffFilter | None = None,
        order_by: NameOrder = NameOrder.NAME,
    ) -> Connection[Staff]:
        page: Connection[Staff] = await _page(
            info,
            lists.STAFF,
            first=first,
            after=after,
            last=last,
            before=before,
            filter=filter,
            order_by=order_by,
        )
        return page

    @strawberry.field(description="Sites.", metadata=_root(lists.SITES))
    async def sites(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: SiteFilter | None = None,
        order_by: NameOrder = NameOrder.NAME,
    ) -> Connection[Site]:
        page: Connection[Site] = await _page(
            info,
            lists.SITES,
            first=first,
            after=after,
            last=last,
            before=before,
            filter=filter,
            order_by=order_by,
        )
        return page

    @strawberry.field(description="Services.", metadata=_root(lists.SERVICES))
    async def services(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: ServiceFilter | None = None,
        order_by: ServiceOrder = ServiceOrder.CODE,
    ) -> Connection[Service]:
        page: Connection[Service] = await _page(
            info,
            lists.SERVICES,
            first=first,
            after=after,
            last=last,
            before=before,
            filter=filter,
            order_by=order_by,
        )
        return page

    @strawberry.field(description="Appointments.", metadata=_root(lists.APPOINTMENTS))
    async def appointments(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: AppointmentFilter | None = None,
        order_by: AppointmentOrder = AppointmentOrder.BOOKED_AT,
    ) -> Connection[Appointment]:
        page: Connection[Appointment] = await _page(
            info,
            lists.APPOINTMENTS,
            first=first,
            after=after,
            last=last,
            before=before,
            filter=filter,
            order_by=order_by,
        )
        return page

    @strawberry.field(
        description="Who did what to which record (administrators only).",
        metadata=_root(lists.AUDIT_EVENTS),
    )
    async def audit_events(
        self,
        info: strawberry.Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        filter: AuditEventFilter | None = None,
        order_by: AuditOrder = AuditOrder.NEWEST,
    ) -> Connection[AuditEvent]:
        page: Connection[AuditEvent] = await _page(
            info,
            lists.AUDIT_EVENTS,
            first=first,
            after=after,
            last=last,
            before=before,
            filter=filter,
            order_by=order_by,
        )
        return page


@cache
def build_schema() -> strawberry.Schema:
    """The schema (built once per process): strawberry owns types, validation, introspection."""
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        config=StrawberryConfig(auto_camel_case=True),
    )


def schema_sdl() -> str:
    """The SDL the server serves (what schema.graphql at the repo root must equal)."""
    return build_schema().as_str() + "\n"
