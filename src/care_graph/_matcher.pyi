"""Type stubs for the compiled kernel care_graph._matcher."""

import numpy as np
import numpy.typing as npt

def haversine_km(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> npt.NDArray[np.float64]: ...
def nearest_k(
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    target_lat: npt.ArrayLike,
    target_lon: npt.ArrayLike,
    k: int,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float64]]: ...

class Solver:
    indptr: npt.NDArray[np.int64]
    slots: npt.NDArray[np.int32]
    costs: npt.NDArray[np.int64]
    u: npt.NDArray[np.int64]
    v: npt.NDArray[np.int64]
    match_row: npt.NDArray[np.int32]
    match_col: npt.NDArray[np.int32]
    match_edge: npt.NDArray[np.int64]
    dead: npt.NDArray[np.int8]
    n_rows: int
    n_slots: int
    def __init__(
        self,
        indptr: npt.NDArray[np.int64],
        slots: npt.NDArray[np.int32],
        costs: npt.NDArray[np.int64],
        n_rows: int,
        n_slots: int,
    ) -> None: ...
    def insert_rows(self, rows: npt.ArrayLike) -> None: ...

def connected_components(
    indptr: npt.NDArray[np.int64], slots: npt.NDArray[np.int32], n_rows: int, n_slots: int
) -> npt.NDArray[np.int32]: ...
def insert_columns(
    solver: Solver,
    columns: npt.ArrayLike,
    col_ptr: npt.NDArray[np.int64],
    col_rows: npt.NDArray[np.int32],
    col_edges: npt.NDArray[np.int64],
) -> None: ...
