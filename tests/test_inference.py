"""predict.py on tiny trained runs (deep and classical): outputs, faithfulness to training, TTA, bad input."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io
import torch
from PIL import Image
from sklearn.preprocessing import FunctionTransformer

from baselines.experiment import run_classical_experiment
from data_tools.inputs import INPUT_TEMPLATES, detect_input_layout, read_prediction_input
from data_tools.layout import LayoutError
from data_tools.manifest import build_manifest
from data_tools.manifest_io import write_manifest
from san.cli.predict import predict_main
from san.evaluation import calibration
from san.evaluation.calibration import CALIBRATION_FILE, log_scores, scaled_probabilities
from san.inference.prediction import PredictionSettings, StrictInputError, run_prediction
from san.inference.predictors import Predictor, RunLoadError, load_predictor
from san.inference.tta import dihedral_view
from san.training.experiment import RunRequest, run_experiment

TINY = ["size=16", "epochs=1", "batch_size=6", "eval_batch_size=64", "fused_dim=16"]
COUNTS = {"yangtze": {"Ap": 5, "Zrn": 5}, "yarlung": {"Ap": 6, "Zrn": 6}, "pengqu": {"Ap": 6, "Zrn": 6}}
QUIET = PredictionSettings(progress=False)


@pytest.fixture(scope="module")
def tree(tmp_path_factory, write_pair_tree) -> Path:
    root = tmp_path_factory.mktemp("tree")
    write_pair_tree(root, "{domain}/{pol}/{label}/{name}", COUNTS)
    return root


def _request(tree: Path, out: Path, method: str, overrides: list[str]) -> RunRequest:
    return RunRequest(
        method=method,
        data=str(tree),
        domains=["yarlung", "pengqu"],
        overrides=overrides,
        out=str(out),
        wandb_mode="disabled",
        device="cpu",
        progress=False,
    )


@pytest.fixture(scope="module")
def small_val_calibrates() -> Iterator[None]:
    """Fit a temperature on the tiny tree's few val pairs (real runs need MIN_FIT_PAIRS)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(calibration, "MIN_FIT_PAIRS", 2)
        yield


@pytest.fixture(scope="module")
def deep_run(tree, tmp_path_factory, small_val_calibrates) -> Path:
    record = run_experiment(_request(tree, tmp_path_factory.mktemp("runs"), "san", TINY))
    return Path(record["run_dir"])


@pytest.fixture(scope="module")
def classical_run(tree, tmp_path_factory, small_val_calibrates) -> Path:
    request = _request(tree, tmp_path_factory.mktemp("classical"), "knn", ["feature_size=32", "cv_folds=2"])
    return Path(run_classical_experiment(request)["run_dir"])


@pytest.fixture
def unlabelled_tree(tmp_path, write_image) -> Path:
    """Two samples of three pairs each, with the polarization aliases of the published data."""
    root = tmp_path / "unlabelled"
    for s, sample in enumerate(("S1", "S2")):
        for i in range(3):
            write_image(root / sample / "single" / f"g{i}.png", seed=100 + 10 * s + 2 * i)
            write_image(root / sample / "cross_1" / f"g{i}.png", seed=101 + 10 * s + 2 * i)
    return root


def _split_manifest(run_dir: Path, tree: Path, split: str, out: Path) -> Path:
    """A manifest CSV of the run's ``split`` rows (paths relative to the CSV)."""
    manifest = build_manifest(tree, progress=False).manifest
    chosen = pd.read_csv(run_dir / "split.csv").query("split == @split")["sample_id"]
    return write_manifest(manifest[manifest["sample_id"].isin(chosen)], out / f"{split}.csv", tree)


