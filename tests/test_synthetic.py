"""The synthetic three-river generator: layout, counts, determinism, optics, river shift, errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from data_tools.images import load_rgb
from data_tools.names import CANONICAL_CLASSES, CANONICAL_RIVERS
from data_tools.reference_counts import PUBLISHED_COUNTS
from data_tools.synthetic import GENERATOR_VERSION, class_counts, default_dataset, generate_dataset, textures
from data_tools.synthetic import generate as generate_module
from data_tools.synthetic import render as render_module
from data_tools.synthetic.acquisition import _s_curve
from data_tools.synthetic.benchmark import main as benchmark_main
from data_tools.synthetic.cli import main as make_synthetic_main
from data_tools.synthetic.gap_cli import main as gap_main
from data_tools.synthetic.grains import (
    distance_to_background,
    farther_than,
    rasterize,
    round_corners,
    signed_distance,
)
from data_tools.synthetic.minerals import MINERALS
from data_tools.synthetic.optics import colour_matching_functions, interference_colour, interference_lut
from data_tools.synthetic.preview import contact_sheet
from data_tools.synthetic.render import SUPERSAMPLE, render_pair
from data_tools.synthetic.rivers import RIVER_OFFSETS, VARIANT_LOGITS, river_style, variant_logit
from data_tools.synthetic.textures import quantile

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_synthetic.py"
SMALL = dict(scale=0.02, size=64)


@pytest.fixture(scope="session")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dataset (about one pair per river and class), rendered in this process."""
    root = tmp_path_factory.mktemp("synthetic") / "set"
    generate_dataset(root, seed=0, workers=1, progress=False, **SMALL)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.jpg"))}


def _luminance(image: np.ndarray) -> np.ndarray:
    return (image.astype(np.float64) / 255.0) @ np.array([0.299, 0.587, 0.114])


def _border(image: np.ndarray, width: int = 3) -> np.ndarray:
    parts = [image[:width], image[-width:], image[:, :width], image[:, -width:]]
    return np.concatenate([p.reshape(-1, image.shape[-1]) for p in parts])


# --- counts and layout ------------------------------------------------------------------------


def test_full_scale_counts_are_the_published_table() -> None:
    assert class_counts(1.0) == PUBLISHED_COUNTS
    assert sum(sum(c.values()) for c in class_counts(1.0).values()) == 1654


def test_small_scale_keeps_present_classes_and_absent_ones_absent() -> None:
    counts = class_counts(0.001)
    for river in CANONICAL_RIVERS:
        for mineral in CANONICAL_CLASSES:
            expected = 1 if PUBLISHED_COUNTS[river][mineral] > 0 else 0
            assert counts[river][mineral] == expected, (river, mineral)
    assert class_counts(0.5)["pengqu"]["Zrn"] == 52
    assert class_counts(0.5)["yangtze"]["Amp"] == 11  # 10.5 rounds half up


def test_layout_counts_and_description(small_set: Path) -> None:
    description = json.loads((small_set / "dataset.json").read_text())
    counts = class_counts(SMALL["scale"])
    assert description["counts"] == counts
    assert description["generator_version"] == GENERATOR_VERSION
    assert (description["seed"], description["size"], description["shift"]) == (0, 64, 1.0)
    assert description["synthetic"] is True
    assert "synthetic" in (small_set / "README.md").read_text().lower()
    for river in CANONICAL_RIVERS:
        for mineral in CANONICAL_CLASSES:
            plane = sorted(p.name for p in (small_set / river / "plane" / mineral).glob("*.jpg"))
            cross = sorted(p.name for p in (small_set / river / "cross" / mineral).glob("*.jpg"))
            assert len(plane) == counts[river][mineral], (river, mineral)
            assert plane == cross, "every PPL image needs its XPL partner with the same name"
    for absent in ("Ep", "Rt", "Tur"):
        assert not (small_set / "yangtze" / "plane" / absent).exists()
    image = load_rgb(next((small_set / "pengqu" / "cross" / "Zrn").glob("*.jpg")))
    assert image.shape == (64, 64, 3)


