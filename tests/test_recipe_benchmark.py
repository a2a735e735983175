"""Benchmark side of the recipe (issue #13): ensembles chosen on val, the seeded hyper-parameter search,
table variants, the chosen-epoch histogram, per-method preset layers and classical feature size."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from san import methods
from san.algorithms.hparam_space import choice, log_uniform, sample_hparams
from san.benchmark.ensemble import build_benchmark_ensembles, choose_weights, ensemble_name, simplex_grid
from san.benchmark.hparam_search import TrialJob, expand_trials, select_trials
from san.benchmark.jobs import Job
from san.benchmark.tables import chosen_epoch_histogram, chosen_epochs, load_runs
from san.evaluation.calibration import TemperatureScaling
from san.evaluation.metrics import classification_metrics
from san.runs.config import ConfigError, resolve_config
from san.runs.records import write_record

CLASSES = ["A", "B"]
PAIR_NETWORK_FAMILIES = ("erm", "san", "dg")  # the families that train the Siamese pair network
SPLITS = ("val", "test", "target")


def _write_run(
    run_dir: Path,
    method: str,
    probabilities: dict[str, np.ndarray],
    labels: dict[str, np.ndarray],
    **extra: object,
) -> dict:
    """A complete run with predictions CSVs (probabilities per split) and a temperature of 1."""
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics = {}
    for split, p in probabilities.items():
        y = labels[split]
        ids = [f"{split}-{i}" for i in range(len(y))]
        table = pd.DataFrame(p, columns=CLASSES)
        table.insert(0, "predicted", [CLASSES[i] for i in p.argmax(1)])
        table.insert(0, "label", [CLASSES[i] for i in y])
        table.insert(0, "domain", "yarlung")
        table.insert(0, "sample_id", ids)
        table.to_csv(run_dir / f"predictions_{split}.csv", index=False)
        metrics[split] = classification_metrics(y, p.argmax(1), CLASSES, np.zeros(len(y), int), ["yarlung"])
    TemperatureScaling(1.0).save(run_dir)
    record = {
        "status": "complete",
        "method": method,
        "protocol": "cross",
        "sources": ["yarlung"],
        "targets": ["yangtze"],
        "seed": 0,
        "classes": CLASSES,
        "selection": {"rule": "x"},
        "metrics": metrics,
        "timing": {},
        "config": {},
        "versions": {},
        "data": {},
        **extra,
    }
    write_record(record, run_dir, None)
    return record


def test_simplex_grid_and_weights_chosen_on_val_only(tmp_path: Path) -> None:
    grid = simplex_grid(3, 0.5)
    assert grid.shape == (6, 3) and np.allclose(grid.sum(1), 1)
    labels = {s: np.array([0, 1, 0, 1]) for s in SPLITS}
    good_on_val = np.array([[0.9, 0.1], [0.2, 0.8], [0.8, 0.2], [0.3, 0.7]])
    bad_on_val = 1 - good_on_val
    # Member 'b' is perfect on test and target, wrong on val: val alone must decide, so 'a' wins.
    a = {s: good_on_val for s in SPLITS}
    b = {"val": bad_on_val, "test": good_on_val, "target": good_on_val}
    a["test"] = a["target"] = bad_on_val
    job = Job("erm", "loro", "yangtze", 0, ("yarlung",))
    _write_run(job.run_dir(tmp_path), "erm", a, labels)
    _write_run(Job("svm", "loro", "yangtze", 0, ("yarlung",)).run_dir(tmp_path), "svm", b, labels)
    written, skipped = build_benchmark_ensembles([job], tmp_path, ["erm", "svm"])
    assert not skipped and len(written) == 1
    record = written[0]
    assert record["method"] == ensemble_name(["erm", "svm"]) == "ens-erm-svm"
    assert record["selection"]["weights"] == {"erm": 1.0, "svm": 0.0}
    assert record["metrics"]["val"]["accuracy"] == 1.0 and record["metrics"]["test"]["accuracy"] == 0.0
    assert json.loads((tmp_path / "ens-erm-svm" / "loro-yangtze" / "seed0" / "results.json").read_text())


def test_choose_weights_by_nll_or_by_accuracy() -> None:
    labels = np.array([0, 1, 1, 0])
    bold = np.array([[0.9, 0.1], [0.1, 0.9], [0.1, 0.9], [0.001, 0.999]])  # 3 of 4 right, one sure miss
    timid = np.array([[0.6, 0.4]] * 4)  # 2 of 4 right, never sure
    weights, fit = choose_weights([bold, timid], labels, step=1.0, criterion="nll")
    assert weights.tolist() == [0.0, 1.0] and fit["accuracy"] == 0.5
    weights, fit = choose_weights([bold, timid], labels, step=1.0, criterion="accuracy")
    assert weights.tolist() == [1.0, 0.0] and fit["accuracy"] == 0.75
    with pytest.raises(ValueError, match="unknown ensemble criterion 'brier'"):
        choose_weights([bold, timid], labels, criterion="brier")


def test_the_benchmark_offers_every_ensemble_criterion() -> None:
    from san.benchmark.ensemble import CRITERIA
    from san.cli.benchmark import ENSEMBLE_CRITERIA

    assert ENSEMBLE_CRITERIA == CRITERIA


def test_choose_weights_prefers_lower_nll_then_equal_weights() -> None:
    labels = np.array([0, 1])
    sharp = np.array([[0.99, 0.01], [0.01, 0.99]])
    soft = np.array([[0.6, 0.4], [0.4, 0.6]])
    weights, fit = choose_weights([sharp, soft], labels, step=0.5)
    assert weights.tolist() == [1.0, 0.0] and fit["accuracy"] == 1.0
    weights, _ = choose_weights([sharp, sharp], labels, step=0.5)
    assert weights.tolist() == [0.5, 0.5]


def test_ensemble_skips_tasks_without_every_member(tmp_path: Path) -> None:
    job = Job("erm", "loro", "yangtze", 0, ("yarlung",))
    written, skipped = build_benchmark_ensembles([job], tmp_path, ["erm", "svm"])
    assert not written and len(skipped) == 1
    with pytest.raises(ValueError, match="two methods"):
        build_benchmark_ensembles([job], tmp_path, ["erm"])


def test_hparam_sampler_is_seeded_and_trial_zero_is_the_defaults() -> None:
    space = {"lr": log_uniform(-3, -1), "dropout": choice(0.0, 0.5)}
    assert sample_hparams("erm", space, 0) == {}
    first, again = sample_hparams("erm", space, 3), sample_hparams("erm", space, 3)
    assert first == again and 1e-3 <= first["lr"] <= 1e-1 and first["dropout"] in (0.0, 0.5)
    assert sample_hparams("erm", space, 4) != first
    assert sample_hparams("erm", {"lr": space["lr"]}, 3)["lr"] == first["lr"]  # independent of other names
    draws = {sample_hparams("erm", space, t)["lr"] for t in range(1, 20)}
    assert len(draws) == 19


def test_trials_expand_deep_jobs_only_and_the_best_val_trial_is_selected(tmp_path: Path) -> None:
    jobs = [Job("erm", "loro", "yangtze", 0, ("yarlung",)), Job("svm", "loro", "yangtze", 0, ("yarlung",))]
    expanded = expand_trials(jobs, 3)
    trials = [j for j in expanded if isinstance(j, TrialJob)]
    assert [t.trial for t in trials] == [0, 1, 2] and trials[0].overrides == ()
    assert all(o.startswith("hparams.") for o in trials[1].overrides) and trials[1].overrides
    assert expanded[-1] == jobs[1] and trials[2].run_dir(tmp_path).name == "trial2"
    labels = {s: np.array([0, 1]) for s in SPLITS}
    right, wrong = np.array([[0.9, 0.1], [0.1, 0.9]]), np.array([[0.1, 0.9], [0.9, 0.1]])
    for trial in trials:  # trial 1 is best on val, though worst on target
        val = right if trial.trial == 1 else wrong
        target = wrong if trial.trial == 1 else right
        _write_run(
            trial.run_dir(tmp_path),
            "erm",
            {"val": val, "test": val, "target": target},
            labels,
            hparam_search={"role": "trial", "trial": trial.trial},
        )
    chosen = select_trials(expanded, tmp_path)
    assert len(chosen) == 1 and chosen[0]["selection"]["hparam_search"]["chosen_trial"] == 1
    tidy = load_runs([tmp_path])
    assert set(tidy["method"]) == {"erm"} and tidy["path"].nunique() == 1  # trials skipped, chosen kept
    assert expand_trials(jobs, 1) == jobs
    with pytest.raises(ValueError):
        expand_trials(jobs, 0)


def test_variants_become_rows_and_the_epoch_histogram_counts_late_choices(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    labels = {s: np.array([0, 1]) for s in ("val", "test")}
    p = {s: np.array([[0.9, 0.1], [0.1, 0.9]]) for s in ("val", "test")}
    record = _write_run(
        tmp_path / "a", "erm", p, labels, selection={"rule": "x", "epoch": 9, "epochs_run": 10}
    )
    record["variants"] = {"tta": {s: record["metrics"][s] for s in ("val", "test")}}
    record["protocol"], record["targets"] = "mixed", []
    write_record(record, tmp_path / "a", None)
    with caplog.at_level("WARNING"):
        tidy = load_runs([tmp_path], variants=["tta", "plain"])
    assert set(tidy["method"]) == {"erm", "erm+tta"}
    # A requested variant no run holds is named, with where it would come from; a held one is not.
    assert "variant 'plain': no run record holds it" in caplog.text
    assert "variant 'tta'" not in caplog.text
    epochs = chosen_epochs([tmp_path])
    assert epochs["epoch"].tolist() == [9]
    assert "1 of 1" in chosen_epoch_histogram(epochs)


def test_per_method_preset_layers_apply_to_their_method_only(tmp_path: Path) -> None:
    preset = tmp_path / "preset.yaml"
    preset.write_text("data: {size: 48}\nper_method:\n  erm:\n    hparams: {width: 0.5}\n")
    erm, _ = resolve_config("erm", config_file=preset)
    svm, _ = resolve_config("svm", config_file=preset)
    assert erm["hparams"]["width"] == 0.5 and "width" not in svm["hparams"]
    assert erm["data"]["size"] == svm["data"]["size"] == 48
    preset.write_text("per_method:\n  erm:\n    training: {epochz: 3}\n")
    with pytest.raises(ConfigError, match="epochz"):
        resolve_config("erm", config_file=preset)


def test_cpu_preset_resolves_for_every_method() -> None:
    from san.runs.config import CONFIG_DIR

    for method in ("erm", "san", "svm", "vgg16", "cdann", "swad"):
        recipe, _ = resolve_config(method, config_file=CONFIG_DIR / "presets" / "cpu-recipe.yaml")
        plain, _ = resolve_config(method, config_file=CONFIG_DIR / "presets" / "cpu.yaml")
        assert recipe["data"]["size"] == plain["data"]["size"] == 64
        assert ("width" in recipe["hparams"]) == (method in ("erm", "san", "cdann", "swad"))
        pair_network = methods.get_method(method).family in PAIR_NETWORK_FAMILIES
        # The plain preset's pair networks: a quarter-width ResNet-18 for 20 epochs on PPL-border-
        # referenced pairs; the rest as before.
        assert plain["hparams"].get("width") == (0.25 if pair_network else None)
        assert plain["training"]["epochs"] == (20 if pair_network else 10)
        assert plain["data"]["background_reference"] == ("plane" if pair_network else "none")
        # float32 for every network: bfloat16 autocast is opt-in until its accuracy is measured.
        assert plain["hparams"].get("amp") is (None if method == "svm" else False)


def test_classical_features_follow_the_input_size() -> None:
    from baselines.experiment import _hparams

    assert _hparams({"hparams": {}, "data": {"size": 64}})["feature_size"] == 64
    assert _hparams({"hparams": {"feature_size": 128}, "data": {"size": 64}})["feature_size"] == 128


def test_cpu_preset_keeps_every_network_method_in_float32() -> None:
    """bfloat16 autocast is opt-in until its accuracy is measured: every registered deep method,
    including ones added later, resolves to hparams.amp false under configs/presets/cpu.yaml."""
    from san.runs.config import CONFIG_DIR

    for method in methods.method_names():
        if methods.get_method(method).family != "classical":
            config, _ = resolve_config(method, config_file=CONFIG_DIR / "presets" / "cpu.yaml")
            assert config["hparams"].get("amp") is False, method


def test_cpu_preset_gives_every_pair_network_method_the_quarter_width() -> None:
    """configs/presets/cpu.yaml names the pair-network methods one by one (per_method); a method
    registered later in these families must be added there too."""
    from san.runs.config import CONFIG_DIR

    for method in methods.method_names():
        if methods.get_method(method).family in PAIR_NETWORK_FAMILIES:
            config, _ = resolve_config(method, config_file=CONFIG_DIR / "presets" / "cpu.yaml")
            assert config["hparams"].get("width") == 0.25, method
            assert config["training"]["epochs"] == 20, method
            assert config["data"]["background_reference"] == "plane", method
