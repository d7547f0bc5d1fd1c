"""Generate demo data as columns of numpy arrays: same seed and anchor date, same rows.

The anchor date is "today" for the data: rosters and slots run over the weeks after it and
referrals have waited up to it. Everything is vectorised so that the ``region`` scale (half a
million slots) takes seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from care_graph._matcher import nearest_k
from care_graph.clinic_time import CLINIC_TIME
from care_graph.domain.lifecycle import FINAL, ReferralStatus
from care_graph.domain.statuses import AppointmentStatus, SlotStatus
from care_graph.domain.waiting_times import Priority, WaitingStandards
from care_graph.nhs import synthetic_nhs_numbers
from care_graph.seed import catalogue
from care_graph.seed.geography import REGIONS, Region
from care_graph.seed.scales import Scale

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
Column = npt.NDArray[Any] | list[Any]

SESSIONS = ((time(9, 0), time(13, 0)), (time(13, 30), time(17, 30)))  # morning, afternoon clinics
SESSION_WORKED = (0.85, 0.70)
DAY_WORKED = 0.8
TERMS_STREAM = 1  # the random stream of staff terms, apart from the main one
CONTRACTS = np.array([2250, 2250, 2250, 1800])  # minutes a week: 37.5 hours, or 30 for a quarter
OTHER_SITES = 2  # sites a clinician may also work at, besides their base
LEAVE_SHARE = 0.4  # staff with a week of leave booked beyond the published rosters
PRIORITY_MIX = ((Priority.URGENT, 0.05), (Priority.TWO_WEEK_WAIT, 0.15), (Priority.ROUTINE, 0.80))
STATUS_MIX = (
    (ReferralStatus.SUBMITTED, 0.08),
    (ReferralStatus.ACCEPTED, 0.72),
    (ReferralStatus.BOOKED, 0.14),
    (ReferralStatus.COMPLETED, 0.03),
    (ReferralStatus.REJECTED, 0.02),
    (ReferralStatus.CANCELLED, 0.01),
)
REJECTION_REASONS = (
    "Insufficient information",
    "Not appropriate for this service",
    "Duplicate referral",
)


@dataclass(slots=True)
class Table:
    """One table's rows as named columns of equal length (numpy arrays or lists)."""

    name: str
    columns: dict[str, Column] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0


@dataclass(slots=True)
class DemoData:
    """All generated tables, in an order that satisfies their foreign keys."""

    tables: list[Table]

    def table(self, name: str) -> Table:
        """The table called ``name``."""
        return next(table for table in self.tables if table.name == name)

    def counts(self) -> dict[str, int]:
        """Rows per table, in load order."""
        return {table.name: len(table) for table in self.tables}