def test_manifest_builder_reads_the_set(small_set: Path) -> None:
    from data_tools.manifest import build_manifest

    result = build_manifest(small_set, progress=False)
    assert not result.errors
    assert len(result.manifest) == sum(sum(c.values()) for c in class_counts(SMALL["scale"]).values())
    assert set(result.manifest["domain"]) == set(CANONICAL_RIVERS)


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [2, 3])
def test_same_seed_is_byte_identical_whatever_the_worker_count(
    small_set: Path, tmp_path: Path, workers: int
) -> None:
    """This process renders from the back of the queue while 1 or 2 workers render from the front."""
    generate_dataset(tmp_path / "again", seed=0, workers=workers, progress=False, **SMALL)
    assert _files(tmp_path / "again") == _files(small_set)
    assert (tmp_path / "again" / "dataset.json").read_bytes() == (small_set / "dataset.json").read_bytes()


SMALL_SET_DIGEST = "65c80f244740d5c0393dd2216d1e35a42f30355de4f548c3a26ff54106aeab33"
"""sha256 over the paths and bytes of every file of the SMALL set (seed 0), as generator v1 wrote it."""


def _digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def test_bytes_match_the_pinned_digest(small_set: Path) -> None:
    """Speed work must not change a byte; a deliberate change bumps GENERATOR_VERSION and this digest.

    The digest also depends on numpy, Pillow and libm: a different build of them may change it.
    """
    assert GENERATOR_VERSION == 1
    assert _digest(small_set) == SMALL_SET_DIGEST


def test_another_seed_draws_other_grains(small_set: Path, tmp_path: Path) -> None:
    generate_dataset(tmp_path / "other", seed=1, workers=1, progress=False, **SMALL)
    ours, theirs = _files(small_set), _files(tmp_path / "other")
    assert ours.keys() == theirs.keys()
    assert all(ours[name] != theirs[name] for name in ours)


# --- fast helpers that must compute the same numbers as what they replace ---------------------


def _random_masks(count: int, frame: int = 96) -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    masks = [np.zeros((frame, frame), bool), np.ones((frame, frame), bool)]
    for _ in range(count):
        corners = rng.uniform(-0.3 * frame, 1.3 * frame, (int(rng.integers(3, 9)), 2))
        masks.append(rasterize(corners, frame).copy())
    return masks


def test_distance_transform_is_scipys_bit_for_bit() -> None:
    for mask in _random_masks(40):
        for image in (mask, ~mask):
            expected = ndimage.distance_transform_edt(image)
            assert np.array_equal(distance_to_background(image), expected)


def test_rounding_and_signed_distance_match_the_whole_frame_formulas() -> None:
    rng = np.random.default_rng(8)
    for mask in _random_masks(40):
        radius = float(rng.uniform(0, 30))
        expected = mask
        if radius >= 1.0:
            eroded = ndimage.distance_transform_edt(mask) > radius
            expected = ndimage.distance_transform_edt(~eroded) <= radius if eroded.any() else mask
        rounded = round_corners(mask, radius)
        assert np.array_equal(rounded, expected)
        inside = ndimage.distance_transform_edt(rounded) - 0.5
        outside = ndimage.distance_transform_edt(~rounded) - 0.5
        expected_distance = np.where(rounded, inside, -outside).astype(np.float32)
        assert np.array_equal(signed_distance(rounded), expected_distance)


def test_farther_than_is_the_distance_compared_with_the_radius() -> None:
    radii = [1.0, 1.5, 2.0, 2.0**0.5, 5.0, 7.0, 50.0**0.5, 12.999999999, 13.0, 13.000000001]
    for mask in _random_masks(20):
        distance = distance_to_background(mask)
        for radius in radii:
            assert np.array_equal(farther_than(mask, radius), distance > radius)


def test_quantile_is_numpys() -> None:
    rng = np.random.default_rng(9)
    for size in (2, 3, 10, 1000, 4096, 256 * 256):
        values = rng.standard_normal(size).astype(np.float32)
        for q in (0.3, 0.4, 0.5, 0.65, float(rng.uniform(0.01, 0.99))):
            assert quantile(values, q) == np.quantile(values, q)
            assert quantile(np.round(values, 1), q) == np.quantile(np.round(values, 1), q)  # ties


