"""The label-error finder: out-of-fold within each river, never the test split, planted flips ranked first."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from baselines.label_errors_cli import main as find_label_errors_main
from data_tools.manifest_io import load_dataset
from data_tools.splits import split_mixed
from san.studies.label_errors import (
    classifier_fold_model,
    find_label_errors,
    out_of_fold_probabilities,
    planted_scores,
    save_issues_csv,
    save_review_sheet,
)

RIVERS = ("yangtze", "yarlung", "pengqu")
CLASSES = ("Ap", "Grt", "Zrn", "Rt")


def easy_set(per_class: int = 30, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """A manifest over three rivers and four classes, and features that separate the classes well."""
    rng = np.random.default_rng(seed)
    centres = {c: rng.normal(0.0, 3.0, size=5) for c in CLASSES}
    rows, features = [], []
    for river in RIVERS:
        for label in CLASSES:
            for i in range(per_class):
                rows.append({"sample_id": f"{river}/{label}/{i:03d}", "domain": river, "label": label})
                features.append(centres[label] + rng.normal(size=5))
    return pd.DataFrame(rows), np.asarray(features)


def logistic(X: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    return LogisticRegression(max_iter=500, random_state=seed).fit(X, y)


def test_planted_flips_rank_above_clean_samples_on_an_easy_set():
    manifest, features = easy_set()
    model = classifier_fold_model(features, logistic, len(CLASSES))
    result = find_label_errors(manifest, model, seed=0, plant=0.05, plant_seed=1)
    table = result.table
    scores = planted_scores(result)
    assert scores["planted"] == table["planted"].sum() > 0
    assert scores["precision_at_k"] >= 0.8 and scores["recall_flagged"] >= 0.9
    assert table.loc[table["planted"], "rank"].mean() < table.loc[~table["planted"], "rank"].mean() / 5
    planted = table[table["planted"]]
    assert (planted["given"] != planted["original"]).all()
    assert (planted["suggested"] == planted["original"]).mean() >= 0.8  # the suggestion restores the label
    assert sorted(table["rank"]) == list(range(1, len(table) + 1))


def test_only_train_and_val_rows_are_examined_and_every_river_on_its_own():
    manifest, features = easy_set(per_class=10)
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    inner = classifier_fold_model(features, logistic, len(CLASSES))

    def spy(train, labels, predict, seed):
        seen.append((train, predict))
        return inner(train, labels, predict, seed)

    result = find_label_errors(manifest, spy, seed=4, folds=3)
    split = split_mixed(manifest, 4)
    examined = set(result.table["row"])
    assert examined == set(np.flatnonzero(split.isin(["train", "val"]).to_numpy()))
    domains = manifest["domain"].to_numpy()
    for train, predict in seen:
        assert not set(train) & set(predict)  # never predicts a row it was fitted on
        assert len(set(domains[train]) | set(domains[predict])) == 1  # within one river
        assert set(predict) <= examined and set(train) <= examined
    assert sorted(np.concatenate([p for _, p in seen]).tolist()) == sorted(examined)


def test_out_of_fold_probabilities_fill_every_row_once():
    rows, labels = np.arange(20, 32), np.array([0, 1, 2] * 4)
    calls = []

    def fixed(train, train_labels, predict, seed):
        calls.append(seed)
        probabilities = np.zeros((len(predict), 3))
        probabilities[:, 0] = 1.0
        return probabilities

    probabilities = out_of_fold_probabilities(rows, labels, 3, fixed, folds=4, seed=7)
    assert probabilities.shape == (12, 3) and (probabilities[:, 0] == 1).all()
    assert calls == [7, 8, 9, 10]
    with pytest.raises(ValueError, match="two folds"):
        out_of_fold_probabilities(rows[:3], np.array([0, 1, 2]), 3, fixed)


def test_scores_need_planted_flips():
    manifest, features = easy_set(per_class=8)
    result = find_label_errors(manifest, classifier_fold_model(features, logistic, len(CLASSES)), folds=2)
    assert not result.table["planted"].any()
    with pytest.raises(ValueError, match="no label was planted"):
        planted_scores(result)


def test_csv_and_review_sheet(tmp_path, write_pair_tree):
    write_pair_tree(tmp_path / "tree", "{domain}/{pol}/{label}/{name}", {"pengqu": {"Ap": 8, "Zrn": 8}})
    dataset = load_dataset(tmp_path / "tree", progress=False)
    rng = np.random.default_rng(0)
    is_zircon = (dataset.manifest["label"] == "Zrn").to_numpy()[:, None]
    features = rng.normal(size=(len(dataset.manifest), 3)) + 3.0 * is_zircon
    model = classifier_fold_model(features, logistic, 2)
    result = find_label_errors(dataset.manifest, model, folds=2, plant=0.2)
    table = pd.read_csv(save_issues_csv(result, tmp_path / "issues.csv"))
    assert list(table.columns) == [
        "sample_id",
        "domain",
        "given",
        "suggested",
        "self_confidence",
        "rank",
        "original",
        "planted",
    ]
    assert len(table) == result.table["flagged"].sum() > 0 and table["rank"].is_monotonic_increasing
    sheet = save_review_sheet(result, dataset, tmp_path / "sheet.png", top=4, size=16)
    assert sheet is not None and sheet.stat().st_size > 0


def test_the_command_writes_csv_sheet_and_scores(tmp_path, write_pair_tree, capsys):
    write_pair_tree(
        tmp_path / "tree",
        "{domain}/{pol}/{label}/{name}",
        {"pengqu": {"Ap": 8, "Zrn": 8}, "yarlung": {"Ap": 8, "Zrn": 8}},
    )
    out = tmp_path / "out"
    code = find_label_errors_main(
        [str(tmp_path / "tree"), "--out", str(out), "--folds", "2", "--flip", "0.2", "--quiet"]
    )
    assert code == 0
    assert (out / "label_issues.csv").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["planted"] >= 2 and 0.0 <= summary["precision_at_k"] <= 1.0
    assert "precision@k" in capsys.readouterr().out
    assert find_label_errors_main([str(tmp_path / "tree"), "--flip", "1.5"]) == 2


def test_a_fold_with_one_training_class_predicts_it_without_fitting():
    def never(X, y, seed):
        raise AssertionError("no classifier can be fitted on one class")

    model = classifier_fold_model(np.zeros((6, 2)), never, 3)
    probabilities = model(np.array([0, 1]), np.array([2, 2]), np.array([3, 4]), 0)
    assert probabilities.tolist() == [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
