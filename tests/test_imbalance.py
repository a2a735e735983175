"""Class imbalance: on-the-fly over/undersampling (deep methods), SMOTE-family pipeline steps (classical)."""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import pytest

from baselines import classical
from baselines.classical import RESAMPLERS, fit_classical, make_pipeline_and_grid
from san.training.engine import TrainingSettings
from san.training.experiment import Experiment, RunRequest, run_experiment
from san.training.sampling import BalancedBatchSampler, class_quotas

LABELS = np.repeat([0, 1, 2], [10, 4, 2])  # 16 samples: the largest class has 5x the smallest


def epoch_counts(sampler: BalancedBatchSampler, epoch: int = 0) -> tuple[Counter, list[list[int]]]:
    sampler.set_epoch(epoch)
    batches = list(sampler)
    return Counter(int(sampler.labels[i]) for batch in batches for i in batch), batches


def test_class_quotas_of_each_mode():
    assert class_quotas(LABELS, "none") == {0: 10, 1: 4, 2: 2}
    assert class_quotas(LABELS, "over") == {0: 10, 1: 10, 2: 10}
    assert class_quotas(LABELS, "under") == {0: 2, 1: 2, 2: 2}
    assert class_quotas(LABELS, "target", 4000) == {0: 4000, 1: 4000, 2: 4000}
    with pytest.raises(ValueError, match="resample_count"):
        class_quotas(LABELS, "target")
    with pytest.raises(ValueError, match="training.resample must be one of"):
        class_quotas(LABELS, "smote")


@pytest.mark.parametrize(
    ("mode", "count", "batch_size", "per_class"),
    [("over", None, 6, 10), ("under", None, 3, 2), ("target", 7, 7, 7)],
)
def test_an_epoch_draws_the_quota_of_every_class(mode, count, batch_size, per_class):
    sampler = BalancedBatchSampler(
        LABELS,
        np.zeros(len(LABELS)),
        batch_size,
        seed=0,
        domain_balanced=False,
        resample=mode,
        resample_count=count,
    )
    assert len(sampler) == 3 * per_class // batch_size and sampler.draws_per_epoch == 3 * per_class
    counts, batches = epoch_counts(sampler)
    assert counts == {0: per_class, 1: per_class, 2: per_class}
    drawn = Counter(i for batch in batches for i in batch)
    for label in (0, 1, 2):  # each sample of a class is drawn as evenly as possible
        times = [drawn[i] for i in np.flatnonzero(np.equal(LABELS, label))]
        assert max(times) - min(times) <= 1
    assert sampler.describe()["draws_per_class"] == {"0": per_class, "1": per_class, "2": per_class}


def test_undersampling_draws_other_samples_in_other_epochs():
    sampler = BalancedBatchSampler(
        LABELS, np.zeros(len(LABELS)), 3, seed=0, domain_balanced=False, resample="under"
    )
    seen = set()
    for epoch in range(6):
        _, batches = epoch_counts(sampler, epoch)
        seen |= {i for batch in batches for i in batch if LABELS[i] == 0}
    assert len(seen) > 2  # the largest class is not cut to the same two samples every epoch


def test_resampling_keeps_every_river_in_every_batch():
    domains = np.array([0, 1] * 8)
    sampler = BalancedBatchSampler(LABELS, domains, 4, seed=2, resample="over")
    _, batches = epoch_counts(sampler)
    assert len(batches) == 30 // 4 + 1
    assert all(set(domains[b]) == {0, 1} for b in batches)


def test_no_resampling_keeps_the_previous_order():
    domains = np.array([0, 1] * 8)
    plain = list(BalancedBatchSampler(LABELS, domains, 4, seed=5))
    assert list(BalancedBatchSampler(LABELS, domains, 4, seed=5, resample="none")) == plain


def test_conflicting_or_incomplete_settings_are_errors():
    with pytest.raises(ValueError, match="choose one"):
        BalancedBatchSampler(LABELS, np.zeros(16), 4, seed=0, class_balanced=True, resample="over")
    with pytest.raises(ValueError, match="resample_count"):
        TrainingSettings(epochs=1, batch_size=4, resample="target")
    with pytest.raises(ValueError, match="training.resample must be one of"):
        TrainingSettings(epochs=1, batch_size=4, resample="smote")


