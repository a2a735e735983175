"""Decoding, cache, augmentation alignment and the paired dataset."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import data_tools.cache as cache_module
from data_tools.cache import PairImageCache
from data_tools.dataset import PairedGrainDataset
from data_tools.images import ImageDecodeError, load_prepared, load_rgb
from data_tools.manifest_io import load_dataset
from data_tools.pipeline_benchmark_cli import main as benchmark_pipeline_main
from data_tools.transforms import AugmentationConfig, ChannelStats, PairTransform, channel_stats

IDENTITY_STATS = ChannelStats((0.0,) * 3, (1.0,) * 3, (0.0,) * 3, (1.0,) * 3)


def test_modes_and_exif_orientation_become_upright_rgb(tmp_path):
    grey16 = Image.fromarray(np.full((4, 6), 65535, dtype=np.uint16))
    grey16.save(tmp_path / "g16.png")
    assert load_rgb(tmp_path / "g16.png").tolist() == np.full((4, 6, 3), 255).tolist()
    Image.new("RGBA", (5, 3), (10, 20, 30, 0)).save(tmp_path / "rgba.png")
    assert load_rgb(tmp_path / "rgba.png")[0, 0].tolist() == [10, 20, 30]
    Image.new("P", (5, 3), 7).save(tmp_path / "palette.png")
    assert load_rgb(tmp_path / "palette.png").shape == (3, 5, 3)
    # A landscape 8x4 JPEG tagged "rotate 90" must come out 4 wide and 8 tall.
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (8, 4), (200, 0, 0)).save(tmp_path / "rotated.jpg", exif=exif)
    assert load_rgb(tmp_path / "rotated.jpg").shape == (8, 4, 3)


def test_center_crop_and_resize(tmp_path):
    pixels = np.zeros((20, 40, 3), dtype=np.uint8)
    pixels[:, 10:30] = 255  # the central 20x20 square is white
    Image.fromarray(pixels).save(tmp_path / "wide.png")
    prepared = load_prepared(tmp_path / "wide.png", size=8)
    assert prepared.shape == (8, 8, 3) and prepared.min() == 255
    assert load_prepared(tmp_path / "wide.png", size=8, crop="none").min() == 0


def test_unreadable_image_names_the_file(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    with pytest.raises(ImageDecodeError, match="bad.jpg"):
        load_rgb(tmp_path / "bad.jpg")


def test_cache_decodes_each_file_once_and_redecodes_a_changed_file(
    tmp_path, write_pair_tree, write_image, monkeypatch
):
    root = tmp_path / "tree"
    write_pair_tree(root, "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 3}, "pengqu": {"Zrn": 2}})
    dataset = load_dataset(root, progress=False)
    calls: list[str] = []
    real = cache_module.load_prepared
    monkeypatch.setattr(cache_module, "load_prepared", lambda p, s, c: calls.append(str(p)) or real(p, s, c))
    cache = PairImageCache(tmp_path / "cache", workers=2)

    first = cache.load(dataset, size=16, progress=False)
    assert first.decoded == 10 and len(calls) == 10 and len(set(calls)) == 10
    second = cache.load(dataset, size=16, progress=False)
    assert second.decoded == 0 and len(calls) == 10
    np.testing.assert_array_equal(first.plane, second.plane)
    assert first.plane[0].tolist() == load_prepared(root / dataset.manifest["plane_path"][0], 16).tolist()

    changed = root / dataset.manifest["cross_path"][1]
    write_image(changed, seed=777, size=(30, 30))
    third = cache.load(dataset, size=16, progress=False)
    assert third.decoded == 1 and calls[-1] == str(changed)
    assert third.cross[1].tolist() == load_prepared(changed, 16).tolist()
    assert cache.load(dataset, size=8, progress=False).decoded == 10  # another size is another store


def _grain_pair(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A pair whose XPL is a pixel-exact function of its PPL (plus a colour offset)."""
    rng = np.random.default_rng(0)
    plane = rng.integers(0, 200, size=(size, size, 3), dtype=np.uint8)
    return plane, (plane + 40).astype(np.uint8)