def test_quantile_of_a_smooth_field_and_when_the_sample_misleads() -> None:
    rng = np.random.default_rng(11)
    field = textures.smooth_noise(rng, 256, 12.0)
    for q in (0.3, 0.45, 0.65):
        assert quantile(field, q) == np.quantile(field, q)
    # every sampled value is the smallest: the bounds miss the ranks and the whole array is partitioned
    misleading = rng.standard_normal(256 * 256).astype(np.float32)
    misleading[:: textures.SAMPLE_STRIDE] = -10.0
    assert quantile(misleading, 0.5) == np.quantile(misleading, 0.5)


def test_smooth_noise_at_pixels_is_the_field_there() -> None:
    pixels = np.flatnonzero(np.random.default_rng(12).random(128 * 128) < 0.3)
    for feature in (2.0, 9.5, 64.0):
        whole = textures.smooth_noise(np.random.default_rng(13), 128, feature)
        at_pixels = textures.smooth_noise_at(np.random.default_rng(13), 128, feature, pixels)
        assert np.array_equal(at_pixels, whole.ravel()[pixels])


def test_contrast_curve_returns_the_planes_formula_channels_last() -> None:
    planes = np.random.default_rng(15).random((3, 16, 16)).astype(np.float32)
    for strength in (0.0, 0.5, 1.3):
        expected = planes
        if strength >= 1e-3:
            expected = ((2.0 * planes - 1.0) * strength).astype(np.float32)
            expected = np.tanh(expected) * np.float32(0.5) / np.tanh(strength) + 0.5
        result = _s_curve(planes, strength)
        assert result.flags.c_contiguous and result.dtype == expected.dtype
        assert np.array_equal(result, expected.transpose(1, 2, 0))


def test_block_mean_is_numpys_mean() -> None:
    rng = np.random.default_rng(10)
    planes = rng.random((3, 64 * 64)) * rng.choice([1e-3, 1.0, 1e3], (3, 64 * 64))
    image = planes.reshape(3, 64, 64).transpose(1, 2, 0)
    expected = image.reshape(32, SUPERSAMPLE, 32, SUPERSAMPLE, 3).mean(axis=(1, 3)).astype(np.float32)
    assert np.array_equal(render_module._downsample(planes, 64).transpose(1, 2, 0), expected)
    into = np.empty((32, 32), np.float32)
    render_module._downsample(planes[1], 64, out=into)
    assert np.array_equal(into, expected[..., 1])


def test_interference_table_filled_on_demand_equals_the_whole_table() -> None:
    lut = interference_lut()
    retardation = np.array([0.0, 250.4, 4095.6, 4096.0, 39_999.7, 50_000.0])
    index = np.clip(np.rint(retardation), 0, len(lut) - 1).astype(int)
    assert np.array_equal(interference_colour(retardation), lut[index])


# --- optics and appearance --------------------------------------------------------------------


def test_colour_matching_fit_peaks_where_the_cie_functions_do() -> None:
    wavelengths = np.arange(380.0, 781.0)
    cmfs = colour_matching_functions(wavelengths)
    assert abs(wavelengths[cmfs[:, 1].argmax()] - 556) <= 4  # y-bar peaks near 555 nm at about 1.0
    assert cmfs[:, 1].max() == pytest.approx(1.0, abs=0.03)
    assert abs(wavelengths[cmfs[:, 2].argmax()] - 446) <= 8


def test_michel_levy_colours() -> None:
    lut = interference_lut()
    assert np.all(lut[0] < 0.01)  # no retardation: black
    assert np.all(lut[250] > 0.8) and np.ptp(lut[250]) < 0.15  # first-order white
    red, green, blue = lut[540]
    assert red > green and blue > green  # first-order red / purple (sensitive tint)
    assert lut[650, 2] > lut[650, 0]  # second-order blue
    assert np.ptp(lut[30_000]) < 0.02 and 0.4 < lut[30_000].mean() < 0.6  # high-order white


ISOTROPIC = [code for code, spec in MINERALS.items() if spec.isotropic]


def test_garnet_and_spinel_are_the_isotropic_classes() -> None:
    assert ISOTROPIC == ["Grt", "Spn"]


@pytest.mark.parametrize("mineral", ISOTROPIC)
def test_isotropic_grains_stay_dark_between_crossed_polars(mineral: str) -> None:
    for index, river in enumerate(CANONICAL_RIVERS * 2):
        pair = render_pair(mineral, river, size=64, shift=1.0, rng=np.random.default_rng([3, index]))
        core = ndimage.binary_erosion(pair.mask, iterations=3)
        grain = _luminance(pair.cross)[core].mean()
        background = np.median(_luminance(_border(pair.cross)))
        assert grain < 0.2 and grain < background + 0.02, (river, index, grain, background)


