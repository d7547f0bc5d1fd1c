"""Opaque global IDs and keyset cursors, decoded in Python (PostgreSQL encodes them: see the
cg_global_id and cg_cursor functions in migration 0002, which must stay in step with these)."""

from __future__ import annotations

import base64
import binascii

import orjson

from care_graph.api.errors import ApiError, ApiErrorCode

# keys are bigint: one past this names no row, and as a bind parameter asyncpg refuses it
MAX_KEY = 2**63 - 1


def encode_global_id(type_name: str, key: int) -> str:
    """The global ID of a row: base64 of ``Type:key``."""
    return base64.b64encode(f"{type_name}:{key}".encode()).decode()


def decode_global_id(global_id: str) -> tuple[str, int] | None:
    """(type name, primary key) of a global ID, or None when it is not one of ours (its key
    is not ASCII digits, or no bigint holds it)."""
    try:
        type_name, _, key = base64.b64decode(global_id, validate=True).decode().partition(":")
        if not (type_name and key.isascii() and key.isdigit()) or int(key) > MAX_KEY:
            return None
        return type_name, int(key)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def key_of_type(global_id: str, type_name: str) -> int | None:
    """The primary key a global ID names when it is one of ``type_name``'s, else None."""
    decoded = decode_global_id(global_id)
    return decoded[1] if decoded is not None and decoded[0] == type_name else None


def decode_cursor(cursor: str) -> tuple[str, int]:
    """(sort key as text, id) of a keyset cursor; a malformed cursor is the client's error."""
    try:
        sort_key, key = orjson.loads(base64.b64decode(cursor, validate=True))
        if isinstance(sort_key, str) and type(key) is int and -MAX_KEY - 1 <= key <= MAX_KEY:
            return sort_key, key
    except (binascii.Error, orjson.JSONDecodeError, ValueError, TypeError):
        pass
    # never echoed: the client sent it, and an echo would carry whatever it holds
    raise ApiError(ApiErrorCode.BAD_USER_INPUT, "invalid cursor: give one this API returned")
