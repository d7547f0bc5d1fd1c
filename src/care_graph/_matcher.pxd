# C-level interface of care_graph._matcher: what other Cython modules may cimport.

cdef double haversine(double lat1, double lon1, double lat2, double lon2) noexcept nogil

ctypedef long long i64

# What the solver's nogil routines return; _raise_for turns any but CG_OK into an exception.
cdef enum:
    CG_OK = 0
    CG_NO_MEMORY = -1  # malloc/realloc returned NULL: MemoryError
    CG_NO_PATH = -2    # no augmenting path: cannot happen while the solver's state is consistent


cdef class Solver:
    # All private: Python reaches the state only through Solver's methods and read-only
    # properties, and every index it hands in is checked there first (see _matcher.pyx).
    cdef readonly int n_rows, n_slots
    cdef object _indptr, _slots, _costs             # the CSR by referral: the solver's own copy
    cdef object _u, _v                              # potentials of rows, of columns
    cdef object _match_row, _match_col, _match_edge  # the assignment, both ways
    cdef object _dead                               # 1: slot not on offer
    cdef object _col_ptr, _col_rows, _col_edges     # the CSR by slot, built on first use

    cdef object _columns_to_rows(self)
    cdef object _release(self, object rows)
    cdef object _insert_columns(self, object columns)