def test_anisotropic_grains_show_interference_colours() -> None:
    brightness = []
    for index, river in enumerate(CANONICAL_RIVERS * 2):
        pair = render_pair("Zrn", river, size=64, shift=1.0, rng=np.random.default_rng([3, index]))
        brightness.append(_luminance(pair.cross)[ndimage.binary_erosion(pair.mask, iterations=3)].mean())
    assert np.median(brightness) > 0.35


def _segment(image: np.ndarray, threshold: float = 0.12) -> np.ndarray:
    """The grain as the largest blob whose colour differs from the frame's border."""
    smooth = ndimage.gaussian_filter(image.astype(np.float64) / 255.0, (1, 1, 0))
    distance = np.linalg.norm(smooth - np.median(_border(smooth), axis=0), axis=2)
    mask = ndimage.binary_fill_holes(ndimage.binary_opening(distance > threshold))
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    return labels == 1 + int(np.argmax(ndimage.sum(mask, labels, range(1, count + 1))))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_ppl_and_xpl_outlines_agree() -> None:
    """Outlines segmented independently from the two images coincide (and a shifted XPL would not)."""
    overlaps, shifted = [], []
    for mineral in ("Zrn", "Mnz", "Px"):
        for index, river in enumerate(CANONICAL_RIVERS * 2):
            pair = render_pair(mineral, river, size=64, shift=1.0, rng=np.random.default_rng([5, index]))
            plane, cross = _segment(pair.plane), _segment(pair.cross)
            if cross.sum() < 0.5 * pair.mask.sum():
                continue  # at extinction the XPL outline cannot be segmented
            overlaps.append(_iou(plane, cross))
            shifted.append(_iou(plane, np.roll(cross, 6, axis=1)))
    assert len(overlaps) >= 10
    assert np.median(overlaps) > 0.85
    assert np.median(shifted) < np.median(overlaps) - 0.1


# --- the river shift --------------------------------------------------------------------------


def test_shift_zero_makes_every_river_style_identical() -> None:
    styles = [river_style(river, 0.0) for river in CANONICAL_RIVERS]
    assert styles[0] == styles[1] == styles[2]
    assert all(variant_logit(river, "Grt", "pink", 0.0) == 0.0 for river in CANONICAL_RIVERS)
    assert river_style("yangtze", 1.0) != river_style("pengqu", 1.0)


def test_every_river_colour_preference_names_a_real_variety() -> None:
    for river in CANONICAL_RIVERS:
        for mineral, preferences in VARIANT_LOGITS[river].items():
            names = {variant.name for variant in MINERALS[mineral].variants}
            assert set(preferences) <= names, (river, mineral, set(preferences) - names)


def test_shift_scales_the_river_offsets() -> None:
    common, one, two = (asdict(river_style("pengqu", s)) for s in (0.0, 1.0, 2.0))
    offset = RIVER_OFFSETS["pengqu"]["size_log"]
    assert offset != 0
    assert one["size_log"] - common["size_log"] == pytest.approx(offset)
    assert two["size_log"] - common["size_log"] == pytest.approx(2 * offset)


def _background_colour_by_river(shift: float) -> np.ndarray:
    """Mean PPL border colour per river over classes present in every river (rivers x RGB)."""
    rows = []
    for r, river in enumerate(CANONICAL_RIVERS):
        colours = [
            _border(
                render_pair(
                    mineral, river, size=32, shift=shift, rng=np.random.default_rng([11, r, m, i])
                ).plane
            ).mean(axis=0)
            for m, mineral in enumerate(("Ap", "Grt", "Zrn", "Px"))
            for i in range(6)
        ]
        rows.append(np.mean(colours, axis=0) / 255.0)
    return np.array(rows)


