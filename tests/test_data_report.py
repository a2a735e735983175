"""The dataset report on a tiny tree with planted defects: each is found, nothing else is."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy import ndimage

from data_tools.manifest import build_manifest
from data_tools.manifest_io import write_manifest
from data_tools.report.build import build_report
from data_tools.report.cli import main
from data_tools.report.duplicates import HASH_BYTES, pair_neighbours, perceptual_hashes
from data_tools.report.findings import ReportSettings, collect_findings
from data_tools.report.inputs import open_data
from data_tools.report.outliers import find_outliers, iqr_fences
from data_tools.report.statistics import image_statistics

SETTINGS = ReportSettings(size=64, workers=2, progress=False)
BLURRY = "yangtze/plane/Zrn/Zrn_002.png"
COPY = ("yangtze/Grt/Grt_000", "yangtze/Grt/Grt_dup")
ROTATED = ("yangtze/Zrn/Zrn_001", "yangtze/Ap/Ap_rot")
LOOKALIKE = "pengqu/Grt/Grt_alike"  # PPL a copy of another label's PPL, XPL of another PPL: no leak


def texture(seed: int, blur: float = 0.0) -> np.ndarray:
    """A smooth random colour texture (48 x 40, grey levels 128 +- 30 sd), a stand-in for a micrograph."""
    noise = np.random.default_rng(seed).normal(size=(40, 48, 3))
    smooth = ndimage.gaussian_filter(noise, sigma=(1.5, 1.5, 0))
    image = np.clip(128 + 30 * (smooth - smooth.mean()) / smooth.std(), 0, 255)
    if blur:
        image = ndimage.gaussian_filter(image, sigma=(blur, blur, 0))
    return image.astype(np.uint8)


def save(root: Path, relative: str, image: np.ndarray, **options) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **options)


@pytest.fixture(scope="module")
def planted_tree(tmp_path_factory) -> Path:
    """Two rivers; pengqu lacks Ap; one exact copy, one rotated JPEG copy of a pair under another label,
    a pair only one of whose images is a copy (of a PPL image: once PPL, once as XPL), one blurry image,
    one truncated file and one PPL image without partner."""
    root = tmp_path_factory.mktemp("planted") / "data"
    seed = 0
    for domain, classes in (("yangtze", ("Ap", "Grt", "Zrn")), ("pengqu", ("Grt", "Zrn"))):
        for label in classes:
            for i in range(8):
                for pol in ("plane", "cross"):
                    seed += 1
                    save(root, f"{domain}/{pol}/{label}/{label}_{i:03d}.png", texture(seed))
    for pol in ("plane", "cross"):
        copied = (root / f"yangtze/{pol}/Grt/Grt_000.png").read_bytes()
        (root / f"yangtze/{pol}/Grt/Grt_dup.png").write_bytes(copied)
    for pol in ("plane", "cross"):
        original = np.asarray(Image.open(root / f"yangtze/{pol}/Zrn/Zrn_001.png"))
        save(root, f"yangtze/{pol}/Ap/Ap_rot.jpg", np.rot90(original).copy(), quality=90)
    for pol, source in (("plane", "pengqu/plane/Zrn/Zrn_004.png"), ("cross", "yangtze/plane/Ap/Ap_005.png")):
        save(
            root,
            f"{LOOKALIKE.replace('/', f'/{pol}/', 1)}.jpg",
            np.asarray(Image.open(root / source)),
            quality=90,
        )
    save(root, BLURRY, texture(10_000, blur=3.0))
    truncated = root / "pengqu/cross/Zrn/Zrn_003.png"
    truncated.write_bytes(truncated.read_bytes()[:200])
    save(root, "pengqu/plane/Grt/Grt_lonely.png", texture(10_001))
    return root


@pytest.fixture(scope="module")
def report(planted_tree, tmp_path_factory):
    return build_report(planted_tree, tmp_path_factory.mktemp("out") / "report", settings=SETTINGS)


def sample_pairs(duplicates: pd.DataFrame) -> set[tuple[frozenset[str], str, str]]:
    return {(frozenset((r.sample_a, r.sample_b)), r.kind, r.crosses) for r in duplicates.itertuples()}


def test_planted_duplicates_are_found_and_nothing_else(report):
    assert sample_pairs(report.findings.duplicates) == {
        (frozenset(COPY), "exact", ""),
        (frozenset(ROTATED), "near", "label"),
    }
    exact = report.findings.duplicates[report.findings.duplicates["kind"] == "exact"]
    assert sorted(exact["path_a"].str.split("/").str[1]) == ["cross", "plane"]  # both images of the pair


def test_blurry_image_is_the_only_sharpness_outlier(report):
    outliers = report.findings.outliers
    blurry = outliers[(outliers["statistic"] == "sharpness") & (outliers["direction"] == "low")]
    assert list(blurry["path"]) == [BLURRY]
    assert blurry["group"].iloc[0] == "yangtze/plane/Zrn"  # judged against its own class


def test_missing_class_and_file_problems_are_reported(report):
    composition = report.findings.composition.set_index("domain")
    assert composition.loc["pengqu", "missing"] == "Ap"
    assert composition.loc["yangtze", "missing"] == ""
    kinds = {(p.kind, p.path) for p in report.findings.problems if p.severity == "error"}
    assert kinds == {
        ("unreadable", "pengqu/cross/Zrn/Zrn_003.png"),
        ("unpaired", "pengqu/plane/Grt/Grt_lonely.png"),
    }


def test_what_to_fix_is_ordered_by_severity(report):
    order = ["critical", "high", "medium", "low", "info"]
    ranks = [order.index(fix.severity) for fix in report.fixes]
    assert ranks == sorted(ranks)
    titles = [fix.title for fix in report.fixes]
    assert "share an image across labels" in titles[0]
    assert any("unreadable" in t for t in titles) and any(
        "without their PPL/XPL partner" in t for t in titles
    )
    assert any("exact-duplicate" in t for t in titles) and any("classes missing" in t for t in titles)
    assert any("blurry" in t for t in titles)
    blurry_fix = next(fix for fix in report.fixes if "blurry" in fix.title)
    assert blurry_fix.items[0].startswith(BLURRY)


def test_report_files_link_existing_figures_and_json_holds_the_findings(report):
    markdown = report.markdown.read_text()
    links = re.findall(r"\]\(([^)]+\.png)\)", markdown)
    assert {"figures/counts.png", "figures/statistics.png", "figures/duplicates.png"} <= set(links)
    assert all((report.directory / link).is_file() for link in links)
    assert markdown.rstrip().splitlines()[-1].strip()  # closes with the what-to-fix list
    assert markdown.index("## What to fix") > markdown.index("## 5.")
    assert BLURRY in markdown and "Grt_dup" in markdown
    document = json.loads(report.json.read_text())
    assert document["counts"]["pengqu"]["Ap"] == 0
    assert len(document["duplicates"]) == len(report.findings.duplicates)
    assert document["what_to_fix"][0]["severity"] == "critical"
    statistics = pd.read_csv(report.directory / "image_statistics.csv")
    assert len(statistics) == len(report.findings.images) == 2 * (8 * 5 + 3 - 1)  # the truncated pair is out


def test_split_crossing_duplicate_is_leakage(planted_tree):
    source = open_data(planted_tree, progress=False)
    manifest = source.dataset.manifest
    split = pd.DataFrame({"sample_id": manifest["sample_id"], "split": "train"})
    split.loc[split["sample_id"] == COPY[1], "split"] = "test"
    findings = collect_findings(source, SETTINGS, split=split.iloc[1:], split_path="split.csv")
    crossing = {frozenset((r.sample_a, r.sample_b)): r.crosses for r in findings.duplicates.itertuples()}
    assert crossing[frozenset(COPY)] == "split"
    assert crossing[frozenset(ROTATED)] == "label"
    assert findings.split.not_in_split == 1 and findings.split.not_in_data == 0


def test_cli_prints_summary_ending_with_what_to_fix(planted_tree, tmp_path, capsys):
    code = main([str(planted_tree), "--out", str(tmp_path / "r"), "--size", "48", "--quiet", "--jobs", "1"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 1  # leakage and unreadable files
    assert lines[0].startswith("report: ")
    assert any(line.startswith("what to fix") for line in lines)
    assert lines[-1].lstrip().startswith("5. [")
    assert (
        "[critical]" in lines[lines.index(next(line for line in lines if line.startswith("what to fix"))) + 1]
    )


def test_manifest_csv_input(planted_tree, tmp_path):
    result = build_manifest(planted_tree, progress=False)
    csv = write_manifest(result.manifest, tmp_path / "lists" / "manifest.csv", planted_tree)
    settings = ReportSettings(size=48, workers=1, progress=False)
    findings = collect_findings(open_data(csv), settings)
    assert len(findings.images) == 2 * len(result.manifest) and findings.problems == []
    assert open_data(csv).name == "lists"


@pytest.mark.parametrize(
    "arguments",
    [
        ["/nonexistent/tree"],
        ["{tree}", "--out", "{tree}/report"],
        ["{tree}", "--layout", "{{pol}}/{{name}}x"],
    ],
)
def test_usage_errors_exit_2(planted_tree, arguments, capsys):
    argv = [a.format(tree=planted_tree) for a in arguments] + ["--quiet"]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith("error:")
    assert not (planted_tree / "report").exists()


def test_image_statistics_on_known_images():
    black = np.zeros((16, 16, 3), dtype=np.uint8)
    stats = image_statistics(black)
    assert stats["brightness"] == 0 and stats["contrast"] == 0 and stats["sharpness"] == 0
    assert stats["clipped_dark"] == 1 and stats["clipped_bright"] == 0
    red = np.zeros_like(black)
    red[..., 0] = 255
    stats = image_statistics(red)
    assert stats["mean_red"] == 255 and stats["mean_green"] == 0
    assert stats["clipped_dark"] == 1 and stats["clipped_bright"] == 1  # a channel at 0 and one at 255
    sharp = texture(1)
    assert image_statistics(sharp)["sharpness"] > 5 * image_statistics(texture(1, blur=2.0))["sharpness"]
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        image_statistics(black[..., 0])


def test_pair_neighbours_match_brute_force():
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 256, size=(30, 2, 3, HASH_BYTES), dtype=np.uint8)  # samples, pols, variants
    hashes[7, :, 1] = hashes[3, :, 0]
    hashes[7, 0, 1, 0] ^= 0b1  # PPL 1 bit and XPL 3 bits from sample 3 under variant 1
    hashes[7, 1, 1, 5] ^= 0b111
    hashes[9, 0, 2] = hashes[4, 0, 0]  # sample 9's PPL alone is a copy of 4's: not a near pair
    first, second, distance, parts, nearest = pair_neighbours(hashes, max_distance=100)
    bits = np.unpackbits(hashes, axis=3)
    expected = {}
    for i in range(30):
        for j in range(i + 1, 30):
            there = (bits[i, :, :1] != bits[j]).sum(axis=2).max(axis=0).min()  # worst pol, best variant
            back = (bits[j, :, :1] != bits[i]).sum(axis=2).max(axis=0).min()
            d = int(min(there, back))
            if d <= 100:
                expected[(i, j)] = d
    found = dict(zip(zip(first.tolist(), second.tolist(), strict=True), distance.tolist(), strict=True))
    assert found == expected
    assert expected[(3, 7)] == 3 and nearest[3] == nearest[7] == 3  # symmetric
    assert parts[list(found).index((3, 7))].tolist() == [1, 3]
    assert expected.get((4, 9), 999) > 50


def test_rotated_copy_matches_a_hash_variant_exactly():
    image = texture(5)
    assert (perceptual_hashes(np.rot90(image).copy())[0] == perceptual_hashes(image)).all(axis=1).any()
    assert perceptual_hashes(image, dihedral=False).shape == (1, HASH_BYTES)


def test_iqr_rule_and_small_groups():
    assert iqr_fences(np.arange(1, 9), k=1.5) == (-2.5, 11.5)
    assert iqr_fences(np.ones(10), k=1.5, min_iqr=2.0) == (-2.0, 4.0)
    images = pd.DataFrame(
        {
            "domain": "d",
            "pol": "plane",
            "label": "a",
            "sample_id": [f"s{i}" for i in range(5)],
            "path": [f"p{i}" for i in range(5)],
            "brightness": [1.0, 2, 3, 4, 100],
        }
    )
    from data_tools.report.outliers import OutlierRule

    rules = (OutlierRule("brightness"),)
    table, unjudged = find_outliers(images, min_group=8, rules=rules)
    assert table.empty and unjudged == ["d/plane (5 images)"]
    table, _ = find_outliers(images, min_group=5, rules=rules)
    assert list(table["path"]) == ["p4"] and table["direction"].iloc[0] == "high"
