"""Split properties: disjoint, stratified within one sample per (domain, class), deterministic."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from data_tools.splits import split_cross, split_from_given, split_mixed


def make_manifest(counts: dict[str, dict[str, int]]) -> pd.DataFrame:
    rows = [
        {"sample_id": f"{d}/{c}/{i}", "domain": d, "label": c}
        for d, classes in counts.items()
        for c, n in classes.items()
        for i in range(n)
    ]
    return pd.DataFrame(rows)


COUNTS = {
    "yangtze": {"Amp": 21, "Ap": 54, "Zrn": 7},
    "pengqu": {"Amp": 31, "Ep": 49, "Zrn": 2},
    "yarlung": {"Ap": 13, "Ep": 3},
}


def test_mixed_split_is_stratified_disjoint_and_complete():
    manifest = make_manifest(COUNTS)
    split = split_mixed(manifest, seed=3)
    assert set(split) == {"train", "val", "test"}
    for (_, _), group in manifest.groupby(["domain", "label"]):
        parts = split[group.index].value_counts()
        n = len(group)
        assert abs(parts.get("test", 0) - 0.3 * n) <= 1
        n_train_val = n - parts.get("test", 0)
        assert abs(parts.get("val", 0) - 0.15 * n_train_val) <= 1
        assert parts.get("train", 0) >= 1


def test_same_seed_same_split_other_seed_other_split_and_row_order_irrelevant():
    manifest = make_manifest(COUNTS)
    first = split_mixed(manifest, seed=0)
    assert first.equals(split_mixed(manifest, seed=0))
    assert not first.equals(split_mixed(manifest, seed=1))
    shuffled = manifest.sample(frac=1.0, random_state=5)
    again = split_mixed(shuffled, seed=0)
    assert again.loc[manifest.index].equals(first)


def test_a_domain_split_does_not_depend_on_other_domains():
    manifest = make_manifest(COUNTS)
    alone = manifest[manifest["domain"] == "pengqu"]
    assert split_mixed(alone, seed=2).equals(split_mixed(manifest, seed=2)[alone.index])


def test_singleton_class_stays_in_train_with_a_warning(caplog):
    manifest = make_manifest({"yangtze": {"Amp": 1, "Ap": 10}})
    with caplog.at_level(logging.WARNING):
        split = split_mixed(manifest, seed=0)
    assert split[manifest["label"] == "Amp"].tolist() == ["train"]
    assert "1 sample" in caplog.text


def test_leave_one_river_out():
    manifest = make_manifest(COUNTS)
    split = split_cross(manifest, sources=["yangtze", "pengqu"], targets=["yarlung"], seed=0)
    target = manifest["domain"] == "yarlung"
    assert (split[target] == "target").all()
    assert set(split[~target]) == {"train", "val", "test"}
    partial = split_cross(manifest, sources=["yangtze"], targets=["yarlung"], seed=0)
    assert (partial[manifest["domain"] == "pengqu"] == "unused").all()


@pytest.mark.parametrize(
    "sources, targets, message",
    [
        (["yangtze"], ["yangtze"], "both source and target"),
        (["yangtze"], ["amazon"], "unknown domain"),
        ([], ["yarlung"], "at least one source"),
    ],
)
def test_bad_cross_splits_raise(sources, targets, message):
    with pytest.raises(ValueError, match=message):
        split_cross(make_manifest(COUNTS), sources, targets, seed=0)


def test_given_split_maps_val_to_test_and_carves_val():
    manifest = make_manifest({"yangtze": {"Ap": 40}})
    manifest["split"] = np.where(np.arange(40) < 28, "train", "val")
    split = split_from_given(manifest, seed=0)
    assert (split[28:] == "test").all()
    assert (split[:28] != "test").all() and (split[:28] == "val").sum() == 4