def test_the_run_config_reaches_the_sampler_and_the_record(tmp_path, write_pair_tree):
    write_pair_tree(tmp_path / "tree", "{domain}/{pol}/{label}/{name}", {"PengQu": {"Ap": 8, "Zrn": 3}})
    request = RunRequest(
        method="erm",
        data=str(tmp_path / "tree"),
        seed=0,
        out=str(tmp_path / "runs"),
        overrides=[
            "size=16",
            "epochs=1",
            "batch_size=4",
            "fused_dim=8",
            "resample=target",
            "resample_count=6",
        ],
        wandb_mode="disabled",
        device="cpu",
        progress=False,
    )
    settings = Experiment(request)._settings()
    assert (settings.resample, settings.resample_count) == ("target", 6)
    record = run_experiment(request)
    assert record["config"]["training"]["resample"] == "target"
    assert record["config"]["training"]["resample_count"] == 6


# ------------------------------------------------------------------------------------------ classical


def imbalanced_blobs(rng: np.random.Generator, sizes: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(0.0, 4.0, size=(len(sizes), 6))
    y = np.repeat(np.arange(len(sizes)), sizes)
    return centres[y] + rng.normal(size=(len(y), 6)), y


@pytest.mark.parametrize("resample", [r for r in RESAMPLERS if r != "none"])
def test_each_resampler_is_a_pipeline_step_and_learns(resample):
    rng = np.random.default_rng(0)
    X, y = imbalanced_blobs(rng, (40, 15, 8))
    fitted = fit_classical("knn", X, y, seed=0, cv_folds=3, resample=resample)
    assert fitted.resampling["method"] == resample
    steps = list(fitted.estimator.named_steps)
    assert steps == ["scale", "resample", "model"]
    assert (fitted.estimator.predict(X) == y).mean() > 0.9
    assert len(fitted.estimator.predict(X[:5])) == 5  # nothing is resampled when predicting


class _CountingSMOTE(classical.SMOTE):
    """SMOTE that records how many rows each fit saw."""

    sizes: list[int] = []

    def fit_resample(self, X, y, **params):
        _CountingSMOTE.sizes.append(len(X))
        return super().fit_resample(X, y, **params)


def test_the_resampler_sees_only_training_folds_during_the_search(monkeypatch):
    monkeypatch.setattr(classical, "SMOTE", _CountingSMOTE)
    _CountingSMOTE.sizes = []
    X, y = imbalanced_blobs(np.random.default_rng(1), (30, 12, 9))
    fitted = fit_classical("dt", X, y, seed=0, cv_folds=3, resample="smote")
    sizes = _CountingSMOTE.sizes
    assert len(sizes) == fitted.grid_size * 3 + 1  # one fit per setting and fold, then the refit
    assert sizes.count(len(y)) == 1 and max(sizes[:-1]) <= len(y) - len(y) // 3


def test_small_classes_reduce_k_or_fall_back_with_a_warning(caplog):
    rng = np.random.default_rng(2)
    X, y = imbalanced_blobs(rng, (20, 3))
    with caplog.at_level(logging.WARNING, logger="baselines.classical"):
        fitted = fit_classical("dt", X, y, seed=0, cv_folds=3, resample="smote")
    assert fitted.resampling == {"method": "smote", "k_neighbors": 1} and "reduced to 1" in caplog.text
    X, y = imbalanced_blobs(rng, (20, 2))
    with caplog.at_level(logging.WARNING, logger="baselines.classical"):
        fitted = fit_classical("dt", X, y, seed=0, cv_folds=2, resample="adasyn")
    assert fitted.resampling == {"method": "random-over", "requested": "adasyn"}
    assert "random oversampling instead" in caplog.text


def test_unknown_resampler_is_a_clear_error():
    with pytest.raises(ValueError, match="resample must be one of"):
        make_pipeline_and_grid("svm", resample="smoke")
    pipeline, _ = make_pipeline_and_grid("rf", resample="none")
    assert "resample" not in pipeline.named_steps
