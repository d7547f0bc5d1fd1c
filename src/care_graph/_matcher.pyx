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

from libc.limits cimport INT_MAX
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memset

cdef extern from *:
    """
    #define CG_INF 0x3fffffffffffffffLL
    """
    long long CG_INF

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
    """Push (key, col), growing the heap when full; CG_NO_MEMORY when memory runs out (the
    heap is then as it was, and _free_scratch frees whatever was reallocated)."""
    cdef int i = s.heap_size
    cdef int parent, capacity
    cdef i64* keys
    cdef int* cols
    if i >= s.heap_capacity:
        if s.heap_capacity > INT_MAX // 2:
            return CG_NO_MEMORY
        capacity = 2 * s.heap_capacity
        keys = <i64*> realloc(s.heap_key, capacity * sizeof(i64))
        if keys == NULL:
            return CG_NO_MEMORY
        s.heap_key = keys
        cols = <int*> realloc(s.heap_col, capacity * sizeof(int))
        if cols == NULL:
            return CG_NO_MEMORY
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
    return CG_OK


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
        return CG_OK
    _touch(s, c)
    s.dist[c] = nd
    s.pred_row[c] = r
    s.pred_edge[c] = e
    if match_row[c] == -1:
        bound[0] = nd
        bound_col[0] = c
        return CG_OK
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
        return CG_OK
    if best_edge < 0 and match_row[dummy] == -1:
        match_col[row] = dummy
        match_row[dummy] = row
        match_edge[row] = -1
        return CG_OK
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
            return CG_NO_MEMORY
    if _relax(s, dummy, 0 - u[row] - v[dummy], row, -1, match_row, &bound, &bound_col) < 0:
        return CG_NO_MEMORY
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
                return CG_NO_MEMORY
        c2 = n_slots + r  # the matched row may also give up its column and stay unmatched
        if c2 != c and not s.scanned[c2]:
            if _relax(s, c2, d - u[r] - v[c2], r, -1, match_row, &bound, &bound_col) < 0:
                return CG_NO_MEMORY
    end = bound_col
    delta = bound
    if end < 0:
        return CG_NO_PATH  # unreachable: the row's own "unmatched" column is always free
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
    return CG_OK


# Augmenting row reduction (Jonker and Volgenant's initial phase) before the shortest paths.
# A free row takes its cheapest column at reduced cost u1 and lowers that column's price until
# the column costs it u2, its second cheapest: every row keeps an optimal column at its price
# and every edge a non-negative reduced cost, so the state is one the shortest-path insertion
# accepts at any point, and the optimum is unchanged. A column's holder is displaced and bids
# next. Where capacity is plentiful most rows are settled so, by a price in a few edge scans
# instead of a Dijkstra. Where it is scarce most are not: the price it sets makes the next
# bidder's two best columns tie, and a tie displaces a holder without moving a price, so most
# rows are still free after the passes (benchmarks/README.md). Price wars (many rows nudging
# prices by small steps) are cut off by a budget linear in the input; the rows still free then
# go to the shortest paths.
cdef int ARR_PASSES = 2
cdef int ARR_STEPS_PER_ROW = 4


