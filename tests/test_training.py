"""The engine and the experiment runner, end to end on a tiny three-river tree (CPU, seconds)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from san.benchmark.selection import select
from san.cli.train import train_san_main
from san.inference.predictors import load_predictor
from san.runs.config import ConfigError, apply_overrides, resolve_config
from san.runs.records import METRIC_KEYS, RECORD_KEYS, read_record
from san.training.engine import CHECKPOINT_FILE, TrainingInterrupted, lr_factor
from san.training.experiment import Experiment, RunRequest, resume_experiment, run_experiment
from san.training.sampling import BalancedBatchSampler

TINY = ["size=16", "epochs=2", "batch_size=6", "eval_batch_size=64", "fused_dim=16"]
TINY_COUNTS = {
    "ChangJiang": {"Ap": 6, "Zrn": 6},
    "YaJiang": {"Ap": 6, "Zrn": 6, "Rt": 4},
    "PengQu": {"Ap": 6, "Zrn": 6, "Rt": 4},
}


@pytest.fixture(scope="module")
def tiny_tree(tmp_path_factory, write_pair_tree) -> Path:
    root = tmp_path_factory.mktemp("tiny_tree")
    write_pair_tree(root, "{domain}/{pol}/{label}/{name}", TINY_COUNTS)
    return root


def tiny_request(tree: Path, out: Path, **changes) -> RunRequest:
    values = dict(
        method="san",
        data=str(tree),
        domains=["yarlung", "pengqu"],
        seed=0,
        overrides=list(TINY),
        out=str(out),
        wandb_mode="disabled",
        device="cpu",
        progress=False,
    )
    values.update(changes)
    return RunRequest(**values)


def test_end_to_end_run_writes_a_complete_record(tiny_tree, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    record = run_experiment(
        tiny_request(tiny_tree, tmp_path, overrides=[*TINY, "training.epoch_scores=true"])
    )
    assert set(RECORD_KEYS) <= set(record)
    assert record["protocol"] == "loro" and record["targets"] == ["yangtze"]
    assert record["sources"] == ["yarlung", "pengqu"]
    assert record["classes"] == ["Ap", "Rt", "Zrn"]
    for split in ("val", "test", "target"):
        assert set(METRIC_KEYS) <= set(record["metrics"][split])
    assert set(record["metrics"]["target"]["per_domain"]) == {"yangtze"}
    assert set(record["metrics"]["test"]["per_domain"]) == {"yarlung", "pengqu"}
    assert record["metrics"]["target"]["n"] == 12
    assert "val" in record["selection"]["rule"] and 1 <= record["selection"]["epoch"] <= 2
    final = record["extras"]["final_epoch"]
    assert {"train_disc_acc", "train_disc_acc_class_only", "train_domain_loss_chance"} <= set(final)
    # Every epoch scores val per source river and its loss, and test and target for the tables' rules.
    for key in (
        "val_loss",
        "val_accuracy_yarlung",
        "val_accuracy_pengqu",
        "test_accuracy",
        "target_macro_f1",
    ):
        assert key in final, key
    assert final["target_oracle_val_n"] + final["target_oracle_rest_n"] == final["target_n"] == 12
    chosen = record["extras"]["history"][record["selection"]["epoch"] - 1]
    for split in ("test", "target"):  # the recorded epoch scores are those of the final evaluation
        assert chosen[f"{split}_accuracy"] == pytest.approx(record["metrics"][split]["accuracy"])
    probe = record["extras"]["river_probe"]
    assert probe["status"] == "measured" and probe["split"] == "test"
    assert set(probe["rivers"]) == {"yarlung", "pengqu"} and 0 <= probe["residual_accuracy"] <= 1

    run_dir = Path(record["run_dir"])
    assert read_record(run_dir) == json.loads(json.dumps(record, default=str))
    for name in (
        "config.yaml",
        "split.csv",
        "model.pt",
        "confusion_test.png",
        "confusion_target.png",
        "training_curves.png",
        "predictions_target.csv",
    ):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / CHECKPOINT_FILE).exists()
    # train.log holds the run's log lines as the console shows them, from the run's start on.
    logged = (run_dir / "train.log").read_text().splitlines()
    shown = [r.getMessage() for r in caplog.records]
    assert logged and any(f"run {run_dir}: san, loro protocol" in line for line in logged)
    assert all(any(message in line for message in shown) for line in logged)
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["run_dir"] == str(run_dir)
    assert not (run_dir / "wandb").exists()  # disabled W&B writes nothing


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_tree, tmp_path):
    full = run_experiment(tiny_request(tiny_tree, tmp_path / "a", method="erm"))
    interrupted = Experiment(tiny_request(tiny_tree, tmp_path / "b", method="erm"))
    with pytest.raises(TrainingInterrupted):
        interrupted.run(stop_after_epoch=lambda epoch: epoch == 1)
    assert (interrupted.run_dir / CHECKPOINT_FILE).exists() and read_record(interrupted.run_dir) is None
    resumed = resume_experiment(interrupted.run_dir, progress=False)
    for split in ("val", "test", "target"):
        assert resumed["metrics"][split]["confusion"] == full["metrics"][split]["confusion"]
        assert resumed["metrics"][split]["accuracy"] == full["metrics"][split]["accuracy"]
    assert resumed["extras"]["final_epoch"]["train_loss"] == full["extras"]["final_epoch"]["train_loss"]
    assert resumed["timing"]["resumed"] is True
    assert not (interrupted.run_dir / CHECKPOINT_FILE).exists()  # removed once the run is complete
    with pytest.raises(ValueError, match="already complete"):
        resume_experiment(interrupted.run_dir, progress=False)


def test_checkpoint_holds_only_tensors_and_plain_containers(tiny_tree, tmp_path):
    interrupted = Experiment(tiny_request(tiny_tree, tmp_path, method="san"))
    with pytest.raises(TrainingInterrupted):
        interrupted.run(stop_after_epoch=lambda epoch: epoch == 1)
    state = torch.load(interrupted.run_dir / CHECKPOINT_FILE, weights_only=True)
    assert state["epoch"] == 0 and isinstance(state["random_states"]["torch"], torch.Tensor)


def test_resume_refuses_a_checkpoint_that_would_run_code(tiny_tree, tmp_path, capsys, code_running_payload):
    payload, marker = code_running_payload
    interrupted = Experiment(tiny_request(tiny_tree, tmp_path, method="erm", overrides=[*TINY, "epochs=1"]))
    with pytest.raises(TrainingInterrupted):
        interrupted.run(stop_after_epoch=lambda epoch: epoch == 1)
    checkpoint = interrupted.run_dir / CHECKPOINT_FILE
    torch.save({"epoch": 0, "model": payload}, checkpoint)
    assert train_san_main(["--resume", str(interrupted.run_dir), "--quiet"]) == 1
    error = capsys.readouterr().err
    assert not marker.exists()
    assert str(checkpoint) in error and "refused" in error and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
    torch.save({"epoch": 0}, checkpoint)  # plain, but not ours
    assert train_san_main(["--resume", str(interrupted.run_dir), "--quiet"]) == 1
    assert "not a checkpoint written by this engine" in capsys.readouterr().err


def test_swad_puts_the_averaged_weights_of_its_window_in_place(tiny_tree, tmp_path):
    record = run_experiment(tiny_request(tiny_tree, tmp_path, method="swad"))
    selection = record["selection"]
    assert selection["epoch_selection"] is False and selection["rule"].startswith("SWAD")
    first, last = selection["swad_window"]
    assert 1 <= first <= last <= 2 and selection["swad_steps"] > 0
    # the raw weights' best epoch is reported beside the average, as for EMA/SWA runs
    assert 1 <= selection["plain_epoch"] <= 2 and "plain" in record["variants"]


def test_swad_cannot_be_combined_with_training_averaging(tiny_tree, tmp_path):
    overrides = [*TINY, "epochs=1", "averaging=ema"]
    with pytest.raises(ValueError, match="training.averaging"):
        run_experiment(tiny_request(tiny_tree, tmp_path, method="swad", overrides=overrides))


def test_published_protocol_runs_its_stages_and_the_oracle_rule_reads_its_record(tiny_tree, tmp_path):
    overrides = [*TINY, "epochs=5", "stage_ends=[0.4,0.6]", "training.epoch_scores=true"]
    record = run_experiment(tiny_request(tiny_tree, tmp_path, method="published_san", overrides=overrides))
    lambdas = [row["train_lambda"] for row in record["extras"]["history"]]
    assert lambdas[:2] == [0.0, 0.0] and lambdas[-1] == 1.0  # classifier, discriminator, adversarial
    oracle = select(record, "oracle")
    assert 1 <= oracle.epoch <= 5 and oracle.scores["target"]["n"] < record["metrics"]["target"]["n"]


def test_leave_one_source_out_run_scores_the_held_out_source_without_its_test_part(tiny_tree, tmp_path):
    record = run_experiment(
        tiny_request(
            tiny_tree, tmp_path, method="erm", domains=["yarlung"], targets=["yangtze"], protocol="loso"
        )
    )
    assert record["protocol"] == "loso" and record["targets"] == ["yangtze"]
    assert record["metrics"]["target"]["n"] == 8  # 12 Yangtze pairs less the 4 its test split holds
    assert "pengqu" not in record["metrics"]["test"]["per_domain"]
    assert record["extras"]["river_probe"]["status"] == "skipped"  # one source river
    # A single run leaves the per-epoch test/target scores off (benchmark.py turns them on).
    assert "target_accuracy" not in record["extras"]["final_epoch"]


def test_wandb_offline_writes_its_files_under_the_run_directory(tiny_tree, tmp_path):
    record = run_experiment(
        tiny_request(tiny_tree, tmp_path, wandb_mode="offline", overrides=[*TINY, "epochs=1"])
    )
    offline_runs = list((Path(record["run_dir"]) / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1


def test_train_san_script_exit_codes(tiny_tree, tmp_path, capsys):
    assert (
        train_san_main(["--data", str(tiny_tree), "--domains", "yarlung,amazon", "--out", str(tmp_path)]) == 2
    )
    error = capsys.readouterr().err
    assert "amazon" in error and "yangtze, yarlung, pengqu" in error
    assert train_san_main(["--data", str(tiny_tree), "--classes", "Qtz", "--out", str(tmp_path)]) == 2
    assert "Ap, Rt, Zrn" in capsys.readouterr().err
    assert train_san_main(["--data", str(tiny_tree), "--set", "epochz=3", "--out", str(tmp_path)]) == 2
    assert "epochz" in capsys.readouterr().err
    code = train_san_main(
        [
            "--data",
            str(tiny_tree),
            "--domains",
            "YarlungZangbo,PumQu",
            "--out",
            str(tmp_path),
            "--wandb",
            "disabled",
            "--quiet",
            "--device",
            "cpu",
            *sum((["--set", s] for s in TINY), []),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "target" in printed and "yangtze" in printed and "macro_f1" in printed


def test_config_layers_and_overrides():
    config, layers = resolve_config(
        "san", use_cpu_preset=True, overrides=["lr=0.5", "training.epochs=3"], hparam_names=["lr", "backbone"]
    )
    assert config["hparams"]["lr"] == 0.5 and config["training"]["epochs"] == 3
    assert config["data"]["size"] == 64 and any("cpu.yaml" in layer for layer in layers)
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(config, ["training.epochz=3"])
    with pytest.raises(ConfigError, match="ambiguous"):
        apply_overrides({"a": {"x": 1}, "b": {"x": 2}}, ["x=3"])


def test_lr_schedules():
    assert lr_factor("cosine", 0.0) == 1.0 and lr_factor("cosine", 1.0) == pytest.approx(0.0)
    assert lr_factor("dann", 1.0) == pytest.approx(11**-0.75)
    assert lr_factor("constant", 0.7, warmup_fraction=0.0) == 1.0
    assert lr_factor("constant", 0.05, warmup_fraction=0.1) == pytest.approx(0.5)


def test_domain_balanced_batches_hold_every_domain_and_repeat_by_seed():
    domains = np.array([0] * 40 + [1] * 8 + [2] * 4)
    labels = np.arange(52) % 3
    sampler = BalancedBatchSampler(labels, domains, batch_size=6, seed=1)
    batches = list(sampler)
    assert len(batches) == 9 and all(len(b) == 6 for b in batches)
    assert all(set(domains[b]) == {0, 1, 2} for b in batches)
    assert batches == list(BalancedBatchSampler(labels, domains, batch_size=6, seed=1))
    sampler.set_epoch(1)
    assert list(sampler) != batches
    with pytest.raises(ValueError, match="cannot hold"):
        BalancedBatchSampler(labels, domains, batch_size=2, seed=0)


def test_erm_with_cross_attention_on_a_timm_vit_runs_one_epoch_and_reloads(tiny_tree, tmp_path):
    # The CPU preset's pair recipe is ResNet-only (stem, width, MixStyle layers): back to the defaults.
    resnet_only = ["stem=imagenet", "width=1.0", "mixstyle_after=[]"]
    overrides = [
        *TINY,
        *resnet_only,
        "size=32",
        "epochs=1",
        "backbone=timm:test_vit",
        "fusion=cross_attention",
    ]
    record = run_experiment(tiny_request(tiny_tree, tmp_path, method="erm", overrides=overrides))
    assert record["status"] == "complete" and len(record["extras"]["history"]) == 1
    assert record["config"]["hparams"]["fusion"] == "cross_attention"
    assert np.isfinite(record["extras"]["history"][0]["val_loss"])
    predictor = load_predictor(record["run_dir"], device="cpu")
    assert predictor.algorithm.hparams["img_size"] == 32  # filled from data.size, saved with the model
    probabilities = np.loadtxt(
        Path(record["run_dir"]) / "predictions_target.csv", delimiter=",", skiprows=1, usecols=(4, 5, 6)
    )
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)


def test_history_records_the_data_wait_of_every_epoch(tiny_tree, tmp_path):
    record = run_experiment(tiny_request(tiny_tree, tmp_path, method="erm"))
    for row in record["extras"]["history"]:
        assert 0 <= row["train_data_seconds"] <= row["train_loop_seconds"] <= row["seconds"]


def test_profile_splits_a_step_into_data_forward_backward_and_optimizer(tiny_tree, tmp_path, capsys):
    from san.cli.profile import main as profile_main
    from san.training.profiling import PHASES, format_profile, profile_steps

    experiment = Experiment(tiny_request(tiny_tree, tmp_path))
    profile = profile_steps(experiment.trainer(experiment.prepare()), steps=2, warmup=1, top=3)
    assert profile.steps == 2 and profile.data >= 0 and profile.update > 0
    assert set(profile.phases) == set(PHASES) and all(v > 0 for v in profile.phases.values())
    assert 0 <= profile.data_share < 1 and len(profile.top_operators) == 3
    assert "data wait" in format_profile(profile)
    with pytest.raises(ValueError, match="steps >= 1"):
        profile_steps(experiment.trainer(experiment.prepare()), steps=0)

    args = ["--data", str(tiny_tree), "--domains", "yarlung,pengqu", "--quiet", "--steps", "1"]
    assert profile_main([*args, *(f"--set={o}" for o in TINY)]) == 0
    assert "step/backward" in capsys.readouterr().out
    assert profile_main([*args, "--resume", str(tmp_path)]) == 2
    assert "do not apply" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["erm", "svm"])
def test_a_mistyped_override_fails_before_the_data_is_opened(method, monkeypatch):
    import baselines.experiment
    import san.training.experiment

    def never(*_: object) -> None:
        raise AssertionError("the data was opened before the config was checked")

    monkeypatch.setattr(san.training.experiment, "open_request_data", never)
    monkeypatch.setattr(baselines.experiment, "open_request_data", never)
    request = RunRequest(method=method, overrides=["training.epochz=3"], device="cpu", wandb_mode="disabled")
    run = (
        baselines.experiment.run_classical_experiment
        if method == "svm"
        else san.training.experiment.Experiment
    )
    with pytest.raises(ConfigError, match="unknown key 'training.epochz'"):
        run(request)
