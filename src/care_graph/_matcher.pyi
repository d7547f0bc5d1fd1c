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
