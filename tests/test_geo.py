"""The compiled great-circle kernel: known distances, agreement with numpy, clear errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from care_graph._matcher import haversine_km, nearest_k

LONDON = (51.5074, -0.1278)
MANCHESTER = (53.4808, -2.2426)
EDINBURGH = (55.9533, -3.1883)


def numpy_haversine(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> npt.NDArray[np.float64]:
    lat1, lon1, lat2, lon2 = map(np.radians, (lat1, lon1, lat2, lon2))
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    distance: npt.NDArray[np.float64] = 2 * 6371.0088 * np.arcsin(np.sqrt(a))
    return distance


def test_known_distances() -> None:
    distances = haversine_km(
        [LONDON[0], LONDON[0]],
        [LONDON[1], LONDON[1]],
        [MANCHESTER[0], EDINBURGH[0]],
        [MANCHESTER[1], EDINBURGH[1]],
    )
    assert distances[0] == pytest.approx(262.8, abs=1.0)
    assert distances[1] == pytest.approx(534.0, abs=2.0)


def test_zero_and_antipodes() -> None:
    assert haversine_km([10.0], [20.0], [10.0], [20.0])[0] == 0.0
    assert haversine_km([0.0], [0.0], [0.0], [180.0])[0] == pytest.approx(np.pi * 6371.0088)


def test_agrees_with_numpy_on_random_points() -> None:
    rng = np.random.default_rng(5)
    lat1, lat2 = rng.uniform(49, 56, (2, 1000))
    lon1, lon2 = rng.uniform(-6, 2, (2, 1000))
    np.testing.assert_allclose(
        haversine_km(lat1, lon1, lat2, lon2), numpy_haversine(lat1, lon1, lat2, lon2), rtol=1e-12
    )


def test_nearest_k_matches_brute_force() -> None:
    rng = np.random.default_rng(9)
    points = rng.uniform([50, -4], [54, 1], (300, 2))
    targets = rng.uniform([50, -4], [54, 1], (40, 2))
    index, distance = nearest_k(points[:, 0], points[:, 1], targets[:, 0], targets[:, 1], 3)
    full = numpy_haversine(points[:, :1], points[:, 1:], targets[None, :, 0], targets[None, :, 1])
    expected = np.argsort(full, axis=1, kind="stable")[:, :3]
    np.testing.assert_array_equal(index, expected)
    np.testing.assert_allclose(distance, np.take_along_axis(full, expected, axis=1), rtol=1e-12)


def test_nearest_k_with_fewer_targets_than_k() -> None:
    index, distance = nearest_k([51.0], [0.0], [51.0, 52.0], [0.0, 0.0], 5)
    assert index.tolist() == [[0, 1]]
    assert distance.shape == (1, 2)


def test_nearest_k_with_no_targets() -> None:
    index, distance = nearest_k([51.0, 52.0], [0.0, 0.0], [], [], 3)
    assert index.shape == (2, 0)
    assert distance.shape == (2, 0)


def test_mismatched_lengths_are_refused() -> None:
    with pytest.raises(ValueError, match="same length"):
        haversine_km([1.0, 2.0], [1.0], [1.0, 2.0], [1.0, 2.0])


def test_two_dimensional_input_is_refused() -> None:
    with pytest.raises(ValueError, match="lat1 must be one-dimensional"):
        haversine_km([[1.0]], [1.0], [1.0], [1.0])


def test_negative_k_is_refused() -> None:
    with pytest.raises(ValueError, match="k must not be negative"):
        nearest_k([1.0], [1.0], [1.0], [1.0], -1)