cdef int _reduce_rows(
    int* free_rows, int n_free, int n_slots,
    const i64* indptr, const int* slot, const i64* cost_of_edge, const char* dead,
    i64* u, i64* v, int* match_row, int* match_col, i64* match_edge, int* spare,
) noexcept nogil:
    """Run the passes over free_rows (n_free distinct unmatched rows; spare has room for as
    many); returns how many rows are still free, left at the front of free_rows."""
    cdef i64 steps = <i64> n_free * ARR_STEPS_PER_ROW
    cdef int passes, k, i, i0, c, j1, j2, n_next, dummy
    cdef i64 e, e1, e2, u1, u2, nd
    cdef int* queue = free_rows
    cdef int* later = spare
    cdef int* swap
    for passes in range(ARR_PASSES):
        k = 0
        n_next = 0
        while k < n_free:
            if steps == 0:
                while k < n_free:  # out of budget: whoever is left stays free
                    later[n_next] = queue[k]
                    n_next += 1
                    k += 1
                break
            steps -= 1
            i = queue[k]
            k += 1
            dummy = n_slots + i
            u1 = 0 - v[dummy]
            j1 = dummy
            e1 = -1
            u2 = CG_INF
            j2 = -1
            e2 = -1
            for e in range(indptr[i], indptr[i + 1]):
                c = slot[e]
                if dead[c]:
                    continue
                nd = cost_of_edge[e] - v[c]
                if nd < u1:
                    if c != j1:
                        u2, j2, e2 = u1, j1, e1
                    u1, j1, e1 = nd, c, e
                elif nd < u2 and c != j1:
                    u2, j2, e2 = nd, c, e
            i0 = match_row[j1]
            if j2 < 0:  # nothing but its own "unmatched" column: no price to set
                u2 = u1
            elif u1 < u2:
                v[j1] -= u2 - u1
            elif i0 >= 0:  # a tie: take the equally cheap second column, not a fight
                j1, e1 = j2, e2
                i0 = match_row[j1]
            if i0 >= 0:
                match_col[i0] = -1
                match_edge[i0] = -1
            match_row[j1] = i
            match_col[i] = j1
            match_edge[i] = e1
            u[i] = u2
            if i0 >= 0:
                if u1 < u2:
                    k -= 1  # the displaced row bids at once, in the slot just read
                    queue[k] = i0
                else:
                    later[n_next] = i0
                    n_next += 1
        swap = queue
        queue = later
        later = swap
        n_free = n_next
        if n_free == 0:
            break
    if queue != free_rows:
        for k in range(n_free):
            free_rows[k] = queue[k]
    return n_free


cdef int _solve_rows(
    const int* rows, int n_rows_here, int n_slots,
    const i64* indptr, const int* slot, const i64* cost_of_edge, const char* dead,
    i64* u, i64* v, int* match_row, int* match_col, i64* match_edge, Scratch* s,
) noexcept nogil:
    """Insert the rows (distinct, unmatched): reduction passes first, then a shortest
    augmenting path for each row they leave free."""
    cdef int k, status, n_free
    cdef int* work = <int*> malloc(2 * (<size_t> n_rows_here) * sizeof(int) + sizeof(int))
    if work == NULL:
        return CG_NO_MEMORY
    for k in range(n_rows_here):
        work[k] = rows[k]
    n_free = _reduce_rows(work, n_rows_here, n_slots, indptr, slot, cost_of_edge, dead, u, v,
                          match_row, match_col, match_edge, work + n_rows_here)
    status = CG_OK
    for k in range(n_free):
        status = _insert_row(work[k], n_slots, indptr, slot, cost_of_edge, dead, u, v,
                             match_row, match_col, match_edge, s)
        if status != CG_OK:
            break
    free(work)
    return status


cdef Scratch* _new_scratch(int n_columns) noexcept nogil:
    """Working arrays for searches over n_columns nodes; NULL (and nothing held) when memory
    runs out."""
    cdef Scratch* s = <Scratch*> calloc(1, sizeof(Scratch))  # NULL pointers: safe to free
    cdef int k
    if s == NULL:
        return NULL
    if n_columns < 1:
        n_columns = 1  # malloc(0) may return NULL, which must not read as "out of memory"
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


# --- the boundary: what Python hands the solver is checked here, before any C sees it --------
#
# The nogil routines above index raw arrays (Cython's boundscheck and wraparound are off), so
# every array and every id that comes from Python is checked once, here: dtype, shape, range
# and, for ids, that none is given twice. Each check is one vectorised or nogil pass, linear in
# what it checks; each failure is a ValueError naming the bad value and what was expected.

