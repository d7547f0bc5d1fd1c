"""Who is calling: bearer JWTs verified with a fixed algorithm list, issuer, audience and expiry,
turned into a Viewer with one of care_graph's roles.

Keys come from configuration: a shared secret (HS256) in development, a public key file (RS256
or ES256) in production. ``mint_token`` makes development tokens (``care-graph token``).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import jwt

from care_graph.errors import CareGraphError, ErrorCode

logger = logging.getLogger("care_graph.auth")

DEVELOPMENT_SECRET = "care-graph-development-secret-not-for-production"


class Role(StrEnum):
    """What a caller may do (see api/policy.py for what each role sees)."""

    PATIENT = "patient"  # sees and books only their own records
    REFERRER = "referrer"  # sees the referrals they made, and their patients
    CLINICIAN = "clinician"  # sees everything; triage, rosters, booking
    SCHEDULER = "scheduler"  # sees everything; booking for any patient
    ADMIN = "admin"  # everything, including deliberate double booking


@dataclass(frozen=True, slots=True)
class Viewer:
    """A verified caller: token subject, role, and for a patient their patient record."""

    subject: str
    role: Role
    patient_id: int | None = None
    site_ids: tuple[int, ...] | None = None  # clinic staff bound to these sites; None: all
    expires_at: float | None = None  # the token's exp (Unix time); None: never (development)

    def expired(self, now: float | None = None) -> bool:
        """True once the token that proved this caller has lapsed."""
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


@dataclass(frozen=True, slots=True)
class TokenSettings:
    """How tokens are checked: algorithms, key, issuer, audience."""

    algorithms: tuple[str, ...]
    key: str
    issuer: str
    audience: str
    signing_key: str | None  # only in development: lets care-graph token mint tokens

    @classmethod
    def from_environment(cls, *, development: bool) -> TokenSettings:
        """Read CARE_GRAPH_JWT_* settings; production needs a secret or a public key file."""
        issuer = os.environ.get("CARE_GRAPH_JWT_ISSUER", "care-graph")
        audience = os.environ.get("CARE_GRAPH_JWT_AUDIENCE", "care-graph-api")
        public_key_file = os.environ.get("CARE_GRAPH_JWT_PUBLIC_KEY_FILE")
        if public_key_file:
            key = Path(public_key_file).read_text()
            return cls(("RS256", "ES256"), key, issuer, audience, None)
        secret = os.environ.get("CARE_GRAPH_JWT_SECRET") or (
            DEVELOPMENT_SECRET if development else None
        )
        if secret is None:
            raise CareGraphError(
                ErrorCode.INVALID_ARGUMENT,
                "set CARE_GRAPH_JWT_SECRET or CARE_GRAPH_JWT_PUBLIC_KEY_FILE in production",
            )
        return cls(("HS256",), secret, issuer, audience, secret)


class Unauthenticated(Exception):
    """Missing or bad credentials; every such case gets the same answer."""


def verify(token: str, settings: TokenSettings) -> Viewer:
    """The Viewer a token proves, or Unauthenticated (why is logged, never told)."""
    try:
        claims = jwt.decode(
            token,
            settings.key,
            algorithms=list(settings.algorithms),
            audience=settings.audience,
            issuer=settings.issuer,
            options={"require": ["exp", "iss", "aud", "sub"]},
        )
        role = Role(str(claims.get("role")))
        patient = claims.get("patient")
        if role is Role.PATIENT and not isinstance(patient, int):
            raise Unauthenticated("a patient token names its patient")
        sites = claims.get("sites")
        if sites is not None and not (
            isinstance(sites, list) and all(isinstance(site, int) for site in sites)
        ):
            raise Unauthenticated("sites must be a list of site ids")
        return Viewer(
            str(claims["sub"]),
            role,
            patient if role is Role.PATIENT else None,
            tuple(sites)
            if sites is not None and role in (Role.CLINICIAN, Role.SCHEDULER)
            else None,
            float(claims["exp"]),
        )
    except (jwt.PyJWTError, ValueError) as error:
        raise Unauthenticated(str(error)) from error


def viewer_of_header(header: str, settings: TokenSettings) -> Viewer | None:
    """The caller an ``Authorization: Bearer <token>`` value proves, or None for any other
    value (why is logged, never told): the one reading of the header, for every transport."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return verify(token.strip(), settings)
    except Unauthenticated as error:
        logger.info("refused a token: %s", error)
        return None


def mint_token(
    settings: TokenSettings,
    *,
    role: Role,
    subject: str,
    patient_id: int | None = None,
    site_ids: tuple[int, ...] | None = None,
    ttl_seconds: int = 3600,
) -> str:
    """A signed development token (refused where no signing key is configured)."""
    if settings.signing_key is None:
        raise CareGraphError(
            ErrorCode.INVALID_ARGUMENT,
            "tokens can be minted only with a shared secret (development)",
        )
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": subject,
        "role": str(role),
        "iss": settings.issuer,
        "aud": settings.audience,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if patient_id is not None:
        claims["patient"] = patient_id
    if site_ids is not None:
        claims["sites"] = list(site_ids)
    return jwt.encode(claims, settings.signing_key, algorithm="HS256")
