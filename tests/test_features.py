"""Hand-crafted features: named columns, determinism, grain segmentation, cache and unreadable images."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.draw import ellipse

import baselines.features as features_module
from baselines.features import extract_features, grain_mask, pair_features
from data_tools.images import ImageDecodeError
from data_tools.manifest import build_manifest

SIZE = 48
COLUMN = re.compile(
    r"^(plane|cross)_(hsv_[hsv]_\d\d|lab_[lab]_\d\d|moment_(rgb_[rgb]|lab_[lab])_(mean|std|skew)"
    r"|glcm_(contrast|dissimilarity|homogeneity|energy|correlation|asm)_d\d_a(0|45|90|135)|lbp_p\d+_r\d+_\d\d)$"
    r"|^grain_shape_(area_fraction|aspect_ratio|eccentricity|solidity|circularity|extent|hu[1-7])$"
    r"|^plane_rim_contrast$|^cross_dark_fraction$"
)


def grain_pair(
    rng: np.random.Generator, *, size: int = 96, isotropic: bool, axes: tuple[int, int] = (30, 18)
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grain-mount pair: a colourless PPL grain with a dark rim on a pale background, and an XPL
    image with a dark background and a grain that is black (isotropic) or bright; plus the true mask."""
    truth = np.zeros((size, size), dtype=bool)
    truth[ellipse(size // 2, size // 2 - 2, axes[0], axes[1], shape=truth.shape, rotation=0.4)] = True
    rim = truth & ~ndimage.binary_erosion(truth, iterations=3)
    plane = np.full((size, size, 3), (215.0, 210.0, 200.0))
    plane[truth] = (226, 214, 204)
    plane[rim] = (60, 55, 50)
    cross = np.full((size, size, 3), 12.0)
    cross[truth] = 14 if isotropic else (200, 150, 90)
    plane += rng.normal(0, 4, plane.shape)
    cross += rng.normal(0, 2, cross.shape)
    to_uint8 = lambda image: np.clip(image, 0, 255).astype(np.uint8)
    return to_uint8(plane), to_uint8(cross), truth


def write_grain_tree(root: Path, seed: int = 0) -> pd.DataFrame:
    """Six pairs in two classes under {domain}/{pol}/{label}/{name}; returns the manifest."""
    rng = np.random.default_rng(seed)
    for label, isotropic in (("Grt", True), ("Zrn", False)):
        for i in range(3):
            plane, cross, _ = grain_pair(rng, isotropic=isotropic, axes=(20 + 3 * i, 14))
            for pol, image in (("plane", plane), ("cross", cross)):
                path = root / "river" / pol / label / f"{label}_{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(image).save(path)
    return build_manifest(root, progress=False).manifest


@pytest.fixture
def pair_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A list that grows by one each time a pair's features are computed (serial extraction only)."""
    calls: list[int] = []
    original = features_module.pair_features

    def counting(plane: np.ndarray, cross: np.ndarray) -> dict[str, float]:
        calls.append(1)
        return original(plane, cross)

    monkeypatch.setattr(features_module, "pair_features", counting)
    return calls


def test_pair_features_are_named_finite_and_deterministic():
    rng = np.random.default_rng(0)
    plane, cross, _ = grain_pair(rng, isotropic=False)
    first, second = pair_features(plane, cross), pair_features(plane.copy(), cross.copy())
    names = list(first)
    assert names == list(second) and first == second
    assert len(names) == len(set(names))
    assert [n for n in names if not COLUMN.match(n)] == []
    assert np.isfinite(list(first.values())).all()
    for pol in ("plane", "cross"):  # 6 statistics x 3 distances x 4 angles per polarization
        assert sum(n.startswith(f"{pol}_glcm_") for n in names) == 72
    assert {"cross_glcm_contrast_d1_a45", "plane_hsv_h_03", "grain_shape_solidity"} <= set(names)
    with pytest.raises(ValueError, match="one shape"):
        pair_features(plane, cross[:-1])


@pytest.mark.parametrize("isotropic", [True, False])
def test_grain_mask_finds_colourless_grains_and_dark_fraction_tells_isotropic(isotropic):
    plane, cross, truth = grain_pair(np.random.default_rng(1), isotropic=isotropic)
    mask = grain_mask(rgb2lab(plane), rgb2lab(cross))
    assert (mask & truth).sum() / (mask | truth).sum() > 0.9
    features = pair_features(plane, cross)
    assert features["cross_dark_fraction"] > 0.9 if isotropic else features["cross_dark_fraction"] < 0.1
    assert features["plane_rim_contrast"] > 20  # the dark rim of a high-relief grain
    assert features["grain_shape_aspect_ratio"] == pytest.approx(30 / 18, rel=0.15)


def test_uniform_image_falls_back_to_the_whole_frame():
    flat = np.full((32, 32, 3), 128, dtype=np.uint8)
    assert grain_mask(rgb2lab(flat), rgb2lab(flat)).all()
    assert np.isfinite(list(pair_features(flat, flat).values())).all()


def test_extract_features_is_aligned_with_the_manifest_and_cached(tmp_path, pair_calls):
    manifest = write_grain_tree(tmp_path / "tree")
    calls = pair_calls
    options = {"size": SIZE, "n_jobs": 1, "cache_dir": tmp_path / "cache", "progress": False}
    table = extract_features(manifest, tmp_path / "tree", **options)
    assert len(calls) == len(manifest) == 6
    assert list(table["sample_id"]) == list(manifest["sample_id"])
    assert list(table.columns[:3]) == ["sample_id", "domain", "label"]
    assert table.attrs["features"] == {
        "version": features_module.FEATURES_VERSION,
        "size": SIZE,
        "crop": "center",
    }

    shuffled = manifest.sample(frac=1.0, random_state=0)
    again = extract_features(shuffled, tmp_path / "tree", **options)
    assert len(calls) == 6  # read back, not recomputed
    assert list(again["sample_id"]) == list(shuffled["sample_id"])
    pd.testing.assert_frame_equal(again.set_index("sample_id").loc[table["sample_id"]].reset_index(), table)

    extract_features(manifest, tmp_path / "tree", **{**options, "size": SIZE + 8})
    assert len(calls) == 12  # another working size is another table
    changed = manifest.copy()
    changed.loc[0, "plane_sha1"] = "0" * 40  # as if one image had been replaced
    extract_features(changed, tmp_path / "tree", **options)
    assert len(calls) == 18


def test_parallel_extraction_matches_serial(tmp_path):
    manifest = write_grain_tree(tmp_path / "tree").head(4)
    options = {"size": SIZE, "use_cache": False, "progress": False}
    serial = extract_features(manifest, tmp_path / "tree", n_jobs=1, **options)
    parallel = extract_features(manifest, tmp_path / "tree", n_jobs=2, **options)
    pd.testing.assert_frame_equal(serial, parallel)


def test_unreadable_image_is_an_error_naming_sample_and_file(tmp_path):
    manifest = write_grain_tree(tmp_path / "tree")
    broken = manifest["cross_path"].iloc[2]
    (tmp_path / "tree" / broken).write_bytes(b"not an image")
    with pytest.raises(ImageDecodeError, match=re.escape(broken)) as caught:
        extract_features(manifest, tmp_path / "tree", size=SIZE, n_jobs=1, use_cache=False, progress=False)
    assert manifest["sample_id"].iloc[2] in str(caught.value)
    with pytest.raises(ValueError, match="plane_path"):
        extract_features(manifest.drop(columns="plane_path"), tmp_path / "tree", use_cache=False)


def test_manifest_without_hashes_is_keyed_by_file_content(tmp_path, pair_calls):
    manifest = write_grain_tree(tmp_path / "tree").drop(columns=["plane_sha1", "cross_sha1"])
    calls = pair_calls
    options = {"size": SIZE, "n_jobs": 1, "cache_dir": tmp_path / "cache", "progress": False}
    extract_features(manifest, tmp_path / "tree", **options)
    extract_features(manifest, tmp_path / "tree", **options)
    assert len(calls) == 6
    flipped = np.asarray(Image.open(tmp_path / "tree" / manifest["cross_path"].iloc[0]))[::-1]
    Image.fromarray(np.ascontiguousarray(flipped)).save(tmp_path / "tree" / manifest["cross_path"].iloc[0])
    extract_features(manifest, tmp_path / "tree", **options)
    assert len(calls) == 12