def test_geometric_augmentation_keeps_the_pair_aligned():
    plane, cross = _grain_pair()
    no_photometry = AugmentationConfig(
        brightness_contrast=0, gamma_percent=0, hue_shift_degrees=0, noise_std=0, blur_probability=0
    )
    transform = PairTransform(32, IDENTITY_STATS, train=True, augmentation=no_photometry, seed=1)
    moved_any = False
    for _ in range(20):
        new_plane, new_cross = transform.augment(plane, cross)
        moved_any |= not np.array_equal(new_plane, plane)
        # Interpolation may differ by rounding only; the geometry is the same.
        assert np.abs(new_cross.astype(int) - new_plane.astype(int) - 40).max() <= 1
    assert moved_any


def test_photometry_is_drawn_per_image_and_evaluation_is_untouched():
    plane, _ = _grain_pair()
    photometry_only = AugmentationConfig(
        flips=False,
        rotate90=False,
        rotate_degrees=0,
        crop_scale_min=1.0,
        brightness_contrast=0.3,
        gamma_percent=0,
        hue_shift_degrees=0,
        noise_std=0,
        blur_probability=0,
    )
    transform = PairTransform(32, IDENTITY_STATS, train=True, augmentation=photometry_only, seed=3)
    differs = [not np.array_equal(*transform.augment(plane, plane.copy())) for _ in range(10)]
    assert any(differs)
    evaluation = PairTransform(32, IDENTITY_STATS, train=False)
    out_plane, out_cross = evaluation(plane, plane)
    np.testing.assert_allclose(out_plane.numpy().transpose(1, 2, 0), plane / 255.0, atol=1e-6)


def test_same_seed_same_augmentations():
    plane, cross = _grain_pair()
    a = PairTransform(32, IDENTITY_STATS, train=True, seed=5)
    b = PairTransform(32, IDENTITY_STATS, train=True, seed=5)
    for _ in range(3):
        np.testing.assert_array_equal(a.augment(plane, cross)[1], b.augment(plane, cross)[1])
    a.reseed(9)
    b.reseed(9)
    np.testing.assert_array_equal(a.augment(plane, cross)[0], b.augment(plane, cross)[0])


def test_dataset_items_and_normalisation(tmp_path, write_pair_tree):
    root = tmp_path / "tree"
    write_pair_tree(root, "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 2, "Zrn": 2}})
    dataset = load_dataset(root, progress=False)
    pairs = PairImageCache(tmp_path / "cache").load(dataset, size=12, progress=False)
    stats = channel_stats(pairs.plane, pairs.cross, np.arange(4))
    expected = pairs.plane.reshape(-1, 3).astype(np.float64).mean(axis=0) / 255
    np.testing.assert_allclose(stats.plane_mean, expected, atol=1e-5)
    labels = np.array([0, 0, 1, 1])
    items = PairedGrainDataset(pairs, [3, 1], labels, np.zeros(4, int), PairTransform(12, stats, train=False))
    item = items[0]
    assert item["plane"].shape == (3, 12, 12) and item["cross"].dtype.is_floating_point
    assert int(item["label"]) == 1 and int(item["index"]) == 3
    normalised = item["plane"].reshape(3, -1).mean(dim=1)
    assert normalised.abs().max() < 3.0


@pytest.mark.parametrize(
    ("arguments", "code", "message"),
    [
        (["{tmp}/no-such-root"], 2, "does not exist"),
        (["{tmp}/empty"], 2, "no layout fits this tree"),
        (["{tmp}/tree", "--size", "100000"], 2, "image side must be 1..8192 px"),
        (["{tmp}/orphan"], 1, "orphan.png"),
    ],
)
def test_pipeline_benchmark_errors_are_one_clear_message(
    tmp_path, write_pair_tree, write_image, arguments, code, message, capsys
):
    (tmp_path / "empty").mkdir()
    write_pair_tree(tmp_path / "tree", "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 1}})
    write_pair_tree(tmp_path / "orphan", "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 1}})
    write_image(tmp_path / "orphan/yangtze/plane/Ap/orphan.png", 5)
    argv = [a.format(tmp=tmp_path) for a in arguments]
    try:
        returned = benchmark_pipeline_main(argv)
    except SystemExit as exit_info:  # argparse's own usage errors
        returned = exit_info.code
    assert returned == code
    assert message in capsys.readouterr().err