def _vector(name, value, dtype):
    """value itself if it is a one-dimensional numpy array of dtype; ValueError otherwise."""
    if not isinstance(value, np.ndarray):
        raise ValueError(f"{name} must be a numpy array of {np.dtype(dtype).name}")
    if value.dtype != dtype:
        raise ValueError(f"{name} must have dtype {np.dtype(dtype).name}, got {value.dtype}")
    if value.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {value.shape}")
    return value


def _count(name, value):
    """value as an int if it is an integer (not a bool) in [0, 2**31 - 1); ValueError
    otherwise."""
    if (not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0
            or value >= INT_MAX):
        raise ValueError(f"{name} must be a non-negative integer below 2**31 - 1, got {value!r}")
    return int(value)


cdef _check_structure(indptr, slots, Py_ssize_t n_slots):
    """indptr (C-contiguous int64) runs from 0 to len(slots) and never decreases; each of slots
    (C-contiguous int32) lies in [0, n_slots). ValueError naming the first entry that does not."""
    cdef const i64[::1] ptr = indptr
    cdef const int[::1] slot = slots
    cdef Py_ssize_t n_rows = ptr.shape[0] - 1, n_edges = slot.shape[0], k, bad = -1
    cdef unsigned int limit
    cdef int wrong = 0
    if n_rows < 0:
        raise ValueError("indptr needs at least one entry (0 for no referrals)")
    if ptr[0] != 0:
        raise ValueError(f"indptr must start at 0, got {ptr[0]}")
    if ptr[n_rows] != n_edges:
        raise ValueError(f"indptr must end at len(slots) = {n_edges}, got {ptr[n_rows]}")
    if n_rows + n_slots >= INT_MAX:
        raise ValueError(
            f"too many referrals and slots for 32-bit indices: {n_rows} + {n_slots}"
            f" must stay below {INT_MAX}"
        )
    limit = <unsigned int> n_slots
    with nogil:
        # branch-free passes (they vectorise); the first bad position only when there is one
        for k in range(n_rows):
            wrong |= ptr[k + 1] < ptr[k]
        if wrong:
            for k in range(n_rows):
                if ptr[k + 1] < ptr[k]:
                    bad = k
                    break
    if bad >= 0:
        raise ValueError(
            f"indptr must not decrease: indptr[{bad + 1}] = {ptr[bad + 1]}"
            f" after indptr[{bad}] = {ptr[bad]}"
        )
    with nogil:
        for k in range(n_edges):
            wrong |= <unsigned int> slot[k] >= limit  # a negative slot wraps to >= 2**31
        if wrong:
            for k in range(n_edges):
                if <unsigned int> slot[k] >= limit:
                    bad = k
                    break
    if bad >= 0:
        raise ValueError(f"slot indices must lie in [0, {n_slots}), got slots[{bad}] = {slot[bad]}")


def _edges(indptr, slots, n_slots):
    """(indptr, slots, n_slots) checked as by check_graph, without weights."""
    _vector("indptr", indptr, np.int64)
    _vector("slots", slots, np.int32)
    n = _count("n_slots", n_slots)
    indptr = np.ascontiguousarray(indptr)
    slots = np.ascontiguousarray(slots)
    _check_structure(indptr, slots, n)
    return indptr, slots, n


def check_graph(indptr, slots, weights, n_slots):
    """The candidate edges, checked: ``(indptr, slots, weights, n_slots)`` as C-contiguous
    arrays (the same objects when they already are) and an int, or ValueError naming what is
    wrong. ``indptr`` int64, from 0 to len(slots), never decreasing; ``slots`` int32 in
    [0, n_slots); ``weights`` int64, one per edge."""
    indptr, slots, n = _edges(indptr, slots, n_slots)
    _vector("weights", weights, np.int64)
    if len(weights) != len(slots):
        raise ValueError(f"weights has {len(weights)} entries for {len(slots)} slots")
    return indptr, slots, np.ascontiguousarray(weights), n


