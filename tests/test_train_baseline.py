"""train_baseline.py: classical and CNN baselines write records with the shared schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from san.cli.train import train_baseline_main
from san.runs.records import METRIC_KEYS, RECORD_KEYS, read_record

COUNTS = {"yangtze": {"Ap": 8, "Zrn": 8}, "pengqu": {"Ap": 8, "Zrn": 8}}


@pytest.fixture(scope="module")
def two_river_tree(tmp_path_factory, write_pair_tree) -> Path:
    root = tmp_path_factory.mktemp("two_rivers")
    write_pair_tree(root, "{domain}/{pol}/{label}/{name}", COUNTS)
    return root


def only_record(out: Path) -> dict:
    (line,) = (out / "results.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert set(RECORD_KEYS) <= set(record)
    assert record == read_record(record["run_dir"])
    return record


def test_classical_method_on_images(two_river_tree, tmp_path):
    code = train_baseline_main(
        [
            "--method",
            "knn",
            "--data",
            str(two_river_tree),
            "--domains",
            "pengqu",
            "--out",
            str(tmp_path),
            "--wandb",
            "disabled",
            "--quiet",
            "--set",
            "feature_size=32",
        ]
    )
    assert code == 0
    record = only_record(tmp_path)
    assert record["protocol"] == "loro" and record["targets"] == ["yangtze"]
    assert "GridSearchCV" in record["selection"]["rule"] and record["selection"]["best_params"]
    for split in ("test", "target"):
        assert set(METRIC_KEYS) <= set(record["metrics"][split])
    assert (Path(record["run_dir"]) / "model.skops").is_file()


def test_cnn_baseline_stack_input(two_river_tree, tmp_path):
    code = train_baseline_main(
        [
            "--method",
            "resnet34",
            "--input",
            "stack",
            "--data",
            str(two_river_tree),
            "--protocol",
            "mixed",
            "--out",
            str(tmp_path),
            "--wandb",
            "disabled",
            "--quiet",
            "--device",
            "cpu",
            "--set",
            "size=32",
            "--set",
            "epochs=1",
            "--set",
            "batch_size=8",
        ]
    )
    assert code == 0
    record = only_record(tmp_path)
    assert record["method"] == "resnet34" and record["config"]["hparams"]["input"] == "stack"
    assert record["metrics"]["test"]["n"] == 8  # round(0.3 * 8) = 2 per class and river


def test_feature_table_needs_no_images_and_can_keep_its_split(tmp_path):
    rng = np.random.default_rng(0)
    rows = 40
    labels = np.array(["Grt", "Zrn"] * (rows // 2))
    table = pd.DataFrame(
        {
            "sample_id": [f"s{i}" for i in range(rows)],
            "domain": "yarlung",
            "label": labels,
            "split": ["train"] * 28 + ["test"] * 12,
        }
    )
    table["f0"] = (labels == "Zrn") * 3.0 + rng.normal(size=rows)
    table["f1"] = rng.normal(size=rows)
    path = tmp_path / "features.csv"
    table.to_csv(path, index=False)
    code = train_baseline_main(
        [
            "--method",
            "svm",
            "--features",
            str(path),
            "--use-given-split",
            "--out",
            str(tmp_path / "runs"),
            "--wandb",
            "disabled",
            "--quiet",
        ]
    )
    assert code == 0
    record = only_record(tmp_path / "runs")
    assert record["metrics"]["test"]["n"] == 12 and record["data"]["features"] == str(path)
    assert record["metrics"]["test"]["accuracy"] > 0.7  # one informative feature: clearly above chance


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--method", "svm", "--input", "plane"], "--input applies to the CNN"),
        (["--method", "vgg16", "--features", "x.csv"], "--features applies to the classical"),
    ],
)
def test_flags_a_method_does_not_take_exit_2(arguments, message, capsys):
    assert train_baseline_main(arguments) == 2
    assert message in capsys.readouterr().err


def test_unknown_method_and_bad_feature_table_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_baseline_main(["--method", "lda"])
    assert exit_info.value.code == 2
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"sample_id": ["a"], "f0": [1.0]}).to_csv(bad, index=False)
    assert train_baseline_main(["--method", "rf", "--features", str(bad), "--out", str(tmp_path)]) == 2
    assert "domain" in capsys.readouterr().err