def test_the_run_records_a_temperature_fitted_on_val_that_does_not_raise_its_nll(deep_run):
    record = json.loads((deep_run / "results.json").read_text())
    calibration = record["calibration"]
    assert calibration["status"] == "fitted" and calibration["fitted_on"] == "val"
    assert set(calibration["splits"]) == {"val", "test", "target"}
    val = calibration["splits"]["val"]
    assert val["nll_after"] <= val["nll_before"] + 1e-9
    assert 0.0 <= val["ece_after"] <= 1.0
    saved = json.loads((deep_run / CALIBRATION_FILE).read_text())
    assert saved["temperature"] == pytest.approx(calibration["temperature"])
    assert (deep_run / "reliability.png").stat().st_size > 0


@pytest.mark.parametrize("kind", ["deep", "classical"])
def test_predicting_the_test_split_reproduces_the_runs_own_probabilities(
    kind, deep_run, classical_run, tree, tmp_path
):
    run_dir = deep_run if kind == "deep" else classical_run
    summary = run_prediction(
        run_dir, _split_manifest(run_dir, tree, "test", tmp_path), tmp_path / "out", settings=QUIET
    )
    predicted = pd.read_csv(tmp_path / "out" / "predictions.csv")
    expected = (
        pd.read_csv(run_dir / "predictions_test.csv").set_index("sample_id").loc[predicted["sample_id"]]
    )
    classes = summary["model"]["classes"]
    temperature = json.loads((run_dir / CALIBRATION_FILE).read_text())["temperature"]
    calibrated = scaled_probabilities(log_scores(expected[classes].to_numpy()), temperature)
    np.testing.assert_allclose(predicted[[f"prob_{c}" for c in classes]].to_numpy(), calibrated, atol=2e-3)
    record = json.loads((run_dir / "results.json").read_text())
    assert summary["metrics"]["accuracy"] == pytest.approx(record["metrics"]["test"]["accuracy"])
    assert summary["model"]["kind"] == kind


def test_unlabelled_tree_gives_top3_probabilities_uncertainty_and_an_assemblage(
    deep_run, unlabelled_tree, tmp_path
):
    summary = run_prediction(
        deep_run, unlabelled_tree, tmp_path, settings=PredictionSettings(threshold=0.9, progress=False)
    )
    table = pd.read_csv(tmp_path / "predictions.csv")
    classes = summary["model"]["classes"]
    assert list(table.columns[:5]) == ["sample_id", "sample", "plane_path", "cross_path", "label"]
    assert {"class_1", "probability_1", "class_2", "probability_2", "uncertain"} <= set(table.columns)
    assert "class_3" not in table.columns  # the model knows two classes
    probabilities = table[[f"prob_{c}" for c in classes]].to_numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (table["probability_1"] >= table["probability_2"]).all()
    assert (table["uncertain"] == (table["probability_1"] < 0.9)).all()
    assert sorted(table["sample"].unique()) == ["S1", "S2"] and set(table["label"]) == {"unlabelled"}
    assert summary["layout"] == "{domain}/{pol}/{name}" and "metrics" not in summary
    assemblage = pd.read_csv(tmp_path / "assemblage.csv")
    assert assemblage.groupby("sample")["percent"].sum().to_numpy() == pytest.approx([100.0, 100.0])
    assert assemblage.groupby("sample")["count"].sum().to_dict() == {"S1": 3, "S2": 3}
    assert "## Sample S1" in (tmp_path / "assemblage.md").read_text()
    assert (tmp_path / "assemblage.png").stat().st_size > 0