def as_ids(what, values, Py_ssize_t limit):
    """Ids of referrals (what="referral") or slots from Python, checked: a new C-contiguous
    int32 vector of distinct integers in [0, limit), or ValueError naming the first bad value
    (not one-dimensional, not integers, out of range, given twice). One nogil pass."""
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{what} ids must be one-dimensional, got shape {array.shape}")
    if array.shape[0] == 0:
        return np.zeros(0, dtype=np.int32)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{what} ids must be integers, got dtype {array.dtype}")
    if array.dtype == np.uint64 and (array >= limit).any():  # past int64: would wrap below
        _out_of_range(what, array[(array >= limit).argmax()].item(), limit)
    cdef const i64[::1] given = np.ascontiguousarray(array, dtype=np.int64)
    ids = np.empty(given.shape[0], dtype=np.int32)  # a copy: the caller's may change, not this
    cdef int[::1] out = ids
    cdef Py_ssize_t n = given.shape[0], k, bad = -1, repeated = -1
    cdef i64 id_
    # one bit per possible id: 64 KB for half a million slots, zeroed by calloc
    cdef unsigned char* seen = <unsigned char*> calloc((limit >> 3) + 1, 1)
    if seen == NULL:
        raise MemoryError(f"not enough memory to check {n} {what} ids for repeats")
    with nogil:
        for k in range(n):
            id_ = given[k]
            if id_ < 0 or id_ >= limit:
                bad = k
                break
            if seen[id_ >> 3] & (1 << (id_ & 7)):
                repeated = k
                break
            seen[id_ >> 3] |= 1 << (id_ & 7)
            out[k] = <int> id_
    free(seen)
    if bad >= 0:
        _out_of_range(what, given[bad], limit)
    if repeated >= 0:
        raise ValueError(f"{what} {given[repeated]} is given twice")
    return ids


def _out_of_range(what, value, limit):
    raise ValueError(f"{what} {value} is out of range: {what} ids lie in [0, {limit})")


cdef object _read_only(array):
    """A view of array that Python cannot write, nor make writeable again."""
    return np.asarray(memoryview(array).toreadonly())


cdef _raise_for(int status, str during):
    """The exception for a status other than CG_OK from the nogil routines."""
    if status == CG_NO_MEMORY:
        raise MemoryError(
            f"not enough memory for the solver's working arrays while {during}; what was"
            " allocated is freed, the matching stays consistent but may not be optimal"
        )
    if status == CG_NO_PATH:
        raise RuntimeError(
            f"internal solver error while {during}: no augmenting path, though a referral's"
            " own 'unmatched' column is always free; the solver's state is inconsistent"
        )
    raise RuntimeError(f"internal solver error {status} while {during}")


