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


# --- the assignment solver ------------------------------------------------------------------
#
# Costs inside the solver are minimised: cost(edge) = -(weight + bonus[tier of its referral]).
# Each referral r also has a private "stay unmatched" column n_slots + r of cost 0, handled as
# an implicit extra edge (no copy of the graph). Rows are inserted one at a time along shortest
# augmenting paths (Dijkstra with a binary heap on reduced costs), which keeps the matching of
# the rows inserted so far optimal; potentials u (rows) and v (columns) keep reduced costs
# non-negative and are the dual prices on return.

from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memset

cdef extern from *:
    """
    #define CG_INF 0x3fffffffffffffffLL
    """
    long long CG_INF

ctypedef long long i64


cdef struct Scratch:
    i64* dist
    int* pred_row
    i64* pred_edge
    char* scanned
    int* touched
    int n_touched
    i64* heap_key
    int* heap_col
    int heap_size
    int heap_capacity


cdef int _heap_push(Scratch* s, i64 key, int col) noexcept nogil:
    """Push (key, col), growing the heap when full; returns -1 when memory runs out."""
    cdef int i = s.heap_size
    cdef int parent, capacity
    cdef i64* keys
    cdef int* cols
    if i >= s.heap_capacity:
        capacity = 2 * s.heap_capacity
        keys = <i64*> realloc(s.heap_key, capacity * sizeof(i64))
        if keys == NULL:
            return -1
        s.heap_key = keys
        cols = <int*> realloc(s.heap_col, capacity * sizeof(int))
        if cols == NULL:
            return -1
        s.heap_col = cols
        s.heap_capacity = capacity
    s.heap_size += 1
    while i > 0:
        parent = (i - 1) >> 1
        if s.heap_key[parent] <= key:
            break
        s.heap_key[i] = s.heap_key[parent]
        s.heap_col[i] = s.heap_col[parent]
        i = parent
    s.heap_key[i] = key
    s.heap_col[i] = col
    return 0


cdef int _heap_pop(Scratch* s, i64* key) noexcept nogil:
    """Pop the smallest key; returns its column (the caller checks heap_size > 0)."""
    cdef int top = s.heap_col[0]
    cdef i64 last_key
    cdef int last_col, i = 0, child
    key[0] = s.heap_key[0]
    s.heap_size -= 1
    if s.heap_size == 0:
        return top
    last_key = s.heap_key[s.heap_size]
    last_col = s.heap_col[s.heap_size]
    while True:
        child = 2 * i + 1
        if child >= s.heap_size:
            break
        if child + 1 < s.heap_size and s.heap_key[child + 1] < s.heap_key[child]:
            child += 1
        if s.heap_key[child] >= last_key:
            break
        s.heap_key[i] = s.heap_key[child]
        s.heap_col[i] = s.heap_col[child]
        i = child
    s.heap_key[i] = last_key
    s.heap_col[i] = last_col
    return top


cdef inline void _touch(Scratch* s, int col) noexcept nogil:
    if s.dist[col] == CG_INF:
        s.touched[s.n_touched] = col
        s.n_touched += 1


cdef inline int _relax(Scratch* s, int c, i64 nd, int r, i64 e, int* match_row, i64* bound,
                       int* bound_col) noexcept nogil:
    """Offer column ``c`` at distance ``nd`` through row ``r`` (edge ``e``; -1: unmatched)."""
    if nd >= s.dist[c] or nd >= bound[0]:
        return 0
    _touch(s, c)
    s.dist[c] = nd
    s.pred_row[c] = r
    s.pred_edge[c] = e
    if match_row[c] == -1:
        bound[0] = nd
        bound_col[0] = c
        return 0
    return _heap_push(s, nd, c)


