"""Regions and towns of England with believable coordinates, for demo data.

Each region carries two demo-only dials: ``demand`` scales how many referrals its people make and
``capacity`` how many staff it rosters, both relative to its population. They are set so that
some regions run short of capacity (the matcher's hard case) while others have plenty.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Town:
    """A town: where sites stand and patients live; ``weight`` is its relative population."""

    name: str
    outward_code: str
    latitude: float
    longitude: float
    weight: float


@dataclass(frozen=True, slots=True)
class Region:
    """An NHS England region with its towns and its demo demand and capacity dials."""

    code: str
    name: str
    demand: float
    capacity: float
    towns: tuple[Town, ...]

    @property
    def population(self) -> float:
        """Relative population: the sum of its towns' weights."""
        return sum(town.weight for town in self.towns)


REGIONS: tuple[Region, ...] = (
    Region(
        "LONDON",
        "London",
        0.9,
        1.3,
        (
            Town("Camden", "NW1", 51.5390, -0.1426, 2.7),
            Town("Croydon", "CR0", 51.3762, -0.0982, 3.9),
            Town("Ealing", "W5", 51.5130, -0.3089, 3.4),
            Town("Hackney", "E8", 51.5450, -0.0553, 2.8),
            Town("Lewisham", "SE13", 51.4452, -0.0209, 3.0),
            Town("Barnet", "EN5", 51.6252, -0.1517, 3.9),
            Town("Romford", "RM1", 51.5768, 0.1801, 2.6),
            Town("Kingston upon Thames", "KT1", 51.4123, -0.3007, 1.7),
        ),
    ),
    Region(
        "SOUTH_EAST",
        "South East",
        0.9,
        1.1,
        (
            Town("Brighton", "BN1", 50.8225, -0.1372, 2.8),
            Town("Reading", "RG1", 51.4543, -0.9781, 1.7),
            Town("Oxford", "OX1", 51.7520, -1.2577, 1.5),
            Town("Southampton", "SO14", 50.9097, -1.4044, 2.5),
            Town("Portsmouth", "PO1", 50.8198, -1.0880, 2.1),
            Town("Canterbury", "CT1", 51.2802, 1.0789, 1.6),
            Town("Guildford", "GU1", 51.2362, -0.5704, 1.4),
            Town("Milton Keynes", "MK9", 52.0406, -0.7594, 2.6),
        ),
    ),
    Region(
        "SOUTH_WEST",
        "South West",
        1.3,
        0.45,
        (
            Town("Bristol", "BS1", 51.4545, -2.5879, 4.7),
            Town("Exeter", "EX1", 50.7184, -3.5339, 1.3),
            Town("Plymouth", "PL1", 50.3755, -4.1427, 2.6),
            Town("Truro", "TR1", 50.2632, -5.0510, 0.9),
            Town("Bath", "BA1", 51.3811, -2.3590, 0.9),
            Town("Gloucester", "GL1", 51.8642, -2.2382, 1.3),
            Town("Swindon", "SN1", 51.5558, -1.7797, 2.2),
            Town("Taunton", "TA1", 51.0143, -3.1029, 0.7),
        ),
    ),
    Region(
        "MIDLANDS",
        "Midlands",
        1.0,
        0.9,
        (
            Town("Birmingham", "B1", 52.4862, -1.8904, 11.4),
            Town("Nottingham", "NG1", 52.9548, -1.1581, 3.3),
            Town("Leicester", "LE1", 52.6369, -1.1398, 3.7),
            Town("Coventry", "CV1", 52.4068, -1.5197, 3.5),
            Town("Derby", "DE1", 52.9225, -1.4746, 2.6),
            Town("Stoke-on-Trent", "ST1", 53.0027, -2.1794, 2.6),
            Town("Wolverhampton", "WV1", 52.5862, -2.1286, 2.6),
            Town("Lincoln", "LN1", 53.2307, -0.5406, 1.0),
            Town("Shrewsbury", "SY1", 52.7073, -2.7553, 0.8),
        ),
    ),
    Region(
        "EAST_OF_ENGLAND",
        "East of England",
        0.9,
        1.1,
        (
            Town("Cambridge", "CB1", 52.2053, 0.1218, 1.5),
            Town("Norwich", "NR1", 52.6309, 1.2974, 1.4),
            Town("Ipswich", "IP1", 52.0567, 1.1482, 1.4),
            Town("Peterborough", "PE1", 52.5695, -0.2405, 2.0),
            Town("Chelmsford", "CM1", 51.7356, 0.4690, 1.8),
            Town("Luton", "LU1", 51.8787, -0.4200, 2.2),
            Town("Colchester", "CO1", 51.8959, 0.8919, 1.9),
        ),
    ),
    Region(
        "NORTH_WEST",
        "North West",
        1.6,
        0.3,
        (
            Town("Manchester", "M1", 53.4808, -2.2426, 5.5),
            Town("Liverpool", "L1", 53.4084, -2.9916, 4.9),
            Town("Preston", "PR1", 53.7632, -2.7031, 1.4),
            Town("Lancaster", "LA1", 54.0466, -2.8007, 1.4),
            Town("Carlisle", "CA1", 54.8925, -2.9329, 1.1),
            Town("Bolton", "BL1", 53.5769, -2.4282, 2.9),
            Town("Chester", "CH1", 53.1934, -2.8931, 1.2),
            Town("Blackpool", "FY1", 53.8175, -3.0357, 1.4),
        ),
    ),
    Region(
        "NORTH_EAST_YORKSHIRE",
        "North East and Yorkshire",
        1.0,
        1.0,
        (
            Town("Leeds", "LS1", 53.8008, -1.5491, 8.1),
            Town("Sheffield", "S1", 53.3811, -1.4701, 5.6),
            Town("Newcastle upon Tyne", "NE1", 54.9783, -1.6178, 3.0),
            Town("York", "YO1", 53.9590, -1.0815, 2.1),
            Town("Hull", "HU1", 53.7676, -0.3274, 2.6),
            Town("Middlesbrough", "TS1", 54.5742, -1.2350, 1.4),
            Town("Sunderland", "SR1", 54.9069, -1.3838, 2.8),
            Town("Bradford", "BD1", 53.7950, -1.7594, 5.4),
        ),
    ),
)