cdef class Solver:
    """The state of one solved instance: assignment and potentials, kept so that rows can be
    added or removed later and repaired in place (see care_graph.matcher).

    ``Solver(indptr, slots, weights, bonus, n_slots)``: the candidate edges in CSR by referral
    (checked as check_graph does), and one bonus per referral; edge e of referral r costs
    ``-(weights[e] + bonus[r])``, minimised. The caller keeps those costs within +-2**60, so
    that sums along paths fit in int64 (matcher.py checks its tier bonuses for that).

    The state is private: the solver keeps its own copy of the edges, so arrays the caller
    still holds may change without reaching C; Python reads the state through read-only
    properties and changes it only through the methods below, which check each id they are
    given (as_ids) and refuse with ValueError before anything changes.
    """

    def __cinit__(self, indptr, slots, weights, bonus, n_slots):
        _vector("indptr", indptr, np.int64)
        _vector("slots", slots, np.int32)
        _vector("weights", weights, np.int64)
        _vector("bonus", bonus, np.int64)
        n = _count("n_slots", n_slots)
        indptr = np.array(indptr, order="C")  # copies, checked once and never changed after
        slots = np.array(slots, order="C")
        _check_structure(indptr, slots, n)
        n_rows = len(indptr) - 1
        if len(weights) != len(slots):
            raise ValueError(f"weights has {len(weights)} entries for {len(slots)} slots")
        if len(bonus) != n_rows:
            raise ValueError(f"bonus has {len(bonus)} entries for {n_rows} referrals")
        costs = np.repeat(bonus, np.diff(indptr))  # built in place: one array of len(edges)
        costs += weights
        np.negative(costs, out=costs)
        self.n_rows = n_rows
        self.n_slots = n
        self._indptr = indptr
        self._slots = slots
        self._costs = costs
        self._u = np.zeros(n_rows, dtype=np.int64)
        self._v = np.zeros(n + n_rows, dtype=np.int64)
        self._match_row = np.full(n + n_rows, -1, dtype=np.int32)
        self._match_col = np.full(n_rows, -1, dtype=np.int32)
        self._match_edge = np.full(n_rows, -1, dtype=np.int64)
        self._dead = np.zeros(n + n_rows, dtype=np.int8)

    @property
    def match_col(self):
        """Each referral's column (read-only): its slot; n_slots + r when it is left unmatched;
        -1 when it has not been inserted, or was removed."""
        return _read_only(self._match_col)

    @property
    def match_edge(self):
        """Each referral's edge, an index into slots; -1 when it holds no slot (read-only)."""
        return _read_only(self._match_edge)

    @property
    def prices(self):
        """Each slot's dual price in the objective (weights plus bonuses), as a new array."""
        return -self._v[: self.n_slots]

    @property
    def unavailable(self):
        """For each slot, whether it is off offer (read-only)."""
        return _read_only(self._dead[: self.n_slots]).view(np.bool_)

    def insert_rows(self, rows):
        """Insert referrals one by one, in the order given, along shortest augmenting paths.

        Each is an id in [0, n_rows), given once, not matched now. Releases the GIL, so batches
        from disjoint components may run on several threads at once (batches that share a
        component must not). On MemoryError the referrals not yet inserted stay unmatched.
        """
        order_array = as_ids("referral", rows, self.n_rows)
        cdef int[::1] order = order_array
        cdef int status = CG_OK, n = order.shape[0], k, matched = -1
        if n == 0:
            return
        cdef int[::1] match_col = self._match_col
        with nogil:
            for k in range(n):
                if match_col[order[k]] >= 0:
                    matched = order[k]
                    break
        if matched >= 0:
            raise ValueError(
                f"referral {matched} is matched already (column {match_col[matched]}):"
                " remove it before inserting it again"
            )
        cdef const i64[::1] indptr = self._indptr
        cdef const int[::1] slot = self._slots
        cdef const i64[::1] cost = self._costs
        cdef i64[::1] u = self._u
        cdef i64[::1] v = self._v
        cdef int[::1] match_row = self._match_row
        cdef i64[::1] match_edge = self._match_edge
        cdef const signed char[::1] dead = self._dead
        cdef int n_columns = self.n_slots + self.n_rows
        cdef i64 n_edges = slot.shape[0]
        cdef Scratch* scratch
        with nogil:
            scratch = _new_scratch(n_columns)
            if scratch == NULL:
                status = CG_NO_MEMORY
            else:
                status = _solve_rows(&order[0], n, self.n_slots, &indptr[0],
                                     &slot[0] if n_edges > 0 else NULL,
                                     &cost[0] if n_edges > 0 else NULL,
                                     <const char*> &dead[0],
                                     &u[0], &v[0], &match_row[0], &match_col[0],
                                     &match_edge[0], scratch)
                _free_scratch(scratch)
        if status != CG_OK:
            _raise_for(status, "inserting referrals")

    def remove_rows(self, rows):
        """Referrals that leave: each gives up its column, and the slots they held go to whoever
        gains most (as offer_columns, MemoryError included). Ids in [0, n_rows), each once,
        matched or not."""
        self._insert_columns(self._release(as_ids("referral", rows, self.n_rows)))

    def withdraw_columns(self, columns):
        """Slots taken off offer: marked so, and whoever held one is unassigned. Returns those
        referrals (int32, in the order of their slots) for the caller to insert again, in an
        order of its choosing. Slot ids in [0, n_slots), each once."""
        slots = as_ids("slot", columns, self.n_slots)
        self._dead[slots] = 1
        holders = self._match_row[slots]
        holders = holders[holders >= 0]
        self._release(holders)
        return holders

    def offer_columns(self, columns):
        """Slots back on offer (after withdraw_columns): each goes to whoever gains most, along
        a shortest path, or stays free at price 0. Slots on offer already are left as they are.
        Slot ids in [0, n_slots), each once. On MemoryError the slots not yet placed are left
        off offer (see unavailable) and the matching is optimal without them."""
        slots = as_ids("slot", columns, self.n_slots)
        slots = slots[self._dead[slots] != 0]  # off offer, so nobody holds them
        self._dead[slots] = 0
        self._insert_columns(slots)

    def prepare_columns(self):
        """Build the slot -> referrals index that offering slots needs (done on first use
        otherwise): a one-time cost, about a cold solve's."""
        self._columns_to_rows()

    cdef object _columns_to_rows(self):
        """Each slot's referrals and edges (CSC of the edges), built on first use."""
        if self._col_ptr is None:
            edge_rows = np.repeat(np.arange(self.n_rows, dtype=np.int32), np.diff(self._indptr))
            order = np.argsort(self._slots, kind="stable")
            col_ptr = np.zeros(self.n_slots + 1, dtype=np.int64)
            col_ptr[1:] = np.cumsum(np.bincount(self._slots, minlength=self.n_slots))
            self._col_ptr = col_ptr
            self._col_rows = edge_rows[order]
            self._col_edges = order.astype(np.int64)

    cdef object _release(self, object rows):
        """Unassign rows (checked ids); the "unmatched" columns they held go back to price 0.
        Returns the slots they held, now free (int32)."""
        held = self._match_col[rows]
        holding = held >= 0
        rows, held = rows[holding], held[holding]
        self._match_row[held] = -1
        self._match_col[rows] = -1
        self._match_edge[rows] = -1
        own = held >= self.n_slots
        self._v[held[own]] = 0
        return held[~own]

    cdef object _insert_columns(self, object columns):
        """Offer free slots (checked int32 ids) one at a time, each along a shortest path (see
        _insert_column). Referrals not assigned to anything (inactive) take no part."""
        cdef int[::1] order = columns
        cdef int n_slots = self.n_slots, n = order.shape[0], k, status = CG_OK, placed = 0
        cdef const i64[::1] cptr, cedges, cost
        cdef const int[::1] crows
        cdef i64[::1] u, v, match_edge
        cdef int[::1] match_row, match_col
        cdef Scratch* scratch
        if n == 0:
            return
        self._columns_to_rows()
        cptr, crows, cedges, cost = self._col_ptr, self._col_rows, self._col_edges, self._costs
        u, v, match_edge = self._u, self._v, self._match_edge
        match_row, match_col = self._match_row, self._match_col
        if cedges.shape[0] == 0:
            for k in range(n):
                v[order[k]] = 0
            return
        with nogil:
            scratch = _new_scratch(self.n_rows)
            if scratch == NULL:
                status = CG_NO_MEMORY
            else:
                for k in range(n):
                    status = _insert_column(order[k], n_slots, &cptr[0], &crows[0], &cedges[0],
                                            &cost[0], &u[0], &v[0], &match_row[0],
                                            &match_col[0], &match_edge[0], scratch)
                    if status != CG_OK:
                        break
                    placed += 1
                _free_scratch(scratch)
        if status != CG_OK:
            # a slot that found no place (and those after it) goes off offer at price 0: the
            # matching is then optimal without them, and offering them again finishes the work
            rest = columns[placed:]
            self._v[rest] = 0
            self._dead[rest] = 1
            _raise_for(status, "offering slots")


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
        return CG_OK  # nobody would rather have it: it stays free at price 0
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
                return CG_NO_MEMORY
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
                    return CG_NO_MEMORY
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
    return CG_OK