def test_an_unreadable_and_an_unpaired_file_are_named_and_the_rest_is_predicted(
    deep_run, unlabelled_tree, tmp_path, write_image, capsys
):
    (unlabelled_tree / "S1" / "cross_1" / "g1.png").write_bytes(b"not a png")
    write_image(unlabelled_tree / "S2" / "single" / "lonely.png", seed=7)
    summary = run_prediction(deep_run, unlabelled_tree, tmp_path / "out", settings=QUIET)
    assert summary["n_predicted"] == 5 and summary["n_problems"] == 2
    problems = pd.read_csv(tmp_path / "out" / "problems.csv").set_index("path")
    assert problems.loc["S1/cross_1/g1.png", "kind"] == "unreadable"
    assert problems.loc["S2/single/lonely.png", "kind"] == "unpaired"
    assert "S1/unlabelled/g1" not in set(pd.read_csv(tmp_path / "out" / "predictions.csv")["sample_id"])
    with pytest.raises(StrictInputError, match="g1.png"):
        run_prediction(
            deep_run,
            unlabelled_tree,
            tmp_path / "strict",
            settings=PredictionSettings(strict=True, progress=False),
        )
    assert predict_main([str(deep_run), str(unlabelled_tree), "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    assert "predicted 5 pair(s)" in capsys.readouterr().out
    assert (
        predict_main(
            [str(deep_run), str(unlabelled_tree), "--out", str(tmp_path / "cli"), "--strict", "--quiet"]
        )
        == 1
    )
    assert "lonely.png" in capsys.readouterr().err


def test_a_file_of_a_manifest_that_vanished_is_named_at_prediction(deep_run, tmp_path, write_pair_tree):
    write_pair_tree(tmp_path, "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 2, "Zrn": 2}}, seed=5)
    manifest = build_manifest(tmp_path, progress=False).manifest
    manifest_csv = write_manifest(manifest, tmp_path / "manifest.csv", tmp_path)
    (tmp_path / manifest["cross_path"].iloc[0]).unlink()
    summary = run_prediction(deep_run, manifest_csv, tmp_path / "out", settings=QUIET)
    problems = pd.read_csv(tmp_path / "out" / "problems.csv")
    assert problems["path"].tolist() == [manifest["cross_path"].iloc[0]]
    assert problems["kind"].tolist() == ["unreadable"]
    assert summary["n_predicted"] == 3 and summary["metrics"]["n"] == 3


def test_labels_the_model_does_not_know_are_reported_and_left_out_of_the_metrics(
    deep_run, tmp_path, write_pair_tree
):
    root = tmp_path / "labelled"
    write_pair_tree(root, "{pol}/{label}/{name}", {"x": {"Ap": 2, "Grt": 3}}, seed=3)
    summary = run_prediction(deep_run, root, tmp_path / "out", settings=QUIET)
    problems = pd.read_csv(tmp_path / "out" / "problems.csv")
    assert problems["kind"].tolist() == ["unknown_class"] and "'Grt'" in problems["message"].iloc[0]
    assert summary["n_predicted"] == 5 and summary["metrics"]["n"] == 2


class _PixelMatch(Predictor):
    """Scores a pair by the share of pixels where its two images agree: 1 only if they stay aligned."""

    kind = "stub"

    def scores(self, plane: np.ndarray, cross: np.ndarray) -> np.ndarray:
        agreement = (plane == cross).all(axis=-1).mean(axis=(1, 2))
        return np.stack([10 * agreement, np.zeros(len(plane))], axis=1)


def test_tta_transforms_both_images_of_a_pair_alike(tmp_path):
    predictor = _PixelMatch(tmp_path, "stub", ["aligned", "not"], 8, "center")
    plane = np.random.default_rng(0).integers(0, 256, size=(3, 8, 8, 3), dtype=np.uint8)
    aligned = predictor.predict_pairs(plane, plane.copy(), tta=True)
    np.testing.assert_allclose(aligned, predictor.predict_pairs(plane, plane.copy()))
    assert aligned[:, 0] == pytest.approx(1 / (1 + np.exp(-10)))


def test_tta_averages_eight_views_and_is_invariant_to_turning_the_pair(deep_run, tree):
    predictor = load_predictor(deep_run, "cpu")
    predictor.calibration = None  # raw logits: a fitted temperature may flatten the differences
    dataset = read_prediction_input(tree, progress=False).dataset
    rows = dataset.manifest.iloc[:4]
    plane = np.stack([predictor.prepare(dataset.path(p)) for p in rows["plane_path"]])
    cross = np.stack([predictor.prepare(dataset.path(p)) for p in rows["cross_path"]])
    averaged = predictor.predict_pairs(plane, cross, tta=True)
    np.testing.assert_allclose(averaged.sum(axis=1), 1.0, atol=1e-6)
    assert not np.allclose(predictor.predict_pairs(plane, cross), averaged, atol=1e-6)
    # The eight views form a group: turning or mirroring the pair only permutes them.
    for view in (1, 4, 6):
        moved = predictor.predict_pairs(dihedral_view(plane, view), dihedral_view(cross, view), tta=True)
        np.testing.assert_allclose(moved, averaged, atol=1e-5)


def test_a_run_directory_without_a_model_is_named(tmp_path, unlabelled_tree, capsys):
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(RunLoadError, match="unfinished.*no model"):
        load_predictor(tmp_path / "unfinished")
    assert predict_main([str(tmp_path / "unfinished"), str(unlabelled_tree), "--quiet"]) == 1
    assert "model.pt" in capsys.readouterr().err


def test_a_model_pt_that_would_run_code_is_refused_in_one_line(
    tmp_path, unlabelled_tree, capsys, code_running_payload
):
    payload, marker = code_running_payload
    (tmp_path / "crafted").mkdir()
    torch.save({"method": "san", "state_dict": payload}, tmp_path / "crafted" / "model.pt")
    assert predict_main([str(tmp_path / "crafted"), str(unlabelled_tree), "--quiet"]) == 1
    error = capsys.readouterr().err
    assert not marker.exists()
    assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert str(tmp_path / "crafted" / "model.pt") in error and "refused" in error


def test_a_classical_run_is_saved_in_a_format_that_loads_without_unpickling(classical_run):
    assert (classical_run / "model.skops").is_file() and not (classical_run / "model.joblib").exists()


def test_an_old_pickled_classical_run_is_refused_unless_trusted(
    classical_run, tmp_path, unlabelled_tree, capsys, code_running_payload
):
    old = shutil.copytree(classical_run, tmp_path / "old-run")
    model = skops.io.load(old / "model.skops", trusted=skops.io.get_untrusted_types(file=old / "model.skops"))
    (old / "model.skops").unlink()
    payload, marker = code_running_payload
    joblib.dump({**model, "estimator": payload}, old / "model.joblib")
    assert predict_main([str(old), str(unlabelled_tree), "--out", str(tmp_path / "p"), "--quiet"]) == 1
    error = capsys.readouterr().err
    assert not marker.exists()
    assert str(old / "model.joblib") in error and "--trust-run" in error and len(error.splitlines()) == 1
    joblib.dump(model, old / "model.joblib")  # a genuine old run, loaded once the user vouches for it
    argv = [str(old), str(unlabelled_tree), "--out", str(tmp_path / "p"), "--quiet", "--trust-run"]
    assert predict_main(argv) == 0


def test_a_skops_model_naming_a_type_we_never_save_is_refused(
    classical_run, tmp_path, unlabelled_tree, capsys
):
    crafted = shutil.copytree(classical_run, tmp_path / "crafted")
    path = crafted / "model.skops"
    model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    skops.io.dump({**model, "estimator": FunctionTransformer(func=os.system)}, path)
    assert predict_main([str(crafted), str(unlabelled_tree), "--out", str(tmp_path / "p"), "--quiet"]) == 1
    error = capsys.readouterr().err
    assert "refused" in error and "system" in error and str(path) in error


@pytest.mark.parametrize("template", INPUT_TEMPLATES)
def test_each_input_layout_is_detected(template):
    paths = [
        template.format(domain="S1", split="test", pol=pol, label="Zrn", name="a.png")
        for pol in ("ppl", "xpl")
    ]
    assert detect_input_layout(paths) == template


def test_a_tree_no_layout_explains_is_a_layout_error(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "loose.png")
    with pytest.raises(LayoutError, match="no layout fits"):
        read_prediction_input(tmp_path, progress=False)
