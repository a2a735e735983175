"""The Python API (san.train, san.load_run, Run.predict, san.assemblage) and its page, whose code
blocks run here on tiny images, so docs/python-api.md cannot fall behind the code."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import san
from san.methods import UnknownMethodError
from san.runs.config import ConfigError, override_strings, parse_override
from san.runs.saved_model import RunLoadError

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "python-api.md"
COUNTS = {"yangtze": {"Ap": 5, "Zrn": 5}, "yarlung": {"Ap": 6, "Zrn": 6}, "pengqu": {"Ap": 6, "Zrn": 6}}
TINY = {"data.size": 16, "training.epochs": 1, "training.batch_size": 6, "fused_dim": 16}


@pytest.fixture(scope="module")
def tree(tmp_path_factory, write_pair_tree) -> Path:
    root = tmp_path_factory.mktemp("api") / "micrographs"
    write_pair_tree(root, "{domain}/{pol}/{label}/{name}", COUNTS)
    return root


@pytest.fixture(scope="module")
def deep_record(tree, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("api_runs")
    return san.train(
        "san", data=tree, domains=["yarlung", "pengqu"], overrides=TINY, out=out, wandb="disabled"
    )


def test_import_san_is_light_and_dir_shows_the_api():
    probe = "import sys, san; print([m for m in ('torch', 'pandas', 'numpy', 'sklearn') if m in sys.modules])"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
    assert {"train", "load_run", "Run", "assemblage", "__version__"} <= set(dir(san))
    assert san.train.__module__ == "san.api"
    with pytest.raises(AttributeError, match="no attribute 'trian'"):
        san.trian  # noqa: B018


@pytest.mark.parametrize(
    "value", [1, 0.003, "resnet34", "1", True, None, [1, 2], {"a": 1}, "", "yes", "x=y", 1e-5]
)
def test_override_dicts_become_strings_that_parse_back(value):
    (text,) = override_strings({"training.key": value})
    assert parse_override(text) == ("training.key", value)


def test_override_lists_pass_through_and_bad_keys_are_named():
    assert override_strings(["epochs=1", "lr=0.1"]) == ["epochs=1", "lr=0.1"]
    assert override_strings(None) == []
    with pytest.raises(ConfigError, match="'a=b'"):
        override_strings({"a=b": 1})


def test_train_returns_the_record_and_the_run_predicts(deep_record, tree):
    record = deep_record
    assert record["status"] == "complete" and record["protocol"] == "loro"
    assert record["targets"] == ["yangtze"]
    assert record["config"]["training"]["epochs"] == 1 and record["config"]["data"]["size"] == 16
    run_dir = Path(record["run_dir"])
    assert run_dir.name == "san-loro-yangtze-seed0"
    run = san.load_run(run_dir)
    assert run.record == json.loads((run_dir / "results.json").read_text())
    assert run.method == "san" and run.classes == record["classes"]
    predictions = run.predict(tree / "yangtze")
    assert len(predictions) == 10 and set(predictions["label"]) == {"Ap", "Zrn"}
    assert predictions[[f"prob_{c}" for c in run.classes]].sum(axis=1).round(6).eq(1).all()
    table = san.assemblage(predictions, run)
    assert table["count"].sum() == 10 and table["corrected_percent"].notna().all()
    raw = san.assemblage(predictions)
    assert raw["count"].tolist() == table["count"].tolist()
    assert np.allclose(raw["corrected_percent"], raw["percent"])  # without a run: classify and count
    assert not (run_dir / "predict").exists()  # the API writes nothing


def test_api_errors_are_exceptions_naming_the_value(tree, tmp_path):
    with pytest.raises(UnknownMethodError, match="'svn'"):
        san.train("svn", data=tree, out=tmp_path)
    with pytest.raises(ValueError, match="amazon"):
        san.train("san", data=tree, domains=["amazon"], overrides=TINY, out=tmp_path, wandb="disabled")
    with pytest.raises(ConfigError, match="epochz"):
        san.train("san", data=tree, overrides={"epochz": 1}, out=tmp_path, wandb="disabled")
    with pytest.raises(ValueError, match="'gpu'"):
        san.train("san", data=tree, overrides=TINY, device="gpu", out=tmp_path, wandb="disabled")
    with pytest.raises(FileNotFoundError, match="no-run"):
        san.load_run(tmp_path / "no-run")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunLoadError):
        san.load_run(tmp_path / "empty")


def test_runs_named_before_the_protocol_rename_still_load(deep_record, tree, tmp_path, capsys):
    """An old run folder (``san-cross-to-yangtze-seed0``, record protocol ``cross``) loads in
    predict.py, the API and make_tables.py, where it counts as leave-one-river-out."""
    from san.cli.predict import predict_main
    from san.cli.tables import main as tables_main

    old = tmp_path / "old" / "san-cross-to-yangtze-seed0"
    shutil.copytree(deep_record["run_dir"], old)
    record = json.loads((old / "results.json").read_text()) | {"protocol": "cross", "run_dir": str(old)}
    (old / "results.json").write_text(json.dumps(record))
    assert san.load_run(old).predict(tree / "yangtze")["class_1"].notna().all()
    assert predict_main([str(old), str(tree / "yangtze"), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    assert (tmp_path / "p" / "assemblage.csv").is_file()
    capsys.readouterr()
    assert tables_main([str(tmp_path / "old"), "--format", "csv"]) == 0
    tables = capsys.readouterr().out
    assert "loro" in tables and "yangtze" in tables


def test_the_python_api_page_runs(tmp_path, monkeypatch, write_pair_tree, write_image):
    write_pair_tree(tmp_path / "micrographs", "{domain}/{pol}/{label}/{name}", COUNTS)
    for s, sample in enumerate(("S1", "S2")):
        for i in range(3):
            for j, pol in enumerate(("plane", "cross")):
                path = tmp_path / "new_samples" / sample / pol / f"g{i}.png"
                write_image(path, seed=100 + 10 * s + 2 * i + j)
    monkeypatch.chdir(tmp_path)
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    for number, block in enumerate(blocks, 1):
        exec(compile(block, f"{PAGE.name} block {number}", "exec"), namespace)  # noqa: S102
    assert namespace["record"]["status"] == "complete" and namespace["baseline"]["method"] == "svm"
    assert isinstance(namespace["table"], pd.DataFrame) and set(namespace["table"]["sample"]) == {"S1", "S2"}
