"""The cost model of matching, in one place: what makes a referral-slot pairing better.

Priority comes first and is not a weight: tiers are lexicographic (care_graph.matcher), so one
more urgent referral seen always beats any number of routine ones. Within a tier the matcher
maximises the sum of integer weights below. Per-referral terms (waiting, breach risk) decide who
is matched when there is not room for everyone; per-edge terms (timeliness, travel, delay,
preference) decide which slot each one gets. Every number is configuration: the
environment's CARE_GRAPH_MATCH_WEIGHTS (``per_km=30,preferred_site_bonus=1000``) overrides any
of them for the server and the CLI alike.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
import numpy.typing as npt

from care_graph.domain.waiting_times import Priority

TIER_ORDER = (Priority.URGENT, Priority.TWO_WEEK_WAIT, Priority.ROUTINE)  # tier = position
TIERS: dict[Priority, int] = {priority: tier for tier, priority in enumerate(TIER_ORDER)}
IntArray = npt.NDArray[np.int64]
# per unit: years of waiting at this many points a day still weigh well inside the matcher's range
MAX_POINTS = 100_000


@dataclass(frozen=True, slots=True)
class CostModel:
    """Points per unit; weights are integers, higher is better."""

    per_day_waited: int = 10  # longer-waiting referrals win contested slots
    urgency_window_days: int = 60  # breach risk counts within this many days of the breach
    per_day_of_urgency: int = 40  # ... and grows by this much per day closer to it
    in_time_bonus: int = 3000  # a slot on or before the referral's breach date
    per_day_late: int = 60  # each day a slot falls after the breach date
    per_km: int = 25  # travel from the patient's home to the site
    per_day_until: int = 15  # days until the appointment
    preferred_site_bonus: int = 800  # the site is one the patient asked for

    @classmethod
    def parse(cls, text: str) -> CostModel:
        """The model with the ``name=points`` pairs of ``text`` (comma-separated) in place of
        the defaults; an unknown name or a points value that is not a whole number from 0 to
        ``MAX_POINTS`` is refused, naming it."""
        known = [item.name for item in fields(cls)]
        values: dict[str, int] = {}
        for part in (piece.strip() for piece in text.split(",")):
            if not part:
                continue
            name, _, raw = (piece.strip() for piece in part.partition("="))
            if name not in known:
                raise ValueError(f"unknown matching weight {name!r}; known: {', '.join(known)}")
            if not raw.isdigit() or int(raw) > MAX_POINTS:
                raise ValueError(
                    f"matching weight {name} must be a whole number from 0 to {MAX_POINTS:,},"
                    f" got {raw!r}"
                )
            values[name] = int(raw)
        return cls(**values)

    def components(
        self,
        *,
        waited_days: IntArray,
        days_to_breach: IntArray,
        days_until: IntArray,
        km: npt.NDArray[np.float64],
        preferred: npt.NDArray[np.bool_],
    ) -> dict[str, IntArray]:
        """Each term for each edge (arrays aligned on edges; days counted from today); their
        sum is the edge's weight."""
        late_days = np.maximum(days_until - days_to_breach, 0)
        urgency = np.clip(self.urgency_window_days - days_to_breach, 0, self.urgency_window_days)
        return {
            "waiting": (waited_days * self.per_day_waited).astype(np.int64),
            "breach_risk": (urgency * self.per_day_of_urgency).astype(np.int64),
            "in_time": np.where(
                late_days == 0, self.in_time_bonus, -late_days * self.per_day_late
            ).astype(np.int64),
            "travel": -np.rint(km * self.per_km).astype(np.int64),
            "delay": (-days_until * self.per_day_until).astype(np.int64),
            "preference": np.where(preferred, self.preferred_site_bonus, 0).astype(np.int64),
        }