def connected_components(indptr, slots, n_rows, n_slots):
    """Label each row with its connected component (rows sharing candidate slots, directly or
    through other rows); rows without edges get components of their own. The edges are checked
    as check_graph does, and n_rows must be len(indptr) - 1: ValueError otherwise."""
    indptr, slots, n_slots = _edges(indptr, slots, n_slots)
    if _count("n_rows", n_rows) != len(indptr) - 1:
        raise ValueError(f"n_rows must be len(indptr) - 1 = {len(indptr) - 1}, got {n_rows}")
    cdef const i64[::1] ptr = indptr
    cdef const int[::1] slot = slots
    cdef int rows = len(indptr) - 1
    parent_array = np.arange(rows + n_slots, dtype=np.int32)
    cdef int[::1] parent = parent_array
    cdef int r, a, b
    cdef i64 e
    with nogil:
        for r in range(rows):
            for e in range(ptr[r], ptr[r + 1]):
                a = _find(parent, r)
                b = _find(parent, rows + slot[e])
                if a != b:
                    if a < b:
                        parent[b] = a
                    else:
                        parent[a] = b
        for r in range(rows):
            parent[r] = _find(parent, r)
    return parent_array[:rows].copy()


cdef inline int _find(int[::1] parent, int x) noexcept nogil:
    cdef int root = x, next_
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        next_ = parent[x]
        parent[x] = root
        x = next_
    return root


