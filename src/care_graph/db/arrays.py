"""Bulk reads straight into numpy arrays: a query's rows arrive through binary COPY and are
viewed as a fixed-width record array, with no Python object per row or per value.

Every selected column must be NOT NULL (coalesce in the query) and one of int4, int8 or float8;
timestamps travel as int8 microseconds, dates as int4 days.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt

from care_graph.db.pool import Connection

_HEADER = 19  # "PGCOPY\n\377\r\n\0", flags, header extension length
_TRAILER = 2  # a field count of -1
_WIRE = {"int4": (">i4", 4), "int8": (">i8", 8), "float8": (">f8", 8)}
_NATIVE = {"int4": np.int32, "int8": np.int64, "float8": np.float64}


async def fetch_columns(
    connection: Connection, query: str, columns: list[tuple[str, str]]
) -> dict[str, npt.NDArray[np.generic]]:
    """Run ``query`` (whose select list matches ``columns``: (name, type) pairs in order) and
    return each column as a native-endian numpy array."""
    buffer = io.BytesIO()
    await connection.copy_from_query(query, output=buffer, format="binary")
    raw = buffer.getbuffer()
    fields: list[tuple[str, str]] = [("_count", ">i2")]
    for name, kind in columns:
        fields += [(f"_{name}_length", ">i4"), (name, _WIRE[kind][0])]
    record = np.dtype(fields)
    rows = (len(raw) - _HEADER - _TRAILER) // record.itemsize
    if rows < 0 or _HEADER + rows * record.itemsize + _TRAILER != len(raw):
        raise ValueError("the query's rows do not match the declared columns")
    table = np.frombuffer(raw, dtype=record, count=rows, offset=_HEADER)
    result: dict[str, npt.NDArray[np.generic]] = {}
    for name, kind in columns:
        if rows and (table[f"_{name}_length"] != _WIRE[kind][1]).any():
            raise ValueError(f"column {name} holds NULLs or is not {kind}")
        result[name] = table[name].astype(_NATIVE[kind])
    return result
