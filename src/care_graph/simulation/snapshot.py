"""A region's world, copied out of the database: read by COPY into arrays inside one
repeatable-read transaction (one consistent moment), and never written back."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from care_graph.db import matching_store, roster_store, simulation_store
from care_graph.db.pool import Connection
from care_graph.domain.waiting_times import WaitingStandards
from care_graph.errors import CareGraphError, ErrorCode
from care_graph.matching.cost import TIER_ORDER
from care_graph.simulation.world import MAX_HORIZON_DAYS, Assumptions, World


async def snapshot(
    connection: Connection,
    region: str,
    services: list[str] | None = None,
    assumptions: Assumptions | None = None,
    standards: WaitingStandards | None = None,
) -> World:
    """The world of ``region`` (its patients' referrals, its sites' slots), for ``services``
    or all of them; arrival rates from the referrals received in the last
    ``assumptions.lookback_days`` days. Read in a repeatable-read transaction, or inside the
    caller's when one is open (a GraphQL mutation's)."""
    assumptions = assumptions or Assumptions()
    priorities = [str(priority) for priority in TIER_ORDER]
    # one consistent moment: a repeatable-read transaction of its own, or the caller's
    own = not connection.is_in_transaction()
    scope = connection.transaction(isolation="repeatable_read", readonly=True) if own else None
    async with scope or contextlib.nullcontext():
        known = await connection.fetchval("SELECT count(*) FROM regions WHERE code = $1", region)
        if not known:
            raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown region {region!r}")
        catalogue = await simulation_store.services(connection)
        codes = {code for code, _, _ in catalogue}
        unknown = sorted(set(services or ()) - codes)
        if unknown:
            raise CareGraphError(ErrorCode.INVALID_ARGUMENT, f"unknown service {unknown[0]!r}")
        today, minute = await simulation_store.clinic_now(connection)
        skills = await matching_store.skill_codes(connection)
        waiting = await matching_store.waiting_referrals(
            connection, services, [region], skills, priorities
        )
        slots = await simulation_store.rostered_slots(connection, region, services)
        sites = await matching_store.sites(connection)
        masks = await matching_store.staff_skill_masks(connection, skills)
        arrived = await simulation_store.recent_arrivals(
            connection, region, services, priorities, assumptions.lookback_days
        )
        staff = await roster_store.region_staff_terms(connection, region, today)
        shifts = await roster_store.shifts_between(
            connection,
            [terms.staff for terms in staff],
            today,
            today + timedelta(days=MAX_HORIZON_DAYS),
        )
        offered = await roster_store.site_services(connection, region)
    rates = {
        (int(service), int(tier)): int(count) / assumptions.lookback_days
        for service, tier, count in zip(
            arrived["service"].tolist(),
            arrived["tier"].tolist(),
            arrived["count"].tolist(),
            strict=True,
        )
    }
    return World(
        region=region,
        today=today,
        now_minute=minute,
        waiting=waiting,
        slots=slots,
        sites=sites,
        staff_masks=masks,
        arrivals=rates,
        services={code: (service_id, minutes) for code, service_id, minutes in catalogue},
        standards=standards or WaitingStandards.from_environment(),
        staff=tuple(staff),
        shifts=shifts,
        site_services=frozenset(offered),
    )
