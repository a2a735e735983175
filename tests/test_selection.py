"""DomainBed's three selection rules on run records, the tables under each, the leave-one-source-out
jobs and splits that feed them, and the oracle's part of the target river."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from data_tools.splits import oracle_rows, split_cross, split_held_out_source
from san.benchmark.jobs import GridError, Job, expand_grid, loso_jobs, parse_methods
from san.benchmark.selection import SelectionError, reselectable, select
from san.benchmark.tables import build_tables, load_runs, render
from san.cli.tables import main as make_tables_main
from san.evaluation.metrics import classification_metrics
from san.methods import method_names
from san.runs.records import write_record

CLASSES = ["Ap", "Zrn"]


def _row(epoch: int, val: float, target: float, oracle_val: float, oracle_rest: float, test: float) -> dict:
    return {
        "epoch": epoch,
        "val_accuracy": val,
        "test_accuracy": test,
        "test_macro_f1": test - 0.01,
        "test_n": 40.0,
        "target_accuracy": target,
        "target_macro_f1": target - 0.01,
        "target_n": 50.0,
        "target_oracle_val_accuracy": oracle_val,
        "target_oracle_val_macro_f1": oracle_val,
        "target_oracle_val_n": 10.0,
        "target_oracle_rest_accuracy": oracle_rest,
        "target_oracle_rest_macro_f1": oracle_rest - 0.01,
        "target_oracle_rest_n": 40.0,
    }


# val picks epoch 3, the oracle epoch 1, the leave-one-source-out runs epoch 2.
HISTORY = [
    _row(1, 0.60, 0.70, 0.90, 0.68, 0.75),
    _row(2, 0.70, 0.60, 0.50, 0.61, 0.80),
    _row(3, 0.80, 0.50, 0.40, 0.52, 0.85),
]
AUX = {"yangtze": [0.3, 0.6, 0.4], "yarlung": [0.5, 0.6, 0.2]}  # held-out source -> accuracy per epoch


def _metrics(accuracy: float, n: int = 40) -> dict[str, Any]:
    hits = round(accuracy * n)
    truth = [0] * (n // 2) + [1] * (n - n // 2)
    predicted = [t if i < hits else 1 - t for i, t in enumerate(truth)]
    return classification_metrics(truth, predicted, CLASSES)


def make_record(
    method: str, protocol: str, sources: list[str], targets: list[str], **extra
) -> dict[str, Any]:
    record = {
        "status": "complete",
        "method": method,
        "protocol": protocol,
        "sources": sources,
        "targets": targets,
        "seed": 0,
        "classes": CLASSES,
        "selection": {"rule": "best val accuracy (training rivers only)", "epoch": 3},
        "metrics": {"test": _metrics(0.85), "target": _metrics(0.5, 50)},
        "timing": {},
        "config": {},
        "versions": {},
        "data": {},
        "run_dir": "",
        "extras": {"history": HISTORY},
    }
    record.update(extra)
    return record


def auxiliary_records() -> dict[tuple[str, int, str, str], dict[str, Any]]:
    found = {}
    for held_out, values in AUX.items():
        rest = [r for r in ("yangtze", "yarlung") if r != held_out]
        history = [{"epoch": i + 1, "target_accuracy": v} for i, v in enumerate(values)]
        found[("erm", 0, "+".join(rest), held_out)] = make_record(
            "erm", "loso", rest, [held_out], extras={"history": history}
        )
    return found


def test_the_three_rules_pick_their_epochs():
    record = make_record("erm", "cross", ["yangtze", "yarlung"], ["pengqu"])
    training = select(record, "training")
    assert training.epoch == 3 and training.scores["target"]["accuracy"] == 0.50
    oracle = select(record, "oracle")
    assert oracle.epoch == 1 and "ORACLE" in oracle.rule
    assert oracle.scores["target"] == {"accuracy": 0.68, "macro_f1": pytest.approx(0.67), "n": 40}
    loso = select(record, "loso", auxiliary_records())
    assert loso.epoch == 2 and loso.scores["test"]["accuracy"] == 0.80
    with pytest.raises(SelectionError, match="no leave-one-source-out run"):
        select(record, "loso", {})
    with pytest.raises(ValueError, match="unknown selection rule"):
        select(record, "best")


def test_epochs_without_scores_cannot_be_chosen():
    # SWA's epochs before it starts averaging have no averaged model, hence no split scores.
    warm = {"epoch": 1, "val_accuracy": 0.9}
    record = make_record(
        "erm", "cross", ["yangtze", "yarlung"], ["pengqu"], extras={"history": [warm, *HISTORY[1:]]}
    )
    assert reselectable(record)
    assert select(record, "oracle").epoch == 2
    assert select(record, "loso", auxiliary_records()).epoch == 2


def test_runs_that_are_not_one_epoch_keep_their_own_selection():
    swad = make_record("swad", "cross", ["yangtze", "yarlung"], ["pengqu"])
    swad["selection"] = {"rule": "SWAD: ...", "epoch": 3, "epoch_selection": False}
    assert not reselectable(swad)
    assert not reselectable({**swad, "selection": {"rule": "x", "epoch": 1}, "extras": {}})
    with pytest.raises(SelectionError):
        select(swad, "oracle")


@pytest.fixture
def run_tree(tmp_path) -> Path:
    out = tmp_path / "runs"
    main = make_record("erm", "cross", ["yangtze", "yarlung"], ["pengqu"])
    write_record(main, out / "erm" / "loro-pengqu" / "seed0", out / "results.jsonl")
    for (_, _, sources, held_out), record in auxiliary_records().items():
        write_record(record, out / "erm" / f"loso-{held_out}-from-{sources}" / "seed0", out / "results.jsonl")
    svm = make_record("svm", "cross", ["yangtze", "yarlung"], ["pengqu"], extras={})
    svm["selection"] = {"rule": "GridSearchCV (training rivers only)"}
    write_record(svm, out / "svm" / "loro-pengqu" / "seed0", out / "results.jsonl")
    return out


def _target_accuracy(tidy: pd.DataFrame, method: str) -> float:
    rows = tidy[(tidy["method"] == method) & (tidy["split"] == "target") & (tidy["river"] == "overall")]
    return float(rows["accuracy"].iloc[0])


def test_tables_under_each_rule(run_tree, tmp_path):
    training = load_runs([run_tree])
    assert set(training["protocol"]) == {"loro"}  # the loso runs are inputs, not rows
    assert _target_accuracy(training, "erm") == 0.5
    oracle = load_runs([run_tree], "oracle")
    assert _target_accuracy(oracle, "erm") == 0.68 and _target_accuracy(oracle, "svm") == 0.5
    loso = load_runs([run_tree], "loso")
    assert _target_accuracy(loso, "erm") == 0.60
    tables = build_tables(oracle)
    assert [t.key for t in tables] == ["loro_oracle"] and "ORACLE" in tables[0].title
    markdown = render(tables, "md")
    assert "Selection rule: test-domain ORACLE" in markdown and "GridSearchCV" in markdown
    assert "Selection rule: training-domain validation" in render(build_tables(training), "md")
    out = tmp_path / "oracle.md"
    assert make_tables_main([str(run_tree), "--selection", "oracle", "--out", str(out)]) == 0
    assert "ORACLE" in out.read_text()
    assert make_tables_main([str(run_tree), "--selection", "oracle", "--figures", str(tmp_path)]) == 2


def test_the_probe_table_averages_the_river_probe_over_held_out_rivers(tmp_path):
    out = tmp_path / "runs"
    for seed, residual in ((0, 0.6), (1, 0.7)):
        probe = {"status": "measured", "accuracy": 0.8, "class_only": 0.6, "majority": 0.55}
        probe.update(residual_accuracy=residual, residual_majority=0.55)
        record = make_record(
            "erm",
            "cross",
            ["yangtze", "yarlung"],
            ["pengqu"],
            seed=seed,
            extras={"history": HISTORY, "river_probe": probe},
        )
        write_record(record, out / "erm" / "loro-pengqu" / f"seed{seed}", out / "results.jsonl")
    tables = {t.key: t for t in build_tables(load_runs([out]))}
    table = tables["probe"]
    assert table.rows == ["erm"]
    residual = table.cells[("erm", [c.metric for c in table.columns].index("probe_residual"))]
    assert residual.mean == pytest.approx(0.65) and residual.n_seeds == 2


def test_a_run_lacking_its_loso_runs_leaves_the_loso_table(run_tree, caplog):
    for path in run_tree.glob("erm/loso-*/seed0/results.json"):
        path.unlink()
    tidy = load_runs([run_tree], "loso")
    assert set(tidy["method"]) == {"svm"}
    lines = [r.getMessage() for r in caplog.records if "left out of the loso tables" in r.getMessage()]
    assert len(lines) == 1 and re.match(r"erm: \d+ run\(s\) left out of the loso tables, e\.g\. ", lines[0])


def test_loso_jobs_hold_each_source_out_once():
    jobs = expand_grid(["erm", "svm"], [("loro", None)], ["yangtze", "yarlung", "pengqu"], [0])
    aux = loso_jobs(jobs + jobs)
    assert len(aux) == 6 and {j.method for j in aux} == {"erm"}  # deep methods only, no duplicates
    job = Job("erm", "loso", "yangtze", 0, ("pengqu",))
    assert job in aux and job.name == "erm/loso-yangtze-from-pengqu/seed0"


def test_method_groups_are_the_families():
    assert parse_methods("dg") == method_names("dg")
    assert parse_methods("erm,dg")[:2] == ["erm", "cdann"]
    assert "published_san" in parse_methods("all") and "swad" in parse_methods("all")
    with pytest.raises(GridError, match="families"):
        parse_methods("dgg")


def _manifest() -> pd.DataFrame:
    rows = [
        {"sample_id": f"{river}-{label}-{i}", "domain": river, "label": label}
        for river in ("yangtze", "yarlung", "pengqu")
        for label in ("Ap", "Zrn")
        for i in range(10)
    ]
    return pd.DataFrame(rows)


def test_held_out_source_split_keeps_the_test_part_unseen():
    manifest = _manifest()
    main = split_cross(manifest, ["yangtze", "yarlung"], ["pengqu"], seed=3)
    aux = split_held_out_source(manifest, ["yarlung"], ["yangtze"], seed=3)
    yangtze = manifest["domain"] == "yangtze"
    assert (aux[yangtze & (main == "test")] == "unused").all()
    assert (aux[yangtze & (main != "test")] == "target").all()
    assert (aux[manifest["domain"] == "pengqu"] == "unused").all()  # the true target stays out
    assert aux[manifest["domain"] == "yarlung"].equals(main[manifest["domain"] == "yarlung"])


def test_oracle_rows_are_a_stratified_fifth_of_the_target():
    manifest = _manifest()
    target = np.flatnonzero(manifest["domain"] == "pengqu")
    picked = oracle_rows(manifest, target, seed=0)
    assert len(picked) == 4 and set(picked) <= set(target)
    assert manifest.loc[picked, "label"].value_counts().to_dict() == {"Ap": 2, "Zrn": 2}
    assert np.array_equal(picked, oracle_rows(manifest, target, seed=0))