def test_shift_zero_removes_river_differences_in_image_statistics() -> None:
    spread_without = np.ptp(_background_colour_by_river(0.0), axis=0).max()
    spread_with = np.ptp(_background_colour_by_river(1.0), axis=0).max()
    assert spread_without < 0.04
    assert spread_with > 0.07


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (dict(scale=-1.0), "-1.0"),
        (dict(scale=0.0), "scale"),
        (dict(size=8), "8"),
        (dict(shift=-0.5), "-0.5"),
        (dict(seed=-3), "-3"),
        (dict(workers=0), "workers"),
        (dict(shift=float("nan")), "nan"),
    ],
)
def test_library_rejects_bad_values_with_a_named_error(tmp_path: Path, arguments: dict, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        generate_dataset(tmp_path / "out", progress=False, **arguments)
    assert not (tmp_path / "out").exists()


def test_library_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_dataset(tmp_path, scale=0.01, size=32, progress=False)


@pytest.mark.parametrize(
    "argv",
    [["--scale", "-2"], ["--size", "abc"], ["--shift", "-1"], ["--preview", "x.png", "--preview-tile", "2"]],
)
def test_command_exits_with_2_on_bad_arguments(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        make_synthetic_main([str(tmp_path / "out"), *argv])
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_script_exit_code_and_help() -> None:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "/nonexistent/out", "--scale", "-1"], capture_output=True, text=True
    )
    assert completed.returncode == 2
    assert "scale must be a finite number > 0, got -1.0" in completed.stderr
    help_text = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True).stdout
    for flag in ("--seed", "--scale", "--size", "--shift", "--preview", "--jobs", "--version"):
        assert flag in help_text


def test_benchmark_reports_speed_stages_and_identity(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "--scale",
        str(SMALL["scale"]),
        "--size",
        str(SMALL["size"]),
        "--runs",
        "1",
        "--workers",
        "1",
        "--stage-scale",
        "0.005",
    ]
    assert benchmark_main([*argv, "--reference", str(small_set)]) == 0
    report = capsys.readouterr().out
    assert "pairs/s" in report and "all byte-identical" in report
    for stage in ("geometry", "camera", "jpeg", "total"):
        assert stage in report
    other = tmp_path / "other"
    generate_dataset(other, seed=1, workers=1, progress=False, **SMALL)
    assert benchmark_main([*argv, "--stage-scale", "0", "--reference", str(other)]) == 1
    assert "DIFFER" in capsys.readouterr().out


# --- preview, default set, domain gap ---------------------------------------------------------


def test_contact_sheet_has_a_row_per_class_and_a_block_per_river(small_set: Path) -> None:
    sheet = np.asarray(contact_sheet(small_set, per_river=1, tile=16))
    assert sheet.shape[1] > 3 * 16 and sheet.shape[0] > 12 * 2 * 16
    assert np.ptp(sheet) > 100


def test_default_dataset_is_generated_once_and_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_generate, calls = generate_module.generate_dataset, []

    def small_generate(out: Path, **_: object) -> dict:
        calls.append(out)
        return real_generate(out, scale=0.01, size=32, workers=1, progress=False)

    def interrupted(out: Path, **_: object) -> dict:
        real_generate(out, scale=0.01, size=32, workers=1, progress=False)
        raise KeyboardInterrupt

    monkeypatch.setattr(generate_module, "generate_dataset", interrupted)
    with pytest.raises(KeyboardInterrupt):
        default_dataset(tmp_path)
    assert list(tmp_path.iterdir()) == [], "an interrupted generation must leave nothing behind"

    monkeypatch.setattr(generate_module, "generate_dataset", small_generate)
    first = default_dataset(tmp_path)
    assert first == tmp_path / f"v{GENERATOR_VERSION}-seed0-size128"
    assert (first / "dataset.json").is_file()
    assert default_dataset(tmp_path) == first and len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_domain_gap_report(tmp_path: Path) -> None:
    root = tmp_path / "set"
    generate_dataset(root, scale=0.06, size=32, workers=1, progress=False)
    assert gap_main([str(root), "--quiet", "--json", str(tmp_path / "gap.json")]) == 0
    report = json.loads((tmp_path / "gap.json").read_text())
    gap = report["domain_gap"]
    assert set(gap["leave_one_out"]) == set(CANONICAL_RIVERS)
    assert all(0.0 <= v <= 1.0 for v in [gap["mixed"], *gap["leave_one_out"].values()])
    assert gap["gap"] == pytest.approx(gap["mixed"] - np.mean(list(gap["leave_one_out"].values())))
    for pol in ("plane", "cross"):
        assert all(0.0 < v < 1.0 for v in report["channel_statistics"][pol]["mean"])