cdef int _insert_row(
    int row, int n_slots,
    const i64* indptr, const int* slot, const i64* cost_of_edge, const char* dead,
    i64* u, i64* v, int* match_row, int* match_col, i64* match_edge,
    Scratch* s,
) noexcept nogil:
    """Insert one unmatched row along a shortest augmenting path; keeps optimality."""
    cdef i64 e, d, nd, delta = 0, best
    cdef int c, c2, r, end = -1, prev, n_scanned = 0, k
    cdef int dummy = n_slots + row
    cdef i64 best_edge = -1
    # a fresh row's potential: the least reduced cost it has, so every edge stays >= 0
    best = 0 - v[dummy]
    for e in range(indptr[row], indptr[row + 1]):
        if dead[slot[e]]:
            continue
        nd = cost_of_edge[e] - v[slot[e]]
        if nd < best:
            best = nd
            best_edge = e
    u[row] = best
    # fast path: the cheapest column is free, so taking it is already a shortest path (length
    # 0); this is what makes plentiful capacity cheap
    if best_edge >= 0 and match_row[slot[best_edge]] == -1:
        match_col[row] = slot[best_edge]
        match_row[slot[best_edge]] = row
        match_edge[row] = best_edge
        return 0
    if best_edge < 0 and match_row[dummy] == -1:
        match_col[row] = dummy
        match_row[dummy] = row
        match_edge[row] = -1
        return 0
    s.heap_size = 0
    s.n_touched = 0
    # Dijkstra over columns. A free column ends the search, so free columns are never pushed:
    # the cheapest one reached so far is the bound, and nothing at or above it is pushed.
    cdef i64 bound = CG_INF
    cdef int bound_col = -1
    for e in range(indptr[row], indptr[row + 1]):
        c = slot[e]
        if dead[c]:
            continue
        nd = cost_of_edge[e] - u[row] - v[c]
        if _relax(s, c, nd, row, e, match_row, &bound, &bound_col) < 0:
            return -1
    if _relax(s, dummy, 0 - u[row] - v[dummy], row, -1, match_row, &bound, &bound_col) < 0:
        return -1
    while s.heap_size > 0:
        c = _heap_pop(s, &d)
        if d >= bound:
            break
        if s.scanned[c] or d > s.dist[c]:
            continue
        s.scanned[c] = 1
        r = match_row[c]
        for e in range(indptr[r], indptr[r + 1]):
            c2 = slot[e]
            if s.scanned[c2] or dead[c2]:
                continue
            if _relax(s, c2, d + cost_of_edge[e] - u[r] - v[c2], r, e, match_row, &bound,
                      &bound_col) < 0:
                return -1
        c2 = n_slots + r  # the matched row may also give up its column and stay unmatched
        if c2 != c and not s.scanned[c2]:
            if _relax(s, c2, d - u[r] - v[c2], r, -1, match_row, &bound, &bound_col) < 0:
                return -1
    end = bound_col
    delta = bound
    if end < 0:
        return -2  # unreachable: the row's own "unmatched" column is always free
    # move potentials so that the path's edges become tight and the others stay >= 0
    for k in range(s.n_touched):
        c = s.touched[k]
        if s.scanned[c] and c != end:
            v[c] += s.dist[c] - delta
            u[match_row[c]] += delta - s.dist[c]
    u[row] += delta
    # augment: each row on the path takes the column that led to the next
    c = end
    while True:
        r = s.pred_row[c]
        prev = match_col[r]
        match_col[r] = c
        match_row[c] = r
        match_edge[r] = s.pred_edge[c]
        if r == row:
            break
        c = prev
    for k in range(s.n_touched):
        c = s.touched[k]
        s.dist[c] = CG_INF
        s.scanned[c] = 0
    return 0


cdef int _solve_rows(
    const int* rows, int n_rows_here, int n_slots,
    const i64* indptr, const int* slot, const i64* cost_of_edge, const char* dead,
    i64* u, i64* v, int* match_row, int* match_col, i64* match_edge, Scratch* s,
) noexcept nogil:
    cdef int k, status
    for k in range(n_rows_here):
        status = _insert_row(rows[k], n_slots, indptr, slot, cost_of_edge, dead, u, v,
                             match_row, match_col, match_edge, s)
        if status != 0:
            return status
    return 0


cdef Scratch* _new_scratch(int n_columns, i64 n_edges) noexcept nogil:
    cdef Scratch* s = <Scratch*> malloc(sizeof(Scratch))
    cdef int k
    if s == NULL:
        return NULL
    s.dist = <i64*> malloc(n_columns * sizeof(i64))
    s.pred_row = <int*> malloc(n_columns * sizeof(int))
    s.pred_edge = <i64*> malloc(n_columns * sizeof(i64))
    s.scanned = <char*> malloc(n_columns * sizeof(char))
    s.touched = <int*> malloc(n_columns * sizeof(int))
    s.heap_capacity = 4096
    s.heap_key = <i64*> malloc(s.heap_capacity * sizeof(i64))
    s.heap_col = <int*> malloc(s.heap_capacity * sizeof(int))
    if (s.dist == NULL or s.pred_row == NULL or s.pred_edge == NULL or s.scanned == NULL
            or s.touched == NULL or s.heap_key == NULL or s.heap_col == NULL):
        _free_scratch(s)
        return NULL
    for k in range(n_columns):
        s.dist[k] = CG_INF
    memset(s.scanned, 0, n_columns)
    s.heap_size = 0
    s.n_touched = 0
    return s


