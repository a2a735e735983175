"""Preprocessing a raw tree into a training-ready copy: pairs and layout kept, failures named."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from data_tools import preprocess
from data_tools.manifest import build_manifest
from data_tools.preprocess import RECORD_NAME, PreprocessError, PreprocessSettings, main, preprocess_tree

DEFAULT = "{domain}/{pol}/{label}/{name}"


def tree_digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def output_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != RECORD_NAME}


@pytest.fixture
def raw_tree(tmp_path, write_pair_tree, write_image) -> Path:
    """BMP and TIFF pairs of mixed sizes, a pair with a truncated XPL file, a PPL image without partner."""
    src = tmp_path / "raw"
    write_pair_tree(src, DEFAULT, {"yangtze": {"Zrn": 3, "Grt": 2}}, suffix=".bmp")
    write_pair_tree(src, DEFAULT, {"pengqu": {"Zrn": 2}}, suffix=".tif", seed=1)
    for pol, seed in (("plane", 70), ("cross", 71)):
        write_image(src / f"yangtze/{pol}/Zrn/wide.bmp", seed=seed, size=(60, 30))
    corrupt = src / "yangtze/cross/Grt/Grt_001.bmp"
    corrupt.write_bytes(corrupt.read_bytes()[:100])
    write_image(src / "pengqu/plane/Zrn/lonely.tif", seed=80)
    return src


def test_pairs_and_layout_are_kept_and_bad_files_reported(raw_tree, tmp_path):
    before = tree_digest(raw_tree)
    dst = tmp_path / "ready"
    result = preprocess_tree(raw_tree, dst, settings=PreprocessSettings(size=16), workers=2, progress=False)

    assert tree_digest(raw_tree) == before  # SRC untouched
    skipped = {(p.kind, p.path) for p in result.skipped_files}
    assert skipped == {
        ("unreadable", "yangtze/cross/Grt/Grt_001.bmp"),
        ("unpaired", "pengqu/plane/Zrn/lonely.tif"),
    }
    assert not result.complete and result.failures == []

    good = build_manifest(raw_tree, progress=False).manifest
    expected = {
        Path(p).with_suffix(".png").as_posix() for p in list(good["plane_path"]) + list(good["cross_path"])
    }
    assert output_files(dst) == expected
    assert len(expected) == 2 * 7  # 3 + 1 (wide) + 1 (Grt_000) yangtze, 2 pengqu
    for relative in expected:
        with Image.open(dst / relative) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (16, 16))

    again = build_manifest(dst, progress=False)
    assert again.problems == []
    assert sorted(again.manifest["sample_id"]) == sorted(good["sample_id"])

    record = json.loads((dst / RECORD_NAME).read_text())
    assert record["counts"]["pairs_written"] == 7
    assert record["counts"]["files_skipped_by_the_manifest_check"] == 2
    assert record["settings"] == {"size": 16, "crop": "center", "format": "png", "quality": 95}
    assert {p["path"] for p in record["problems"]} >= {"yangtze/cross/Grt/Grt_001.bmp"}
    wide = next(p for p in record["pairs"] if p["sample_id"] == "yangtze/Zrn/wide")
    assert wide["plane_source"] == "yangtze/plane/Zrn/wide.bmp"
    assert wide["plane_output"] == "yangtze/plane/Zrn/wide.png"


def test_centre_crop_keeps_the_middle_and_none_keeps_everything(tmp_path):
    bands = np.zeros((20, 60, 3), dtype=np.uint8)
    bands[:, :20, 0] = 255  # red | green | blue
    bands[:, 20:40, 1] = 255
    bands[:, 40:, 2] = 255
    src = tmp_path / "raw"
    for pol in ("plane", "cross"):
        (src / f"yangtze/{pol}/Zrn").mkdir(parents=True)
        Image.fromarray(bands).save(src / f"yangtze/{pol}/Zrn/a.png")

    preprocess_tree(src, tmp_path / "centre", settings=PreprocessSettings(size=10), progress=False)
    centre = np.asarray(Image.open(tmp_path / "centre/yangtze/cross/Zrn/a.png"))
    assert centre[..., 1].min() > 200 and centre[..., [0, 2]].max() < 50  # green only

    preprocess_tree(
        src, tmp_path / "whole", settings=PreprocessSettings(size=10, crop="none"), progress=False
    )
    whole = np.asarray(Image.open(tmp_path / "whole/yangtze/plane/Zrn/a.png"))
    assert whole[:, 0, 0].min() > 200 and whole[:, -1, 2].min() > 200  # red left, blue right


def test_a_pair_failing_to_write_leaves_neither_image_and_the_rest_go_on(raw_tree, tmp_path, monkeypatch):
    encode = preprocess._encode

    def failing_encode(image, path, settings):
        if ".Zrn_001." in path.name and "yangtze/cross/" in path.as_posix():  # the XPL half, written second
            raise OSError(f"disk full while writing {path.name}")
        encode(image, path, settings)

    monkeypatch.setattr(preprocess, "_encode", failing_encode)
    dst = tmp_path / "ready"
    result = preprocess_tree(raw_tree, dst, settings=PreprocessSettings(size=8), workers=2, progress=False)

    assert [f["sample_id"] for f in result.failures] == ["yangtze/Zrn/Zrn_001"]
    assert "disk full" in result.failures[0]["reason"]
    written = output_files(dst)
    assert not any("Zrn_001" in p and p.startswith("yangtze/") for p in written)  # neither half
    assert not [p for p in written if Path(p).name.startswith(".")]  # no temporary files left
    assert len(result.written) == 6 and len(written) == 12
    assert main([str(raw_tree), str(tmp_path / "cli"), "--size", "8", "--quiet"]) == 1  # files skipped


def test_cli_reports_the_corrupt_file_by_name_and_writes_jpeg(raw_tree, tmp_path, capsys):
    dst = tmp_path / "ready"
    code = main(
        [
            str(raw_tree),
            str(dst),
            "--size",
            "12",
            "--format",
            "jpg",
            "--quality",
            "80",
            "--jobs",
            "2",
            "--quiet",
        ]
    )
    output = capsys.readouterr()
    assert code == 1
    assert "yangtze/cross/Grt/Grt_001.bmp" in output.out and "lonely.tif" in output.out
    assert all(p.endswith(".jpg") for p in output_files(dst)) and len(output_files(dst)) == 14
    with Image.open(dst / "pengqu/plane/Zrn/Zrn_000.jpg") as image:
        assert image.format == "JPEG" and image.size == (12, 12)


def test_clean_tree_exits_zero(tmp_path, write_pair_tree):
    write_pair_tree(tmp_path / "raw", DEFAULT, {"yangtze": {"Ap": 2}})
    assert main([str(tmp_path / "raw"), str(tmp_path / "ready"), "--size", "8", "--quiet"]) == 0
    # a second run into its own output replaces the files
    assert main([str(tmp_path / "raw"), str(tmp_path / "ready"), "--size", "8", "--quiet"]) == 0


@pytest.mark.parametrize("where", ["same", "inside", "contains"])
def test_dst_overlapping_src_is_refused(tmp_path, write_pair_tree, where, capsys):
    src = tmp_path / "data" / "raw"
    write_pair_tree(src, DEFAULT, {"yangtze": {"Ap": 1}})
    before = tree_digest(tmp_path)
    dst = {"same": src, "inside": src / "ready", "contains": tmp_path / "data"}[where]
    assert main([str(src), str(dst), "--quiet"]) == 2
    assert "error:" in capsys.readouterr().err
    assert tree_digest(tmp_path) == before


def test_foreign_non_empty_dst_and_bad_settings_are_refused(tmp_path, write_pair_tree):
    write_pair_tree(tmp_path / "raw", DEFAULT, {"yangtze": {"Ap": 1}})
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(PreprocessError, match="not made by preprocess.py"):
        preprocess_tree(tmp_path / "raw", tmp_path / "other", progress=False)
    with pytest.raises(PreprocessError, match="quality"):
        preprocess_tree(
            tmp_path / "raw", tmp_path / "new", settings=PreprocessSettings(quality=0), progress=False
        )
    assert not (tmp_path / "new").exists()


def test_help_explains_every_flag():
    text = preprocess.make_parser().format_help()
    for flag in ("--size", "--crop", "--format", "--quality", "--jobs", "--layout", "--domain", "--quiet"):
        assert flag in text
    assert "Exit codes" in text


@pytest.mark.parametrize("size", ["100000", "0", "-3", "big"])
def test_an_unusable_size_is_a_usage_error_before_any_work(tmp_path, write_pair_tree, size, capsys):
    write_pair_tree(tmp_path / "raw", DEFAULT, {"yangtze": {"Ap": 1}})
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "raw"), str(tmp_path / "ready"), "--size", size, "--quiet"])
    assert exit_info.value.code == 2
    assert "--size" in capsys.readouterr().err and not (tmp_path / "ready").exists()
    with pytest.raises(PreprocessError, match=r"image side must be 1\.\.8192 px, got 100000"):
        preprocess_tree(
            tmp_path / "raw", tmp_path / "new", settings=PreprocessSettings(size=100_000), progress=False
        )


def test_folders_that_would_merge_into_one_class_are_copied_as_they_are(tmp_path, write_pair_tree):
    write_pair_tree(tmp_path / "raw", DEFAULT, {"yarlung": {"Spl": 1, "Spn": 1}})
    assert main([str(tmp_path / "raw"), str(tmp_path / "ready"), "--size", "8", "--quiet"]) == 0
    assert sorted(output_files(tmp_path / "ready")) == [
        f"yarlung/{pol}/{label}/{label}_000.png" for pol in ("cross", "plane") for label in ("Spl", "Spn")
    ]
