# C-level interface of care_graph._matcher: what other Cython modules may cimport.

cdef double haversine(double lat1, double lon1, double lat2, double lon2) noexcept nogil