cdef void _free_scratch(Scratch* s) noexcept nogil:
    if s != NULL:
        free(s.dist)
        free(s.pred_row)
        free(s.pred_edge)
        free(s.scanned)
        free(s.touched)
        free(s.heap_key)
        free(s.heap_col)
        free(s)


cdef class Solver:
    """The state of one solved instance: assignment and potentials, kept so that rows can be
    added or removed later and repaired in place (see care_graph.matcher)."""

    cdef public object indptr, slots, costs, u, v, match_row, match_col, match_edge, dead
    cdef public int n_rows, n_slots

    def __init__(self, indptr, slots, costs, int n_rows, int n_slots):
        self.indptr = indptr
        self.slots = slots
        self.costs = costs
        self.n_rows = n_rows
        self.n_slots = n_slots
        self.u = np.zeros(n_rows, dtype=np.int64)
        self.v = np.zeros(n_slots + n_rows, dtype=np.int64)
        self.match_row = np.full(n_slots + n_rows, -1, dtype=np.int32)
        self.match_col = np.full(n_rows, -1, dtype=np.int32)
        self.match_edge = np.full(n_rows, -1, dtype=np.int64)
        self.dead = np.zeros(n_slots + n_rows, dtype=np.int8)  # slots not on offer

    def insert_rows(self, rows):
        """Insert rows (all currently unmatched) one by one along shortest augmenting paths;
        releases the GIL, so batches of independent rows may run on several threads."""
        cdef int[::1] order = np.ascontiguousarray(rows, dtype=np.int32)
        cdef const i64[::1] indptr = self.indptr
        cdef const int[::1] slot = self.slots
        cdef const i64[::1] cost = self.costs
        cdef i64[::1] u = self.u
        cdef i64[::1] v = self.v
        cdef int[::1] match_row = self.match_row
        cdef int[::1] match_col = self.match_col
        cdef i64[::1] match_edge = self.match_edge
        cdef const signed char[::1] dead = self.dead
        cdef int n_columns = self.n_slots + self.n_rows
        cdef i64 n_edges = slot.shape[0]
        cdef int status = 0, n = order.shape[0]
        cdef Scratch* scratch
        if n == 0:
            return
        with nogil:
            scratch = _new_scratch(n_columns, n_edges)
            if scratch == NULL:
                status = -3
            else:
                status = _solve_rows(&order[0], n, self.n_slots, &indptr[0],
                                     &slot[0] if n_edges > 0 else NULL,
                                     &cost[0] if n_edges > 0 else NULL,
                                     <const char*> &dead[0],
                                     &u[0], &v[0], &match_row[0], &match_col[0],
                                     &match_edge[0], scratch)
                _free_scratch(scratch)
        if status == -3:
            raise MemoryError("not enough memory for the solver's working arrays")
        if status != 0:
            raise RuntimeError(f"internal solver error {status}")


