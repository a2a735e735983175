"""The LITHOS reader on a small LITHOS-shaped tree built here: fold CSVs, ppl-0/xpl-0 twins, labels in
each patch folder's center_component.csv (raw ids, some merged), the two folds as the split."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd
import pytest

from data_tools.layout import LayoutError
from data_tools.lithos import CLASSES, build_lithos_manifest, class_name
from data_tools.manifest import build_manifest
from data_tools.manifest_cli import main as build_manifest_main
from data_tools.manifest_io import ManifestError, load_dataset, read_manifest
from san.training.experiment import RunRequest, run_experiment

IMAGES = "LITHOS_DATASET_P/LITHOS_DATASET"  # LITHOS's default --root_dataset below the CSVs
# Raw Multiclass_label ids per fold: 4 and 26 are merged into 24 (class L24).
RAW_IDS = [3, 3, 3, 3, 7, 7, 7, 7, 24, 24, 4, 26]


@pytest.fixture(scope="module")
def lithos_tree(tmp_path_factory: pytest.TempPathFactory, write_image) -> Path:
    root = tmp_path_factory.mktemp("lithos")
    seed = 0
    for fold in (1, 2):
        listed = []
        for patch, raw in enumerate(RAW_IDS):
            folder = Path(f"section{fold}") / f"patch_{patch:02d}"
            for pol in ("ppl", "xpl"):
                write_image(root / IMAGES / folder / f"{pol}-0.png", seed=seed)
                seed += 1
            pd.DataFrame({"Binary_label": [int(raw == 7)], "Multiclass_label": [raw]}).to_csv(
                root / IMAGES / folder / "center_component.csv", index=False
            )
            listed.append((folder / "ppl-0.png").as_posix())
        pd.DataFrame({"Sec_patch": listed, "Section": f"section{fold}"}).to_csv(
            root / f"Fold{fold}_complete_info_allclasses.csv", index=False
        )
    return root


def test_classes_are_25_with_the_merged_ids_in_24() -> None:
    assert len(CLASSES) == 25 and "L04" not in CLASSES and "L28" in CLASSES
    assert [class_name(i) for i in (4, 21, 25, 26, 24, 0)] == ["L24"] * 5 + ["L00"]


def test_manifest_rows_labels_pairing_and_folds(lithos_tree: Path, caplog, tmp_path) -> None:
    with caplog.at_level(logging.INFO, logger="data_tools.lithos"):
        result = build_manifest(lithos_tree, progress=False)  # detected from the fold CSVs
    assert "ids 4, 21, 25, 26 merged into 24, giving 25 classes" in caplog.text
    assert result.layout == "lithos" and not result.problems
    manifest = result.manifest
    assert len(manifest) == 2 * len(RAW_IDS) and set(manifest["domain"]) == {"lithos"}
    assert manifest["label"].value_counts().to_dict() == {"L03": 8, "L07": 8, "L24": 8}
    merged = manifest[manifest["raw_label"].isin([4, 26])]
    assert len(merged) == 4 and set(merged["label"]) == {"L24"}
    assert (manifest["binary_label"] == (manifest["raw_label"] == 7)).all()
    assert all(p.startswith(f"{IMAGES}/section") and p.endswith("/ppl-0.png") for p in manifest["plane_path"])
    assert (manifest["cross_path"] == manifest["plane_path"].str.replace("ppl-0", "xpl-0")).all()
    assert (manifest["split"] == manifest["fold"].map({1: "train", 2: "test"})).all()
    flipped = build_lithos_manifest(lithos_tree, "lithos:2", progress=False).manifest
    assert (flipped["split"] == flipped["fold"].map({1: "test", 2: "train"})).all()

    out = tmp_path / "lithos.csv"
    assert build_manifest_main([str(lithos_tree), "--layout", "lithos", "--out", str(out), "--quiet"]) == 0
    written = read_manifest(out)
    assert len(written.manifest) == 24 and written.path(written.manifest["cross_path"][0]).is_file()


def test_missing_xpl_twin_and_labels_are_named_problems(lithos_tree: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(lithos_tree, broken)
    (broken / IMAGES / "section2/patch_05/xpl-0.png").unlink()
    (broken / IMAGES / "section1/patch_00/center_component.csv").unlink()
    result = build_manifest(broken, progress=False)
    problems = {p.kind: p for p in result.errors}
    assert set(problems) == {"unpaired", "missing_label"}
    assert problems["unpaired"].path == f"{IMAGES}/section2/patch_05/ppl-0.png"
    assert f"no XPL twin {IMAGES}/section2/patch_05/xpl-0.png" in problems["unpaired"].message
    assert "center_component.csv" in problems["missing_label"].message
    assert len(result.manifest) == 2 * len(RAW_IDS) - 2
    with pytest.raises(ManifestError, match="section2/patch_05/ppl-0.png: no XPL twin"):
        load_dataset(broken, progress=False)
    (broken / "Fold2_complete_info_allclasses.csv").unlink()
    with pytest.raises(LayoutError, match="Fold2_complete_info_allclasses.csv is missing"):
        build_manifest(broken, progress=False)
    with pytest.raises(LayoutError, match="training fold must be 1 or 2"):
        build_manifest(lithos_tree, layout="lithos:3", progress=False)


def test_one_epoch_erm_on_the_lithos_folds(lithos_tree: Path, tmp_path: Path) -> None:
    request = RunRequest(
        method="erm",
        data=str(lithos_tree),
        overrides=["size=16", "epochs=1", "batch_size=6", "fused_dim=16", "data.use_given_split=true"],
        out=str(tmp_path),
        wandb_mode="disabled",
        device="cpu",
        progress=False,
    )
    record = run_experiment(request)
    assert record["status"] == "complete" and record["protocol"] == "mixed"
    assert record["classes"] == ["L03", "L07", "L24"]
    assert record["metrics"]["test"]["n"] == len(RAW_IDS)  # fold 2 is the test split
    counts = record["data"]["split_counts"]["lithos"]
    assert counts["train"] + counts["val"] == len(RAW_IDS) and counts["val"] > 0
