"""The pair's training geometry as one composed warp (data_tools/pair_geometry.py)."""

from __future__ import annotations

import numpy as np
import pytest

from data_tools.pair_geometry import GeometryConfig, PairWarp

SIZE = 16


def _image(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)


def _dihedral_views(image: np.ndarray) -> list[np.ndarray]:
    return [np.rot90(view, k) for view in (image, image[:, ::-1]) for k in range(4)]


def test_flips_and_quarter_turns_are_exact_permutations_of_the_pixels() -> None:
    warp = PairWarp(SIZE, GeometryConfig(rotate_degrees=0.0), seed=3)
    plane, cross = _image(0), _image(1)
    views_seen = set()
    for _ in range(40):
        moved_plane, moved_cross = warp(plane, cross)
        matches = [i for i, view in enumerate(_dihedral_views(plane)) if np.array_equal(view, moved_plane)]
        assert len(matches) == 1, "a flip or quarter turn must not interpolate"
        assert np.array_equal(_dihedral_views(cross)[matches[0]], moved_cross)  # the same view
        views_seen.add(matches[0])
    assert len(views_seen) == 8


def test_a_crop_alone_magnifies_and_stays_inside_the_image() -> None:
    warp = PairWarp(
        SIZE, GeometryConfig(flips=False, rotate90=False, rotate_degrees=0.0, crop_scale_min=0.3), seed=0
    )
    edge = SIZE - 0.5
    corners = np.array([[-0.5, -0.5, 1], [edge, -0.5, 1], [-0.5, edge, 1], [edge, edge, 1]])
    cropped = 0
    for _ in range(50):
        matrix = warp.draw()
        if np.allclose(matrix, np.eye(3)):
            continue
        cropped += 1
        assert matrix[0, 0] >= 1.0 and matrix[1, 1] >= 1.0  # zoomed in, never out
        source = np.linalg.solve(matrix, corners.T).T  # where the output's corners come from
        assert source[:, :2].min() >= -0.5 - 1e-9 and source[:, :2].max() <= SIZE - 0.5 + 1e-9
    assert 10 < cropped < 40  # applied with probability 0.5


def test_the_pair_moves_together_under_rotation_and_zoom() -> None:
    warp = PairWarp(SIZE, GeometryConfig(zoom=0.3, crop_scale_min=0.5), seed=1)
    plane = np.random.default_rng(0).integers(0, 200, (SIZE, SIZE, 3), dtype=np.uint8)
    for _ in range(20):
        moved_plane, moved_cross = warp(plane, plane + 40)
        np.testing.assert_array_equal(moved_cross.astype(int) - moved_plane.astype(int), 40)


def test_same_seed_same_draws_and_reseed_restarts_the_stream() -> None:
    config = GeometryConfig(zoom=0.2, crop_scale_min=0.75)
    first, second = PairWarp(SIZE, config, seed=7), PairWarp(SIZE, config, seed=7)
    draws = [first.draw() for _ in range(5)]
    for matrix in draws:
        np.testing.assert_array_equal(matrix, second.draw())
    first.reseed(7)
    np.testing.assert_array_equal(first.draw(), draws[0])
    assert not np.allclose(PairWarp(SIZE, config, seed=8).draw(), draws[0])


def test_switching_a_part_off_leaves_the_other_parts_draws_unchanged() -> None:
    crop_only = GeometryConfig(flips=False, rotate90=False, rotate_degrees=0.0, crop_scale_min=0.5)
    with_flips = GeometryConfig(flips=True, rotate90=False, rotate_degrees=0.0, crop_scale_min=0.5)
    a, b = PairWarp(SIZE, crop_only, seed=2), PairWarp(SIZE, with_flips, seed=2)
    for _ in range(10):
        crop = a.draw()
        # Flips only change signs of the linear part; the crop's scales are the same draws.
        np.testing.assert_allclose(np.abs(np.diag(b.draw())[:2]), np.diag(crop)[:2])


def test_images_of_another_size_are_refused_with_both_shapes() -> None:
    warp = PairWarp(SIZE, GeometryConfig())
    with pytest.raises(ValueError, match=r"\(16, 16, 3\).*\(8, 8, 3\)"):
        warp(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8, 3), np.uint8))
