"""explain.py: Grad-CAM of each branch, the feature-space figure and the river probe."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch
from sklearn.neighbors import KNeighborsClassifier

from san.algorithms.registry import build_algorithm
from san.cli.predict import explain_main
from san.evaluation.river_probe import river_probe
from san.inference.predictors import load_predictor
from san.studies.explain import choose_examples, explain_run, gradcam_maps
from san.training.experiment import RunRequest, run_experiment

SIZE = 64  # ResNet's last block is then 2 x 2: a heat map with some structure
TINY = ["size=16", "epochs=1", "batch_size=6", "eval_batch_size=64", "fused_dim=16"]
COUNTS = {"yangtze": {"Ap": 5, "Zrn": 5}, "yarlung": {"Ap": 6, "Zrn": 6}, "pengqu": {"Ap": 6, "Zrn": 6}}
STATS = {f"{pol}_{stat}": [0.5, 0.5, 0.5] for pol in ("plane", "cross") for stat in ("mean", "std")}


def save_untrained(run_dir: Path, method: str, hparams: dict, state: dict | None = None) -> Path:
    """A run directory holding an untrained algorithm in the model.pt format of a deep run."""
    algorithm = build_algorithm(method, 2, 1, hparams)
    if state is not None:
        algorithm.load_state_dict(state)
    run_dir.mkdir(parents=True)
    payload = {
        "method": method,
        "state_dict": algorithm.state_dict(),
        "hparams": algorithm.hparams,
        "num_classes": 2,
        "num_domains": 1,
        "classes": ["Ap", "Zrn"],
        "sources": ["x"],
        "normalisation": STATS,
        "data": {"size": SIZE, "crop": "center"},
    }
    torch.save(payload, run_dir / "model.pt")
    return run_dir


def pairs(n: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return tuple(rng.integers(0, 256, size=(n, SIZE, SIZE, 3), dtype=np.uint8) for _ in range(2))


def test_shared_encoder_maps_equal_those_of_two_encoders_with_the_same_weights(tmp_path):
    torch.manual_seed(0)
    shared = save_untrained(tmp_path / "shared", "erm", {"shared_encoder": True, "fused_dim": 8})
    state = torch.load(shared / "model.pt", weights_only=True)["state_dict"]
    twin_state = {}
    for key, value in state.items():
        if key.startswith("network.encoder.encoder."):
            for branch in ("plane_encoder", "cross_encoder"):
                twin_state[key.replace(".encoder.encoder.", f".encoder.{branch}.")] = value
        else:
            twin_state[key] = value
    twins = save_untrained(tmp_path / "twins", "erm", {"shared_encoder": False, "fused_dim": 8}, twin_state)
    plane, cross = pairs()
    targets = np.array([0, 1, 1])
    shared_maps = gradcam_maps(load_predictor(shared, "cpu"), plane, cross, targets)
    twin_maps = gradcam_maps(load_predictor(twins, "cpu"), plane, cross, targets)
    for shared_map, twin_map in zip(shared_maps, twin_maps, strict=True):
        assert shared_map.shape == (3, SIZE, SIZE)
        assert shared_map.min() >= 0.0 and shared_map.max() <= 1.0 + 1e-6
        np.testing.assert_allclose(shared_map, twin_map, atol=1e-4)
    assert not np.allclose(shared_maps[0], shared_maps[1])  # PPL and XPL get their own maps


@pytest.mark.parametrize(("mode", "has_plane", "has_cross"), [("stack", True, True), ("cross", False, True)])
def test_single_cnn_baselines_map_the_images_they_see(tmp_path, mode, has_plane, has_cross):
    run_dir = save_untrained(tmp_path / mode, "resnet34", {"input": mode})
    plane_maps, cross_maps = gradcam_maps(load_predictor(run_dir, "cpu"), *pairs(2), np.array([0, 1]))
    assert (plane_maps is not None) == has_plane and (cross_maps is not None) == has_cross
    if mode == "stack":
        np.testing.assert_array_equal(plane_maps, cross_maps)


def test_examples_are_chosen_per_class_and_outcome():
    given = np.array([0, 0, 0, 1, 1, 1, 1])
    predicted = np.array([0, 0, 1, 1, 0, 0, 1])
    examples = choose_examples(given, predicted, 2, np.random.default_rng(0))
    assert examples[0][0].tolist() == [0, 1] and examples[0][1].tolist() == [2]
    assert set(examples[1][0]) == {3, 6} and set(examples[1][1]) == {4, 5}


def test_river_probe_separates_label_shift_from_river_information():
    rng = np.random.default_rng(0)
    # Two rivers whose class mixes differ (a: 40 of class x, 10 of y; b: 10 x, 40 y).
    rivers = np.array(["a"] * 50 + ["b"] * 50)
    classes = np.array(["x"] * 40 + ["y"] * 10 + ["x"] * 10 + ["y"] * 40)
    class_only = rng.normal(size=(100, 5)) + np.where(classes == "x", 3.0, -3.0)[:, None]
    probe = river_probe(class_only, rivers, classes, seed=0)
    assert probe["majority"] == pytest.approx(0.5) and probe["folds"] == 5 and probe["n"] == 100
    # Features that only know the class predict the river as well as the class does, not better...
    assert probe["class_only"] == pytest.approx(0.8, abs=0.05)
    assert abs(probe["accuracy"] - probe["class_only"]) < 0.1
    # ...and after removing the class means nothing is left.
    assert probe["residual_n"] == 100 and probe["residual_accuracy"] < 0.65
    with_river = class_only + np.where(rivers == "a", 2.0, -2.0)[:, None]
    assert river_probe(with_river, rivers, classes, seed=0)["residual_accuracy"] > 0.9
    assert river_probe(class_only, ["a"] * 100, classes, seed=0)["status"] == "skipped"


def test_river_probe_leaves_out_classes_of_one_river_from_the_residual_probe():
    rng = np.random.default_rng(1)
    rivers = np.array(["a"] * 30 + ["b"] * 30)
    classes = np.array(["x"] * 20 + ["z"] * 10 + ["x"] * 30)
    probe = river_probe(rng.normal(size=(60, 3)), rivers, classes, seed=0)
    assert probe["residual_n"] == 50 and probe["residual_majority"] == pytest.approx(0.6)


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory, write_pair_tree) -> tuple[Path, Path]:
    tree = tmp_path_factory.mktemp("tree")
    write_pair_tree(tree, "{domain}/{pol}/{label}/{name}", COUNTS)
    out = tmp_path_factory.mktemp("runs")
    runs = []
    for method in ("san", "erm"):
        request = RunRequest(
            method=method,
            data=str(tree),
            domains=["yarlung", "pengqu"],
            overrides=TINY,
            out=str(out),
            wandb_mode="disabled",
            device="cpu",
            progress=False,
        )
        runs.append(Path(run_experiment(request)["run_dir"]))
    return runs[0], runs[1]


def test_explain_writes_gradcam_grids_the_embedding_and_the_probe(trained_runs, tmp_path):
    san_run, erm_run = trained_runs
    summary = explain_run(san_run, split="target", n=4, out=tmp_path, compare=erm_run, device="cpu")
    for name in ("gradcam_Ap.png", "gradcam_Zrn.png", "embedding.png", "explain.json"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert set(summary["gradcam"]) == {"Ap", "Zrn"}
    for run_dir in (san_run, erm_run):
        probe = json.loads((run_dir / "results.json").read_text())["feature_probe"]
        assert probe == summary["probes"][str(run_dir)]
        assert 0.0 <= probe["accuracy"] <= 1.0 and probe["split"] == "test"
        assert set(probe["rivers"]) == {"yarlung", "pengqu"}  # the source rivers' test rows only
        assert probe["majority"] == pytest.approx(max(probe["rivers"].values()) / probe["n"])


def test_explain_cli_names_runs_it_cannot_explain(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert explain_main([str(tmp_path / "empty"), "--quiet"]) == 1
    assert "no model" in capsys.readouterr().err
    classical = tmp_path / "knn"
    classical.mkdir()
    estimator = KNeighborsClassifier(1).fit(np.eye(2), [0, 1])
    joblib.dump(
        {
            "estimator": estimator,
            "classes": ["Ap", "Zrn"],
            "feature_columns": ["f0", "f1"],
            "trained_classes": [0, 1],
            "hparams": {"feature_size": 32},
        },
        classical / "model.joblib",
    )
    assert explain_main([str(classical), "--quiet"]) == 1
    assert "explain needs a deep run" in capsys.readouterr().err
