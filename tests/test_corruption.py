"""Data-quality corruptions: each factor changes exactly its share of the training split, nothing else."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_tools.cache import CachedPairs
from data_tools.corruption import (
    IMAGE_FACTORS,
    CorruptionError,
    QualitySetting,
    corrupt_feature_rows,
    corrupt_pairs,
    corrupt_training,
    degrade,
    flip_labels,
    stratified_subset,
)
from data_tools.manifest_io import load_dataset
from data_tools.splits import split_mixed
from san.runs.config import apply_overrides, read_yaml, resolve_config

# Unequal groups, so that stratification and rounding are exercised.
COUNTS = {"yangtze": {"Ap": 23, "Zrn": 41, "Rt": 9}, "pengqu": {"Ap": 17, "Zrn": 12, "Rt": 30}}
CLASSES = ["Ap", "Rt", "Zrn"]


@pytest.fixture(scope="module")
def run_rows() -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """A manifest, its mixed split and the class index of every row."""
    rows = [
        {"sample_id": f"{d}-{c}-{i}", "domain": d, "label": c}
        for d, classes in COUNTS.items()
        for c, n in classes.items()
        for i in range(n)
    ]
    manifest = pd.DataFrame(rows)
    split = split_mixed(manifest, seed=3)
    labels = manifest["label"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy()
    return manifest, split, labels


def quality(factor: str, level, seed: int = 0) -> dict:
    return {"quality": {"factor": factor, "level": level, "corruption_seed": seed}}


def _outside_train_unchanged(split, labels, corrupted) -> None:
    others = split.to_numpy() != "train"
    assert (corrupted.split.to_numpy()[others] == split.to_numpy()[others]).all()
    assert (corrupted.labels[others] == labels[others]).all()


@pytest.mark.parametrize("level", [0.1, 0.35, 0.6])
def test_label_noise_flips_exactly_its_fraction_of_training_labels_only(run_rows, level):
    manifest, split, labels = run_rows
    corrupted = corrupt_training(manifest, split, labels, quality("label-noise", level), run_seed=1)
    train = np.flatnonzero(split.to_numpy() == "train")
    flipped = np.flatnonzero(corrupted.labels != labels)
    assert len(flipped) == math.floor(level * len(train) + 0.5)
    assert set(flipped) <= set(train) and np.array_equal(flipped, corrupted.changed)
    assert set(corrupted.labels[flipped]) <= set(labels[train])  # flipped to a training class
    assert corrupted.split.equals(split)
    _outside_train_unchanged(split, labels, corrupted)
    described = corrupted.describe()
    assert described["n_changed"] == len(flipped) and described["n_train_after"] == len(train)
    assert described["fraction_changed"] == pytest.approx(level, abs=0.5 / len(train))


@pytest.mark.parametrize("level", [0.1, 0.5, 0.9])
def test_size_keeps_exactly_its_fraction_stratified_by_river_and_class(run_rows, level):
    manifest, split, labels = run_rows
    corrupted = corrupt_training(manifest, split, labels, quality("size", level), run_seed=0)
    train = split.to_numpy() == "train"
    kept = corrupted.split.to_numpy() == "train"
    assert kept.sum() == math.floor(level * train.sum() + 0.5)
    assert not (kept & ~train).any()
    assert (corrupted.split.to_numpy()[train & ~kept] == "unused").all()
    assert np.array_equal(corrupted.labels, labels)
    _outside_train_unchanged(split, labels, corrupted)
    groups = manifest["domain"] + "/" + manifest["label"]
    before = groups[train].value_counts()
    after = groups[kept].value_counts().reindex(before.index, fill_value=0)
    assert (np.abs(after - level * before) < 1.0).all()


def test_class_removal_drops_that_class_from_training_only(run_rows):
    manifest, split, labels = run_rows
    corrupted = corrupt_training(manifest, split, labels, quality("class-removal", "rutile"), run_seed=0)
    rutile = manifest["label"].to_numpy() == "Rt"
    train = split.to_numpy() == "train"
    new = corrupted.split.to_numpy()
    assert (new[rutile & train] == "unused").all()
    assert (new[~(rutile & train)] == split.to_numpy()[~(rutile & train)]).all()
    assert (new[rutile] != "unused").sum() == (~train[rutile]).sum() > 0  # its val/test rows remain
    assert corrupted.describe()["n_changed"] == (rutile & train).sum()


def test_class_removal_of_a_class_without_training_rows_names_the_classes(run_rows):
    manifest, split, labels = run_rows
    with pytest.raises(CorruptionError, match="Ap, Rt, Zrn"):
        corrupt_training(manifest, split, labels, quality("class-removal", "Grt"), run_seed=0)


def test_corruption_is_seeded_and_clean_settings_change_nothing(run_rows):
    manifest, split, labels = run_rows
    config = quality("label-noise", 0.3)
    first = corrupt_training(manifest, split, labels, config, run_seed=0)
    again = corrupt_training(manifest, split, labels, config, run_seed=0)
    other = corrupt_training(manifest, split, labels, config, run_seed=1)
    assert np.array_equal(first.labels, again.labels)
    assert not np.array_equal(first.labels, other.labels)
    for config in (
        {},
        quality("none", None),
        quality("label-noise", 0.0),
        quality("size", 1.0),
        quality("brightness", 1.0),
    ):
        clean = corrupt_training(manifest, split, labels, config, run_seed=0)
        assert clean.split.equals(split) and np.array_equal(clean.labels, labels) and clean.images is None


@pytest.mark.parametrize(
    ("factor", "level"), [("gaussian-noise", 8.0), ("salt-pepper", 0.2), ("brightness", 2.0), ("blur", 1.0)]
)
def test_image_factors_degrade_every_training_image_on_the_fly_and_nothing_else(run_rows, factor, level):
    manifest, split, labels = run_rows
    rng = np.random.default_rng(0)
    plane, cross = (rng.integers(0, 256, size=(len(manifest), 12, 12, 3), dtype=np.uint8) for _ in range(2))
    stored = plane.copy(), cross.copy()
    corrupted = corrupt_training(manifest, split, labels, quality(factor, level), run_seed=0)
    assert corrupted.split.equals(split) and np.array_equal(corrupted.labels, labels)
    pairs = corrupt_pairs(CachedPairs(plane, cross, Path("."), 0), corrupted)
    train = split.to_numpy() == "train"
    for row in range(len(manifest)):
        for seen, original in ((pairs.plane[row], plane[row]), (pairs.cross[row], cross[row])):
            assert seen.dtype == np.uint8 and seen.shape == original.shape
            assert (not np.array_equal(seen, original)) == train[row]
    assert np.array_equal(plane, stored[0]) and np.array_equal(cross, stored[1])  # the store is never written
    rows = np.flatnonzero(train)[:5]
    assert np.array_equal(pairs.plane[rows], np.stack([pairs.plane[int(r)] for r in rows]))  # repeatable
    described = corrupted.describe()
    assert described["images_applied"] is True and described["fraction_changed"] == 1.0


def test_degrade_levels_behave_as_documented():
    rng = np.random.default_rng(1)
    image = rng.integers(40, 216, size=(64, 64, 3), dtype=np.uint8)
    assert np.array_equal(degrade(image, "gaussian-noise", 0.0, rng), image)
    assert np.array_equal(degrade(image, "brightness", 1.0, rng), image)
    darker, brighter = degrade(image, "brightness", 2.0, rng), degrade(image, "brightness", 0.5, rng)
    assert darker.mean() < image.mean() < brighter.mean()
    hit = (degrade(image, "salt-pepper", 0.3, rng) != image).any(axis=2).mean()
    assert hit == pytest.approx(0.3, abs=0.03)
    assert degrade(image, "blur", 2.0, rng).std() < image.std()
    noisy = degrade(image, "gaussian-noise", 16.0, rng).astype(float) - image
    assert noisy.std() == pytest.approx(16.0, rel=0.1)


def test_flip_labels_and_stratified_subset_edge_cases():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="two are needed"):
        flip_labels(np.zeros(10, dtype=int), np.arange(10), 0.5, rng)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        flip_labels(np.arange(10) % 2, np.arange(10), 1.5, rng)
    labels, flipped = flip_labels(np.arange(10) % 2, np.arange(10), 0.0, rng)
    assert len(flipped) == 0 and np.array_equal(labels, np.arange(10) % 2)
    groups = np.repeat(["a", "b", "c"], [7, 2, 1])
    kept = stratified_subset(groups, 0.5, rng)
    assert len(kept) == 5 and len(set(kept)) == 5
    assert np.array_equal(stratified_subset(groups, 1.0, rng), np.arange(10))


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"factor": "fog", "level": 1}, "quality.factor"),
        ({"factor": "size", "level": None}, "needs a quality.level"),
        ({"factor": "size", "level": 0}, r"\(0, 1\]"),
        ({"factor": "label-noise", "level": 1.5}, r"\[0, 1\]"),
        ({"factor": "brightness", "level": "dark"}, "must be a number"),
        ({"factor": "class-removal", "level": 3}, "class name"),
        ({"factor": "size", "level": 0.5, "amount": 2}, "unknown quality key"),
    ],
)
def test_bad_quality_settings_are_clear_errors(section, message):
    with pytest.raises(CorruptionError, match=message):
        QualitySetting.from_config({"quality": section})


def test_base_config_declares_the_quality_section_and_overrides_reach_it():
    base = read_yaml(Path(__file__).resolve().parents[1] / "configs" / "base.yaml")
    assert QualitySetting.from_config(base) == QualitySetting()
    config = apply_overrides(base, ["quality.factor=label-noise", "quality.level=0.2"])
    assert QualitySetting.from_config(config) == QualitySetting("label-noise", 0.2)
    config, _ = resolve_config("svm", overrides=["quality.factor=class-removal", "quality.level=Zrn"])
    assert QualitySetting.from_config(config).level == "Zrn"
    assert set(IMAGE_FACTORS) == {"gaussian-noise", "salt-pepper", "brightness", "blur"}


def test_feature_rows_of_degraded_training_images_are_recomputed_and_no_others(tmp_path, write_pair_tree):
    write_pair_tree(tmp_path, "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 4, "Zrn": 4}})
    dataset = load_dataset(tmp_path, progress=False)
    manifest = dataset.manifest
    split = split_mixed(manifest, seed=0, test_fraction=0.25, val_fraction=0.0)
    labels = (manifest["label"] == "Zrn").to_numpy(int)
    corrupted = corrupt_training(manifest, split, labels, quality("salt-pepper", 0.4), run_seed=0)

    def featurize(plane: np.ndarray, cross: np.ndarray) -> dict[str, float]:
        return {"plane_mean": float(plane.mean()), "cross_mean": float(cross.mean())}

    clean = pd.DataFrame([featurize(np.zeros((2, 2, 3)), np.zeros((2, 2, 3)))] * len(manifest))
    table = corrupt_feature_rows(clean, dataset, corrupted, size=16, crop="center", featurize=featurize)
    train = split.to_numpy() == "train"
    assert (table.loc[train, "plane_mean"] > 0).all()
    assert table.loc[~train].equals(clean.loc[~train])
    assert corrupted.describe()["images_applied"] is True