def generate(
    scale: Scale,
    *,
    seed: int = 0,
    anchor: date,
    standards: WaitingStandards | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> DemoData:
    """Make demo data of the given scale; the same arguments always give the same rows."""
    report = progress or (lambda _name, _rows: None)
    generator = _Generator(
        scale,
        np.random.default_rng(seed),
        anchor,
        standards or WaitingStandards(),
        np.random.default_rng([seed, TERMS_STREAM]),
    )
    tables: list[Table] = []
    for build in generator.steps():
        for table in build():
            tables.append(table)
            report(table.name, len(table))
    return DemoData(tables)


def _weights(values: Sequence[float]) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    normalised: FloatArray = array / array.sum()
    return normalised


def _allocate(total: int, weights: FloatArray, minimum: int = 0) -> IntArray:
    """Split ``total`` into whole parts proportional to ``weights``, each at least ``minimum``."""
    base = np.full(len(weights), minimum, dtype=np.int64)
    rest = max(total - int(base.sum()), 0)
    exact = weights * rest
    parts = np.floor(exact).astype(np.int64)
    remainder = rest - int(parts.sum())
    parts[np.argsort(-(exact - parts), kind="stable")[:remainder]] += 1
    return base + parts


def _to_utc(local_dates: npt.NDArray[np.datetime64], at: time) -> npt.NDArray[np.datetime64]:
    """Local wall-clock time ``at`` on each date in Europe/London, as UTC datetime64[us]."""
    unique, inverse = np.unique(local_dates, return_inverse=True)
    offsets = np.array(
        [
            int(datetime.combine(day.astype(date), at, CLINIC_TIME).utcoffset().total_seconds())  # type: ignore[union-attr]
            for day in unique
        ],
        dtype=np.int64,
    )
    clock = np.timedelta64(at.hour * 3600 + at.minute * 60, "s")
    local = unique.astype("datetime64[s]") + clock - offsets.astype("timedelta64[s]")
    utc: npt.NDArray[np.datetime64] = local.astype("datetime64[us]")[inverse]
    return utc


class _Generator:
    """Builds the tables step by step; each step may use what earlier steps made."""

    def __init__(
        self,
        scale: Scale,
        rng: np.random.Generator,
        anchor: date,
        standards: WaitingStandards,
        terms_rng: np.random.Generator,
    ) -> None:
        self.scale = scale
        self.rng = rng
        self.terms_rng = terms_rng  # staff terms draw apart, so the other tables stay as they were
        self.anchor = anchor
        self.as_of = np.datetime64(
            datetime.combine(anchor, time(0), UTC).replace(tzinfo=None), "us"
        )
        self.standards = standards
        self.service_codes = [spec.code for spec in catalogue.SERVICES]
        self.service_id = {code: index + 1 for index, code in enumerate(self.service_codes)}
        self.slot_minutes = np.array([0] + [spec.slot_minutes for spec in catalogue.SERVICES])

    def steps(self) -> list[Callable[[], list[Table]]]:
        """The generation steps, in foreign-key order."""
        return [
            self.reference_data,
            self.sites,
            self.staff,
            self.rosters,
            self.staff_terms,
            self.patients,
            self.referrals,
            self.bookings,
        ]

    # --- reference data -------------------------------------------------------------------
    def reference_data(self) -> list[Table]:
        regions = Table(
            "regions", {"code": [r.code for r in REGIONS], "name": [r.name for r in REGIONS]}
        )
        skill_rows = [(spec.code, spec.name) for spec in catalogue.SERVICES]
        skill_rows += list(catalogue.EXTRA_SKILLS)
        skills = Table(
            "skills",
            {"code": [code for code, _ in skill_rows], "name": [name for _, name in skill_rows]},
        )
        services = Table(
            "services",
            {
                "id": list(self.service_id.values()),
                "code": self.service_codes,
                "name": [spec.name for spec in catalogue.SERVICES],
                "kind": [spec.kind for spec in catalogue.SERVICES],
                "slot_minutes": [spec.slot_minutes for spec in catalogue.SERVICES],
            },
        )
        return [regions, skills, services]

    # --- sites ----------------------------------------------------------------------------
    def sites(self) -> list[Table]:
        rng = self.rng
        kinds = [kind for kind, _ in catalogue.SITE_KINDS]
        kind_weights = _weights([share for _, share in catalogue.SITE_KINDS])
        per_region = _allocate(
            self.scale.sites, _weights([r.population for r in REGIONS]), minimum=len(kinds)
        )
        region_of, kind_of, town_of, lat, lon = [], [], [], [], []
        for region_index, (region, count) in enumerate(zip(REGIONS, per_region, strict=True)):
            # every region gets one site of each kind first, so each kind exists everywhere
            chosen = kinds + list(rng.choice(kinds, size=count - len(kinds), p=kind_weights))
            towns = rng.choice(
                len(region.towns), size=count, p=_weights([t.weight for t in region.towns])
            )
            for kind, town_index in zip(chosen, towns, strict=True):
                town = region.towns[town_index]
                region_of.append(region_index)
                kind_of.append(kind)
                town_of.append(town)
                lat.append(town.latitude + rng.normal(0, 0.03))
                lon.append(town.longitude + rng.normal(0, 0.045))
        n = len(region_of)
        self.site_region = np.array(region_of, dtype=np.int64)
        self.site_lat = np.array(lat)
        self.site_lon = np.array(lon)
        self.site_kind = np.array(kind_of)
        names = [
            self._site_name(kind, town.name) for kind, town in zip(kind_of, town_of, strict=True)
        ]
        sites = Table(
            "sites",
            {
                "id": np.arange(1, n + 1),
                "code": [f"S{index:05d}" for index in range(1, n + 1)],
                "name": names,
                "region_code": [REGIONS[r].code for r in region_of],
                "town": [town.name for town in town_of],
                "postcode": [self._postcode(town.outward_code) for town in town_of],
                "latitude": self.site_lat,
                "longitude": self.site_lon,
            },
        )
        self.site_services = self._site_services(kind_of, region_of)
        pairs = sorted(
            (site + 1, service)
            for site, services in enumerate(self.site_services)
            for service in services
        )
        site_services = Table(
            "site_services", {"site_id": [p[0] for p in pairs], "service_id": [p[1] for p in pairs]}
        )
        return [sites, site_services]

    def _site_name(self, kind: str, town: str) -> str:
        pattern = str(self.rng.choice(catalogue.SITE_NAME_PATTERNS[kind]))
        return pattern.format(
            town=town,
            street=self.rng.choice(catalogue.STREETS),
            saint=self.rng.choice(catalogue.SAINTS),
        )

    def _postcode(self, outward: str) -> str:
        letters = "ABDEFGHJLNPQRSTUWXYZ"  # the letters used in inward codes
        digit = int(self.rng.integers(1, 10))
        pair = "".join(self.rng.choice(list(letters), size=2))
        return f"{outward} {digit}{pair}"

    def _site_services(self, kinds: list[str], regions: list[int]) -> list[list[int]]:
        specialties = [self.service_id[spec.code] for spec in catalogue.SPECIALTIES]
        offered: list[list[int]] = []
        seen_hospital: set[int] = set()
        for kind, region in zip(kinds, regions, strict=True):
            if kind == "HOSPITAL":
                if region not in seen_hospital:  # each region's first hospital offers everything
                    seen_hospital.add(region)
                    offered.append(list(specialties))
                else:
                    count = int(self.rng.integers(6, 13))
                    offered.append(
                        sorted(
                            int(s) for s in self.rng.choice(specialties, size=count, replace=False)
                        )
                    )
            elif kind == "GP_PRACTICE":
                services = [self.service_id["GENERAL_PRACTICE"]]
                if self.rng.random() < 0.2:
                    services.append(self.service_id["COMMUNITY_PHARMACY"])
                offered.append(services)
            else:
                code = {
                    "OPTICIAN": "OPTOMETRY",
                    "DENTAL_PRACTICE": "DENTISTRY",
                    "PHARMACY": "COMMUNITY_PHARMACY",
                }[kind]
                offered.append([self.service_id[code]])
        return offered

    # --- staff ----------------------------------------------------------------------------
    def staff(self) -> list[Table]:
        rng = self.rng
        capacity = _weights([r.population * r.capacity for r in REGIONS])
        per_region = _allocate(self.scale.staff, capacity)
        base_site, primary, secondary = [], [], []
        for region_index, count in enumerate(per_region):
            in_region = np.flatnonzero(self.site_region == region_index)
            hospital = self.site_kind[in_region] == "HOSPITAL"
            # six in ten clinicians work in hospitals, the rest across primary care sites
            weight = np.where(
                hospital, 0.6 / max(hospital.sum(), 1), 0.4 / max((~hospital).sum(), 1)
            )
            sites = rng.choice(in_region, size=int(count), p=weight / weight.sum())
            for site in sites:
                offered = self.site_services[site]
                first = int(rng.choice(offered))
                others = [s for s in offered if s != first]
                second = int(rng.choice(others)) if others and rng.random() < 0.15 else 0
                base_site.append(int(site))
                primary.append(first)
                secondary.append(second)
        n = len(base_site)
        self.staff_site = np.array(base_site, dtype=np.int64)
        self.staff_primary = np.array(primary, dtype=np.int64)
        self.staff_secondary = np.array(secondary, dtype=np.int64)
        roles = [str(rng.choice(catalogue.SERVICES[service - 1].roles)) for service in primary]
        skill_staff: list[int] = []
        skill_code: list[str] = []
        self.staff_skills: list[set[str]] = []
        for index in range(n):
            skills = {self.service_codes[primary[index] - 1]}
            if secondary[index]:
                skills.add(self.service_codes[secondary[index] - 1])
            skills |= self._extra_skills(skills)
            self.staff_skills.append(skills)
            for code in sorted(skills):
                skill_staff.append(index + 1)
                skill_code.append(code)
        staff = Table(
            "staff",
            {
                "id": np.arange(1, n + 1),
                "given_name": list(rng.choice(catalogue.GIVEN_NAMES, size=n)),
                "family_name": list(rng.choice(catalogue.FAMILY_NAMES, size=n)),
                "role": roles,
                "base_site_id": self.staff_site + 1,
                "contracted_minutes_week": self.terms_rng.choice(CONTRACTS, size=n),
            },
        )
        skills_table = Table("staff_skills", {"staff_id": skill_staff, "skill_code": skill_code})
        return [staff, skills_table]

    def _extra_skills(self, services: set[str]) -> set[str]:
        extra = set()
        if "PAEDIATRICS" in services or self.rng.random() < 0.15:
            extra.add("PAEDIATRIC_CARE")
        if self.rng.random() < 0.03:
            extra.add("BSL_SIGNING")
        if services & {"DENTISTRY", "ORAL_SURGERY", "GASTROENTEROLOGY"} and self.rng.random() < 0.3:
            extra.add("SEDATION")
        if services & {"GENERAL_PRACTICE", "DERMATOLOGY", "GENERAL_SURGERY"} and (
            self.rng.random() < 0.25
        ):
            extra.add("MINOR_SURGERY")
        return extra

    def staff_terms(self) -> list[Table]:
        """Where staff may work besides their base site (the nearest other sites of their
        region offering their main service) and their leave (a week, for some, in the weeks
        after the published rosters)."""
        staff_sites: tuple[list[int], list[int]] = ([], [])
        for index, base in enumerate(self.staff_site.tolist()):
            service = int(self.staff_primary[index])
            others = [
                site
                for site in np.flatnonzero(self.site_region == self.site_region[base]).tolist()
                if site != base and service in self.site_services[site]
            ]
            if not others:
                continue
            rise = self.site_lat[others] - self.site_lat[base]
            run = (self.site_lon[others] - self.site_lon[base]) * np.cos(
                np.radians(self.site_lat[base])
            )
            for site in np.array(others)[np.argsort(np.hypot(rise, run), kind="stable")][
                :OTHER_SITES
            ].tolist():
                staff_sites[0].append(index + 1)
                staff_sites[1].append(int(site) + 1)
        n = len(self.staff_site)
        on_leave = np.flatnonzero(self.terms_rng.random(n) < LEAVE_SHARE)
        first_monday = self.anchor + timedelta(days=7 - self.anchor.weekday())
        weeks = self.terms_rng.integers(self.scale.weeks, self.scale.weeks + 10, len(on_leave))
        starts = [first_monday + timedelta(weeks=int(week)) for week in weeks]
        return [
            Table("staff_sites", {"staff_id": staff_sites[0], "site_id": staff_sites[1]}),
            Table(
                "staff_leave",
                {
                    "id": np.arange(1, len(on_leave) + 1),
                    "staff_id": on_leave + 1,
                    "first_day": starts,
                    "last_day": [day + timedelta(days=4) for day in starts],
                },
            ),
        ]

    # --- rosters and slots ----------------------------------------------------------------
    def rosters(self) -> list[Table]:
        rng = self.rng
        days = np.arange(1, self.scale.weeks * 7 + 1)
        dates = np.datetime64(self.anchor, "D") + days
        weekday = (dates.astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        dates = dates[weekday < 5]
        n_staff, n_days = len(self.staff_site), len(dates)
        works_day = rng.random((n_staff, n_days)) < DAY_WORKED
        shift_staff, shift_date, shift_session = [], [], []
        for session, probability in enumerate(SESSION_WORKED):
            mask = works_day & (rng.random((n_staff, n_days)) < probability)
            staff_index, day_index = np.nonzero(mask)
            shift_staff.append(staff_index)
            shift_date.append(day_index)
            shift_session.append(np.full(len(staff_index), session))
        staff_of = np.concatenate(shift_staff)
        day_of = np.concatenate(shift_date)
        session_of = np.concatenate(shift_session)
        order = np.lexsort((session_of, day_of, staff_of))
        staff_of, day_of, session_of = staff_of[order], day_of[order], session_of[order]
        n_shifts = len(staff_of)
        starts = np.empty(n_shifts, dtype="datetime64[us]")
        ends = np.empty(n_shifts, dtype="datetime64[us]")
        for session, (opens, closes) in enumerate(SESSIONS):
            chosen = session_of == session
            starts[chosen] = _to_utc(dates[day_of[chosen]], opens)
            ends[chosen] = _to_utc(dates[day_of[chosen]], closes)
        use_second = (self.staff_secondary[staff_of] > 0) & (rng.random(n_shifts) < 0.25)
        service = np.where(use_second, self.staff_secondary[staff_of], self.staff_primary[staff_of])
        site = self.staff_site[staff_of]
        shifts = Table(
            "roster_shifts",
            {
                "id": np.arange(1, n_shifts + 1),
                "staff_id": staff_of + 1,
                "site_id": site + 1,
                "service_id": service,
                "starts_at": starts,
                "ends_at": ends,
            },
        )
        # each shift is cut into back-to-back slots of its service's length
        minutes = self.slot_minutes[service]
        length = ((ends - starts) // np.timedelta64(1, "m")).astype(np.int64)
        per_shift = length // minutes
        shift_of_slot = np.repeat(np.arange(n_shifts), per_shift)
        first_of_shift = np.repeat(np.cumsum(per_shift) - per_shift, per_shift)
        position = np.arange(len(shift_of_slot)) - first_of_shift
        slot_minutes = minutes[shift_of_slot]
        slot_start = starts[shift_of_slot] + (position * slot_minutes).astype("timedelta64[m]")
        n_slots = len(shift_of_slot)
        self.slot_service = service[shift_of_slot]
        self.slot_site = site[shift_of_slot]
        self.slot_staff = staff_of[shift_of_slot]
        self.slot_start = slot_start
        status = np.where(
            rng.random(n_slots) < 0.015, SlotStatus.BUSY_UNAVAILABLE.value, SlotStatus.FREE.value
        ).astype("U16")
        self.slot_status = status
        slots = Table(
            "slots",
            {
                "id": np.arange(1, n_slots + 1),
                "service_id": self.slot_service,
                "site_id": self.slot_site + 1,
                "staff_id": self.slot_staff + 1,
                "shift_id": shift_of_slot + 1,
                "starts_at": slot_start,
                "ends_at": slot_start + slot_minutes.astype("timedelta64[m]"),
                "status": status,
            },
        )
        return [shifts, slots]

    # --- patients -------------------------------------------------------------------------
    def patients(self) -> list[Table]:
        rng = self.rng
        n = self.scale.patients
        demand = _weights([r.population * r.demand for r in REGIONS])
        region_of = rng.choice(len(REGIONS), size=n, p=demand)
        lat = np.empty(n)
        lon = np.empty(n)
        postcodes: list[str] = [""] * n
        for region_index, region in enumerate(REGIONS):
            members = np.flatnonzero(region_of == region_index)
            towns = rng.choice(
                len(region.towns), size=len(members), p=_weights([t.weight for t in region.towns])
            )
            town_lat = np.array([t.latitude for t in region.towns])[towns]
            town_lon = np.array([t.longitude for t in region.towns])[towns]
            lat[members] = town_lat + rng.normal(0, 0.05, len(members))
            lon[members] = town_lon + rng.normal(0, 0.075, len(members))
            for member, town in zip(members, towns, strict=True):
                postcodes[member] = self._patient_postcode(region, int(town))
        # ages: more older people are referred than young ones
        age_years = np.clip(rng.gamma(3.0, 17.0, n), 0, 98).astype(np.int64)
        birth = (
            np.datetime64(self.anchor, "D")
            - (age_years * 365.25).astype("timedelta64[D]")
            - rng.integers(0, 365, n).astype("timedelta64[D]")
        )
        given = rng.choice(catalogue.GIVEN_NAMES, size=n)
        family = rng.choice(catalogue.FAMILY_NAMES, size=n)
        has_email = rng.random(n) < 0.6
        self.patient_region = region_of
        self.patient_lat, self.patient_lon = lat, lon
        self.patient_age = age_years
        phone_numbers = rng.integers(0, 1000, n)
        patients = Table(
            "patients",
            {
                "id": np.arange(1, n + 1),
                "nhs_number": synthetic_nhs_numbers(rng, n),
                "given_name": given,
                "family_name": family,
                "date_of_birth": birth,
                "postcode": postcodes,
                "region_code": [REGIONS[r].code for r in region_of.tolist()],
                "latitude": lat,
                "longitude": lon,
                "phone": [f"07700 900{number:03d}" for number in phone_numbers.tolist()],
                "email": [
                    f"{g.lower()}.{f.lower().replace(chr(39), '')}{i}@example.org" if e else None
                    for i, (g, f, e) in enumerate(
                        zip(given.tolist(), family.tolist(), has_email.tolist(), strict=True)
                    )
                ],
            },
        )
        return [patients]

    def _patient_postcode(self, region: Region, town: int) -> str:
        return self._postcode(region.towns[town].outward_code)

    # --- referrals ------------------------------------------------------------------------
    def referrals(self) -> list[Table]:
        rng = self.rng
        n = self.scale.referrals
        patient = rng.integers(0, self.scale.patients, n)
        routes = catalogue.REFERRAL_ROUTES
        route = rng.choice(len(routes), size=n, p=_weights([r[1] for r in routes]))
        to_service = np.empty(n, dtype=np.int64)
        for index, (_kind, _share, _from, targets) in enumerate(routes):
            members = np.flatnonzero(route == index)
            to_service[members] = [
                self.service_id[code] for code in rng.choice(targets, size=len(members))
            ]
        child = self.patient_age[patient] < 16
        gp_route = route == 0
        to_service[child & gp_route & (rng.random(n) < 0.5)] = self.service_id["PAEDIATRICS"]
        from_service = np.array([self.service_id[routes[r][2]] for r in range(len(routes))])[route]
        referrer_kind = np.array([routes[r][0] for r in range(len(routes))])[route]

        priorities = [p for p, _ in PRIORITY_MIX]
        priority_index = rng.choice(
            len(priorities), size=n, p=_weights([w for _, w in PRIORITY_MIX])
        )
        wait_days = np.where(
            priority_index == 0,
            rng.uniform(0, 21, n),
            np.where(
                priority_index == 1, rng.uniform(0, 40, n), np.clip(rng.exponential(60, n), 0, 300)
            ),
        )
        received = self.as_of - (wait_days * 86_400e6).astype("timedelta64[us]")
        standard = np.array([self.standards.days_for(p) for p in priorities])[priority_index]
        breach = received.astype("datetime64[D]") + standard.astype("timedelta64[D]")

        status_codes = [s.value for s, _ in STATUS_MIX]
        status = np.array(status_codes)[
            rng.choice(len(status_codes), size=n, p=_weights([w for _, w in STATUS_MIX]))
        ]
        earliest = np.where(
            rng.random(n) < 0.10,
            np.datetime64(self.anchor, "D") + rng.integers(1, 22, n).astype("timedelta64[D]"),
            np.datetime64("NaT", "D"),
        )
        max_travel, preferred = self._travel_constraints(patient, to_service)
        required = self._required_skills(to_service, child)
        # a referral made by a clerk's hand may not be booked yet; keep constrained ones waiting
        constrained = (required != "") | ~np.isnat(earliest)
        status[(status == ReferralStatus.BOOKED.value) & constrained] = (
            ReferralStatus.ACCEPTED.value
        )

        n_referrers = max(n // 40, 1)
        referrer = rng.integers(0, n_referrers, n)
        referrer_given = rng.choice(catalogue.GIVEN_NAMES, size=n_referrers)
        referrer_family = rng.choice(catalogue.FAMILY_NAMES, size=n_referrers)
        titled = np.isin(referrer_kind, ["GP", "DENTIST", "CONSULTANT"])
        referrer_name = [
            f"{'Dr ' if t else ''}{referrer_given[r]} {referrer_family[r]}"
            for r, t in zip(referrer.tolist(), titled.tolist(), strict=True)
        ]
        ubrn = self._ubrns(n)
        self.referral_status = status
        self.referral_service = to_service
        self.referral_patient = patient
        self.referral_received = received
        referrals = Table(
            "referrals",
            {
                "id": np.arange(1, n + 1),
                "ubrn": ubrn,
                "patient_id": patient + 1,
                "referrer_name": referrer_name,
                "referrer_kind": referrer_kind,
                "referrer_subject": [f"referrer-{r + 1}" for r in referrer.tolist()],
                "from_service_id": from_service,
                "to_service_id": to_service,
                "priority": np.array([str(p) for p in priorities])[priority_index],
                "status": status,
                "received_at": received,
                "clock_start": received,
                "breach_date": breach,
                "earliest_date": earliest,
                "max_travel_km": max_travel,
                "required_skill": [code or None for code in required.tolist()],
                "preferred_site_ids": preferred,
                "rejection_reason": [
                    str(rng.choice(REJECTION_REASONS)) if s == ReferralStatus.REJECTED else None
                    for s in status.tolist()
                ],
            },
        )
        return [referrals, self._clock_events(status, received)]

    def _ubrns(self, n: int) -> npt.NDArray[np.str_]:
        draws = np.unique(self.rng.integers(10**11, 10**12, int(n * 1.01) + 16))
        while len(draws) < n:  # practically never: 10^12 numbers to draw from
            draws = np.unique(np.concatenate([draws, self.rng.integers(10**11, 10**12, n)]))
        return self.rng.permutation(draws)[:n].astype("U12")

    def _travel_constraints(
        self, patient: IntArray, service: IntArray
    ) -> tuple[FloatArray, list[list[int]]]:
        """Each referral's maximum travel (a margin beyond its nearest site offering the service)
        and, for one in five, the one or two nearest such sites as preferred sites."""
        rng = self.rng
        n = len(patient)
        max_travel = np.empty(n)
        preferred: list[list[int]] = [[] for _ in range(n)]
        offering: dict[int, list[int]] = {}
        for site, services in enumerate(self.site_services):
            for offered in services:
                offering.setdefault(offered, []).append(site)
        wants_preference = rng.random(n) < 0.2
        how_many = rng.integers(1, 3, n)
        margin = rng.uniform(1.3, 3.0, n)
        slack = rng.uniform(5, 25, n)
        for service_id in np.unique(service).tolist():
            members = np.flatnonzero(service == service_id)
            sites = np.array(offering.get(service_id, []), dtype=np.int64)
            if len(sites) == 0:
                max_travel[members] = 50.0
                continue
            nearest, distance = nearest_k(
                self.patient_lat[patient[members]],
                self.patient_lon[patient[members]],
                self.site_lat[sites],
                self.site_lon[sites],
                2,
            )
            max_travel[members] = np.round(distance[:, 0] * margin[members] + slack[members], 1)
            for row, member in enumerate(members.tolist()):
                if wants_preference[member]:
                    chosen = nearest[row, : how_many[member]]
                    preferred[member] = [int(sites[c]) + 1 for c in chosen]
        return max_travel, preferred

    def _required_skills(
        self, service: IntArray, child: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.str_]:
        rng = self.rng
        n = len(service)
        required = np.full(n, "", dtype="U20")
        paediatrics = service == self.service_id["PAEDIATRICS"]
        required[child & ~paediatrics & (rng.random(n) < 0.5)] = "PAEDIATRIC_CARE"
        sedation_services = [self.service_id[c] for c in ("ORAL_SURGERY", "GASTROENTEROLOGY")]
        required[np.isin(service, sedation_services) & (rng.random(n) < 0.1)] = "SEDATION"
        required[rng.random(n) < 0.015] = "BSL_SIGNING"
        return required

    def _clock_events(
        self, status: npt.NDArray[np.str_], received: npt.NDArray[np.datetime64]
    ) -> Table:
        n = len(status)
        closed = np.flatnonzero(np.isin(status, [str(s) for s in FINAL]))
        waited = (self.as_of - received[closed]) * self.rng.uniform(0.3, 0.9, len(closed))
        referral = np.concatenate([np.arange(n), closed]) + 1
        kind = ["STARTED"] * n + ["STOPPED"] * len(closed)
        at = np.concatenate([received, received[closed] + waited.astype("timedelta64[us]")])
        reason = [None] * n + [str(s).lower() for s in status[closed].tolist()]
        order = np.argsort(referral, kind="stable")
        return Table(
            "referral_clock_events",
            {
                "referral_id": referral[order],
                "kind": [kind[i] for i in order.tolist()],
                "occurred_at": at[order],
                "reason": [reason[i] for i in order.tolist()],
            },
        )

    # --- bookings -------------------------------------------------------------------------
    def bookings(self) -> list[Table]:
        """Book each BOOKED referral into a free slot of its service in its patient's region;
        where the region has no such slot left, the referral stays waiting (ACCEPTED).

        Statuses are updated in place: the referrals and slots tables hold these same arrays.
        """
        rng = self.rng
        booked = np.flatnonzero(self.referral_status == ReferralStatus.BOOKED.value)
        slot_region = self.site_region[self.slot_site]
        free = self.slot_status == SlotStatus.FREE.value
        referral_region = self.patient_region[self.referral_patient[booked]]
        chosen_slot = np.full(len(booked), -1, dtype=np.int64)
        key_slots = slot_region * 100 + self.slot_service
        key_referrals = referral_region * 100 + self.referral_service[booked]
        for key in np.unique(key_referrals).tolist():
            wanting = np.flatnonzero(key_referrals == key)
            available = rng.permutation(np.flatnonzero(free & (key_slots == key)))
            take = min(len(wanting), len(available))
            chosen_slot[wanting[:take]] = available[:take]
        placed = chosen_slot >= 0
        self.referral_status[booked[~placed]] = ReferralStatus.ACCEPTED.value
        referral_ids = booked[placed]
        slot_ids = chosen_slot[placed]
        self.slot_status[slot_ids] = SlotStatus.BUSY.value
        lead = (self.as_of - self.referral_received[referral_ids]) * rng.uniform(
            0.2, 0.9, len(referral_ids)
        )
        appointments = Table(
            "appointments",
            {
                "id": np.arange(1, len(referral_ids) + 1),
                "referral_id": referral_ids + 1,
                "slot_id": slot_ids + 1,
                "status": [AppointmentStatus.BOOKED.value] * len(referral_ids),
                "booked_by": ["seed"] * len(referral_ids),
                "booked_at": self.referral_received[referral_ids] + lead.astype("timedelta64[us]"),
            },
        )
        return [appointments]
