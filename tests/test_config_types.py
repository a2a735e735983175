"""Config values are checked against the type of their default (and a few ranges) before any work:
a usage error (exit 2) naming the key, the expected type and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from san.cli.benchmark import main as benchmark_main
from san.cli.train import train_san_main
from san.runs.config import CONFIG_DIR, read_yaml
from san.runs.config_types import config_problems, type_problem

BASE = read_yaml(CONFIG_DIR / "base.yaml")


@pytest.mark.parametrize(
    ("default", "value", "ok"),
    [
        (10, 3, True),
        (10, "two", False),
        (10, 2.5, False),
        (10, True, False),
        (0.01, 1, True),
        (0.01, "abc", False),
        (0.01, float("nan"), False),
        (True, False, True),
        (True, 1, False),
        ("cosine", "constant", True),
        ("cosine", 3, False),
        ([1, 2], [], True),
        ([1, 2], 3, False),
        (None, "anything", True),
    ],
)
def test_a_value_must_have_its_defaults_type(default, value, ok):
    assert (type_problem(default, value) is None) is ok


def test_problems_name_the_key_the_type_and_the_value():
    config = {
        "training": {**BASE["training"], "epochs": "two", "batch_size": 0},
        "data": dict(BASE["data"]),
        "hparams": {"lr": "abc", "momentum": 0.9},
    }
    problems = config_problems(config, BASE, {"lr": 0.01, "momentum": 0.9})
    assert any(p.startswith("training.epochs: expected an integer") and "'two'" in p for p in problems)
    assert "training.batch_size: must be >= 1, got 0" in problems
    assert any(p.startswith("hparams.lr: expected a number") and "'abc'" in p for p in problems)
    assert len(problems) == 3


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--set", "training.epochs=two"], "training.epochs"),
        (["--set", "lr=abc"], "hparams.lr"),
        (["--set", "training.epochs=-1"], "training.epochs: must be >= 1"),
        (["--seed", "-1"], "--seed"),
    ],
)
def test_train_san_refuses_a_bad_value_with_exit_2(flags, named, tmp_path, capsys, write_pair_tree):
    tree = tmp_path / "tree"
    write_pair_tree(tree, "{domain}/{pol}/{label}/{name}", {"a": {"Ap": 3, "Zrn": 3}})
    try:
        code = train_san_main(
            ["--data", str(tree), "--out", str(tmp_path / "out"), "--wandb", "disabled", *flags]
        )
    except SystemExit as exited:  # argparse's own usage errors exit
        code = exited.code
    assert code == 2
    assert named in capsys.readouterr().err
    assert not any((tmp_path / "out").glob("*/model.pt"))


def test_benchmark_refuses_a_typo_before_it_claims_the_folder(tmp_path: Path, capsys, write_pair_tree):
    tree = tmp_path / "tree"
    write_pair_tree(tree, "{domain}/{pol}/{label}/{name}", {"a": {"Ap": 3, "Zrn": 3}})
    out = tmp_path / "bench"
    argv = ["--data", str(tree), "--methods", "erm,svm", "--seeds", "0", "--out", str(out), "--quiet"]
    assert benchmark_main([*argv, "--set", "training.epochs=two"]) == 2
    assert "training.epochs" in capsys.readouterr().err
    assert benchmark_main([*argv, "--set", "unknown.key=1"]) == 2
    assert "unknown.key" in capsys.readouterr().err
    assert not (out / "benchmark.json").exists() and not any(out.glob("*/*/*/results.json"))


def test_loader_workers_take_auto_or_a_whole_number():
    from san.runs.config import CONFIG_DIR, read_yaml
    from san.runs.config_types import config_problems

    base = read_yaml(CONFIG_DIR / "base.yaml")
    for value in ("auto", 0, 2):
        assert config_problems({"training": {"num_workers": value}}, base, {}) == []
    for value in (-1, 1.5, True):
        assert config_problems({"training": {"num_workers": value}}, base, {}), value