cdef class InOrder:
    """Booking without a matcher, for comparison: referrals, in an order the caller chooses
    (arrival for first-come-first-served, urgency for priority-greedy), each take their
    highest-weight candidate slot still open. The same candidate edges as Solver, checked
    once when made; each call checks only what it is given."""

    cdef object _indptr, _slots, _weights
    cdef int n_slots

    def __cinit__(self, indptr, slots, weights, n_slots):
        indptr, slots, weights, n = check_graph(indptr, slots, weights, n_slots)
        self._indptr = np.array(indptr, order="C")  # copies: the caller's may change later
        self._slots = np.array(slots, order="C")
        self._weights = np.array(weights, order="C")
        self.n_slots = n

    def book(self, rows, open_slots):
        """Each referral of ``rows`` (distinct ids, in booking order) takes its best candidate
        whose slot is open (``open_slots``: one uint8 per slot, non-zero when open), which is
        then closed (set to 0) in place. Returns each referral's chosen edge (int64, -1: none
        open); ties go to the earlier edge."""
        order_array = as_ids("referral", rows, len(self._indptr) - 1)
        _vector("open_slots", open_slots, np.uint8)
        if len(open_slots) != self.n_slots or not open_slots.flags.c_contiguous:
            raise ValueError(f"open_slots must be {self.n_slots} contiguous uint8 flags")
        chosen_array = np.full(len(order_array), -1, dtype=np.int64)
        cdef const int[::1] order = order_array
        cdef unsigned char[::1] is_open = open_slots
        cdef i64[::1] chosen = chosen_array
        cdef const i64[::1] indptr = self._indptr
        cdef const int[::1] slot = self._slots
        cdef const i64[::1] weight = self._weights
        cdef Py_ssize_t k, n = order.shape[0]
        cdef i64 e, best
        cdef int row
        with nogil:
            for k in range(n):
                row = order[k]
                best = -1
                for e in range(indptr[row], indptr[row + 1]):
                    if is_open[slot[e]] and (best < 0 or weight[e] > weight[best]):
                        best = e
                if best >= 0:
                    is_open[slot[best]] = 0
                    chosen[k] = best
        return chosen_array
