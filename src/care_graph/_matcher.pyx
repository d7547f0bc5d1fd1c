# cython: language_level=3
"""care_graph's compiled kernel.

Plain numbers in, plain numbers out: this module knows nothing of the database, GraphQL or the
rest of care_graph. Geometry here is the great-circle distance on a spherical Earth, used by
seeding, slot search and candidate generation.
"""

import numpy as np

cimport numpy as cnp
from libc.math cimport asin, cos, sin, sqrt, M_PI

cnp.import_array()

cdef double EARTH_RADIUS_KM = 6371.0088
cdef double DEG = M_PI / 180.0


cdef double haversine(double lat1, double lon1, double lat2, double lon2) noexcept nogil:
    """Great-circle distance in km between two points given in degrees."""
    cdef double s1 = sin((lat2 - lat1) * DEG * 0.5)
    cdef double s2 = sin((lon2 - lon1) * DEG * 0.5)
    cdef double a = s1 * s1 + cos(lat1 * DEG) * cos(lat2 * DEG) * s2 * s2
    if a > 1.0:
        a = 1.0
    return 2.0 * EARTH_RADIUS_KM * asin(sqrt(a))


def _as_coordinates(name, values):
    """Coerce to a C-contiguous float64 vector, or raise ValueError naming the argument."""
    array = np.ascontiguousarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distances in km between paired points (degrees), element by element.

    All four inputs are coerced to float64 vectors of one length; the result has that length.
    """
    cdef double[::1] a_lat = _as_coordinates("lat1", lat1)
    cdef double[::1] a_lon = _as_coordinates("lon1", lon1)
    cdef double[::1] b_lat = _as_coordinates("lat2", lat2)
    cdef double[::1] b_lon = _as_coordinates("lon2", lon2)
    cdef Py_ssize_t n = a_lat.shape[0], i
    if a_lon.shape[0] != n or b_lat.shape[0] != n or b_lon.shape[0] != n:
        raise ValueError("haversine_km needs four vectors of the same length")
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] result = out
    with nogil:
        for i in range(n):
            result[i] = haversine(a_lat[i], a_lon[i], b_lat[i], b_lon[i])
    return out


def nearest_k(lat, lon, target_lat, target_lon, Py_ssize_t k):
    """For every point, the k nearest targets and their distances in km, nearest first.

    Returns ``(index, distance)``: int32 and float64 arrays of shape ``(n_points, k')`` with
    ``k' = min(k, n_targets)``. Exhaustive over targets, which suits the few hundred sites of a
    region; ties go to the lower target index.
    """
    cdef double[::1] p_lat = _as_coordinates("lat", lat)
    cdef double[::1] p_lon = _as_coordinates("lon", lon)
    cdef double[::1] t_lat = _as_coordinates("target_lat", target_lat)
    cdef double[::1] t_lon = _as_coordinates("target_lon", target_lon)
    if p_lon.shape[0] != p_lat.shape[0] or t_lon.shape[0] != t_lat.shape[0]:
        raise ValueError("latitudes and longitudes must have the same length")
    if k < 0:
        raise ValueError(f"k must not be negative, got {k}")
    cdef Py_ssize_t n = p_lat.shape[0], m = t_lat.shape[0]
    cdef Py_ssize_t kk = min(k, m)
    index_out = np.empty((n, kk), dtype=np.int32)
    distance_out = np.empty((n, kk), dtype=np.float64)
    cdef int[:, ::1] index = index_out
    cdef double[:, ::1] distance = distance_out
    cdef Py_ssize_t i, j, pos
    cdef double d
    if kk == 0:
        return index_out, distance_out
    with nogil:
        for i in range(n):
            pos = 0  # number of filled entries in row i, kept sorted by insertion
            for j in range(m):
                d = haversine(p_lat[i], p_lon[i], t_lat[j], t_lon[j])
                if pos == kk and d >= distance[i, kk - 1]:
                    continue
                if pos < kk:
                    pos += 1
                _insert_sorted(distance, index, i, pos, d, <int>j)
    return index_out, distance_out


cdef inline void _insert_sorted(
    double[:, ::1] distance, int[:, ::1] index, Py_ssize_t row, Py_ssize_t filled, double d, int j
) noexcept nogil:
    """Insert (d, j) into the first `filled` entries of a row kept in ascending distance."""
    cdef Py_ssize_t p = filled - 1
    while p > 0 and distance[row, p - 1] > d:
        distance[row, p] = distance[row, p - 1]
        index[row, p] = index[row, p - 1]
        p -= 1
    distance[row, p] = d
    index[row, p] = j
