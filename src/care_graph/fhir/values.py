"""FHIR primitive values read from untrusted text, within what PostgreSQL takes: ids as our
keys, date-times with their zone, and text without NUL characters."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_KEY = re.compile(r"[0-9]{1,19}")
MAX_KEY = 2**63 - 1


def key_of(text: str) -> int | None:
    """The key a FHIR id names: ASCII digits within a bigint; None for anything else (an id
    that names nothing here)."""
    if _KEY.fullmatch(text) is None or int(text) > MAX_KEY:
        return None
    return int(text)


def zoned(when: datetime) -> datetime | None:
    """``when`` if it has a zone and is an instant PostgreSQL can hold (it is sent in UTC,
    so one at the edge of the calendar that UTC would push past it is not); else None."""
    if when.tzinfo is None:
        return None
    try:
        when.astimezone(UTC)
    except OverflowError:
        return None
    return when


def plain_text(text: str) -> bool:
    """Whether text can be stored: PostgreSQL refuses the NUL character."""
    return "\x00" not in text
