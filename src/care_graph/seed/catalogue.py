"""The fixed vocabulary of demo data: services, skills, site kinds and people's names."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """A service: its code (also the skill that delivers it), name, kind and slot length."""

    code: str
    name: str
    kind: str
    slot_minutes: int
    roles: tuple[str, ...]


PRIMARY_CARE: tuple[ServiceSpec, ...] = (
    ServiceSpec("GENERAL_PRACTICE", "General practice", "GP", 15, ("GP", "NURSE")),
    ServiceSpec("OPTOMETRY", "Sight test and eye examination", "OPTOMETRY", 30, ("OPTOMETRIST",)),
    ServiceSpec("DENTISTRY", "NHS dental examination", "DENTISTRY", 30, ("DENTIST",)),
    ServiceSpec(
        "COMMUNITY_PHARMACY",
        "Pharmacy First consultation",
        "COMMUNITY_PHARMACY",
        15,
        ("PHARMACIST",),
    ),
)

SPECIALTIES: tuple[ServiceSpec, ...] = tuple(
    ServiceSpec(code, name, "SPECIALTY", minutes, ("CONSULTANT", "REGISTRAR", "NURSE"))
    for code, name, minutes in (
        ("CARDIOLOGY", "Cardiology", 20),
        ("DERMATOLOGY", "Dermatology", 15),
        ("ENT", "Ear, nose and throat", 15),
        ("GASTROENTEROLOGY", "Gastroenterology", 20),
        ("GENERAL_SURGERY", "General surgery", 20),
        ("GYNAECOLOGY", "Gynaecology", 20),
        ("NEUROLOGY", "Neurology", 30),
        ("OPHTHALMOLOGY", "Ophthalmology", 15),
        ("ORAL_SURGERY", "Oral surgery", 20),
        ("ORTHODONTICS", "Orthodontics", 30),
        ("TRAUMA_ORTHOPAEDICS", "Trauma and orthopaedics", 15),
        ("PAEDIATRICS", "Paediatrics", 20),
        ("RESPIRATORY", "Respiratory medicine", 20),
        ("RHEUMATOLOGY", "Rheumatology", 30),
        ("UROLOGY", "Urology", 15),
        ("BREAST_SURGERY", "Breast surgery", 15),
    )
)

SERVICES: tuple[ServiceSpec, ...] = PRIMARY_CARE + SPECIALTIES

# Skills beyond "can deliver service X": what a referral may require of the clinician.
EXTRA_SKILLS: tuple[tuple[str, str], ...] = (
    ("PAEDIATRIC_CARE", "Care of children"),
    ("BSL_SIGNING", "British Sign Language"),
    ("SEDATION", "Conscious sedation"),
    ("MINOR_SURGERY", "Minor surgery"),
)

# Who refers where: referrer kind → (the service they work in, services they refer to).
REFERRAL_ROUTES: tuple[tuple[str, float, str, tuple[str, ...]], ...] = (
    (
        "GP",
        0.75,
        "GENERAL_PRACTICE",
        tuple(
            spec.code for spec in SPECIALTIES if spec.code not in ("ORAL_SURGERY", "ORTHODONTICS")
        ),
    ),
    ("OPTOMETRIST", 0.10, "OPTOMETRY", ("OPHTHALMOLOGY",)),
    ("DENTIST", 0.07, "DENTISTRY", ("ORAL_SURGERY", "ORTHODONTICS")),
    ("PHARMACIST", 0.08, "COMMUNITY_PHARMACY", ("GENERAL_PRACTICE",)),
)

# Site kinds with their share of sites and the services each kind offers.
SITE_KINDS: tuple[tuple[str, float], ...] = (
    ("HOSPITAL", 0.15),
    ("GP_PRACTICE", 0.35),
    ("OPTICIAN", 0.15),
    ("DENTAL_PRACTICE", 0.15),
    ("PHARMACY", 0.20),
)

SITE_NAME_PATTERNS: dict[str, tuple[str, ...]] = {
    "HOSPITAL": (
        "{town} General Hospital",
        "{town} Royal Infirmary",
        "{town} Community Hospital",
        "St {saint}'s Hospital, {town}",
        "{town} University Hospital",
    ),
    "GP_PRACTICE": (
        "{street} Surgery, {town}",
        "{street} Medical Centre, {town}",
        "{town} {street} Health Centre",
    ),
    "OPTICIAN": ("{street} Opticians, {town}", "{town} Eye Care"),
    "DENTAL_PRACTICE": ("{street} Dental Practice, {town}", "{town} Smile Dental Care"),
    "PHARMACY": ("{street} Pharmacy, {town}", "{town} Community Pharmacy"),
}

STREETS: tuple[str, ...] = (
    "High Street",
    "Station Road",
    "Church Lane",
    "Park Road",
    "Victoria Road",
    "Mill Lane",
    "Queen's Road",
    "London Road",
    "Market Street",
    "Bridge Street",
    "Green Lane",
    "Manor Road",
    "Kings Road",
    "Albert Street",
    "Castle Street",
    "Grove Road",
)
SAINTS: tuple[str, ...] = ("Mary", "George", "Thomas", "James", "Luke", "Peter", "Helen", "Anne")

GIVEN_NAMES: tuple[str, ...] = (
    "Oliver",
    "Amelia",
    "George",
    "Isla",
    "Arthur",
    "Ava",
    "Noah",
    "Mia",
    "Muhammad",
    "Ivy",
    "Leo",
    "Lily",
    "Harry",
    "Freya",
    "Oscar",
    "Florence",
    "Archie",
    "Grace",
    "Henry",
    "Sophia",
    "Jack",
    "Emily",
    "Charlie",
    "Ella",
    "Thomas",
    "Poppy",
    "Alfie",
    "Evie",
    "Jacob",
    "Sienna",
    "Margaret",
    "David",
    "Susan",
    "John",
    "Patricia",
    "Michael",
    "Linda",
    "Peter",
    "Priya",
    "Aisha",
    "Tomasz",
    "Chloe",
    "Daniel",
    "Fatima",
    "Kwame",
    "Niamh",
    "Rhys",
    "Zainab",
)
FAMILY_NAMES: tuple[str, ...] = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Robinson",
    "Wright",
    "Thompson",
    "Evans",
    "Walker",
    "White",
    "Roberts",
    "Green",
    "Hall",
    "Wood",
    "Jackson",
    "Clarke",
    "Khan",
    "Hughes",
    "Edwards",
    "Turner",
    "Hill",
    "Moore",
    "Cooper",
    "Ward",
    "Ali",
    "Begum",
    "Nowak",
    "Okafor",
    "Murphy",
    "O'Brien",
    "Singh",
    "Lewis",
    "Harris",
    "Martin",
    "Kaur",
    "Baker",
    "Young",
    "King",
    "Allen",
    "Mensah",
    "Chen",
    "Shaw",
)