cdef int _insert_column(
    int c, int n_slots, const i64* cptr, const int* crows, const i64* cedges,
    const i64* cost_of_edge, i64* u, i64* v, int* match_row, int* match_col, i64* match_edge,
    Scratch* s,
) noexcept nogil:
    """Put a free slot on offer and restore optimality: the mirror image of _insert_row, with
    rows and slots swapped. The slot's fresh price is what the keenest referral would pay;
    if someone wants it, a shortest path (Dijkstra over referrals) moves referrals one step
    along and ends where a slot is best left free. Only assigned referrals take part."""
    cdef i64 best = 0, nd, d, delta, bound
    cdef int i, i2, j, k_row, r, col, holder, bound_row = -1
    cdef i64 k
    for k in range(cptr[c], cptr[c + 1]):
        i = crows[k]
        if match_col[i] < 0:
            continue
        nd = cost_of_edge[cedges[k]] - u[i]
        if nd < best:
            best = nd
    v[c] = best
    if best == 0:
        return 0  # nobody would rather have it: it stays free at price 0
    s.heap_size = 0
    s.n_touched = 0
    bound = 0 - v[c]  # the slot staying free after all
    for k in range(cptr[c], cptr[c + 1]):
        i = crows[k]
        if match_col[i] < 0:
            continue
        nd = cost_of_edge[cedges[k]] - u[i] - v[c]
        if nd < s.dist[i] and nd < bound:
            _touch(s, i)
            s.dist[i] = nd
            s.pred_row[i] = c  # here: the slot the referral would take
            s.pred_edge[i] = cedges[k]
            if _heap_push(s, nd, i) < 0:
                return -1
    while s.heap_size > 0:
        i = _heap_pop(s, &d)
        if d >= bound:
            break
        if s.scanned[i] or d > s.dist[i]:
            continue
        s.scanned[i] = 1
        j = match_col[i]
        if d - v[j] < bound:  # the referral moves on and leaves its slot free
            bound = d - v[j]
            bound_row = i
        if j >= n_slots:
            continue  # a referral's own "unmatched" column: nobody else can take it
        for k in range(cptr[j], cptr[j + 1]):
            i2 = crows[k]
            if i2 == i or s.scanned[i2] or match_col[i2] < 0:
                continue
            nd = d + cost_of_edge[cedges[k]] - u[i2] - v[j]
            if nd < s.dist[i2] and nd < bound:
                _touch(s, i2)
                s.dist[i2] = nd
                s.pred_row[i2] = j
                s.pred_edge[i2] = cedges[k]
                if _heap_push(s, nd, i2) < 0:
                    return -1
    delta = bound
    for k_row in range(s.n_touched):
        i = s.touched[k_row]
        if s.scanned[i]:
            u[i] += s.dist[i] - delta
            v[match_col[i]] += delta - s.dist[i]
    v[c] += delta
    if bound_row >= 0:
        r = bound_row
        match_row[match_col[r]] = -1
        while r >= 0:
            col = s.pred_row[r]
            holder = match_row[col] if col != c else -1
            match_col[r] = col
            match_row[col] = r
            match_edge[r] = s.pred_edge[r]
            r = holder
    for k_row in range(s.n_touched):
        i = s.touched[k_row]
        s.dist[i] = CG_INF
        s.scanned[i] = 0
    return 0


def insert_columns(Solver solver, columns, col_ptr, col_rows, col_edges):
    """Offer free slots (or slots just freed) again, one at a time, each along a shortest path
    (see _insert_column). Referrals not assigned to anything (inactive) take no part."""
    cdef int[::1] order = np.ascontiguousarray(columns, dtype=np.int32)
    cdef const i64[::1] cptr = col_ptr
    cdef const int[::1] crows = col_rows
    cdef const i64[::1] cedges = col_edges
    cdef const i64[::1] cost = solver.costs
    cdef i64[::1] u = solver.u
    cdef i64[::1] v = solver.v
    cdef int[::1] match_row = solver.match_row
    cdef int[::1] match_col = solver.match_col
    cdef i64[::1] match_edge = solver.match_edge
    cdef int n_slots = solver.n_slots, n = order.shape[0], k, status = 0
    cdef Scratch* scratch
    if n == 0 or cedges.shape[0] == 0:
        for k in range(n):
            v[order[k]] = 0
        return
    with nogil:
        scratch = _new_scratch(solver.n_rows, 0)
        if scratch == NULL:
            status = -3
        else:
            for k in range(n):
                status = _insert_column(order[k], n_slots, &cptr[0], &crows[0], &cedges[0],
                                        &cost[0], &u[0], &v[0], &match_row[0], &match_col[0],
                                        &match_edge[0], scratch)
                if status != 0:
                    break
            _free_scratch(scratch)
    if status == -3:
        raise MemoryError("not enough memory for the solver's working arrays")
    if status != 0:
        raise RuntimeError(f"internal solver error {status}")


def connected_components(indptr, slots, int n_rows, int n_slots):
    """Label each row with its connected component (rows sharing candidate slots, directly or
    through other rows); rows without edges get components of their own."""
    cdef const i64[::1] ptr = indptr
    cdef const int[::1] slot = slots
    parent_array = np.arange(n_rows + n_slots, dtype=np.int32)
    cdef int[::1] parent = parent_array
    cdef int r, a, b
    cdef i64 e
    with nogil:
        for r in range(n_rows):
            for e in range(ptr[r], ptr[r + 1]):
                a = _find(parent, r)
                b = _find(parent, n_rows + slot[e])
                if a != b:
                    if a < b:
                        parent[b] = a
                    else:
                        parent[a] = b
        for r in range(n_rows):
            parent[r] = _find(parent, r)
    return parent_array[:n_rows].copy()


cdef inline int _find(int[::1] parent, int x) noexcept nogil:
    cdef int root = x, next_
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        next_ = parent[x]
        parent[x] = root
        x = next_
    return root
