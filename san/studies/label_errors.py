"""Likely label errors: out-of-fold probabilities within each river, ranked by confident learning.

Within each river, the rows outside the test split of a mixed split (train + val) are cut into
stratified folds; a model fitted on the other folds predicts each fold, so every row's probabilities
come from a model that never saw its label. cleanlab's ``find_label_issues`` (confident learning,
Northcutt et al.) then flags the rows whose given label is unlikely, ranked by self-confidence (the
out-of-fold probability of the given label, lowest first). The test split is never looked at.

To measure the finder, ``plant`` flips a fraction of the examined labels on purpose
(:func:`data_tools.corruption.flip_labels`); :func:`planted_scores` then says how many flips the top
of the ranking holds.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sklearn.model_selection import StratifiedKFold

from data_tools.corruption import flip_labels
from data_tools.images import load_prepared
from data_tools.manifest_io import Dataset
from data_tools.names import ordered_classes, ordered_domains
from data_tools.plotting import save_figure, subplots
from data_tools.splits import split_mixed

log = logging.getLogger(__name__)

FoldModel = Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
"""``fit_predict(train_rows, train_labels, predict_rows, seed) -> probabilities``: rows are manifest
positions, labels class indices; the result has one row per ``predict_rows`` and one column per class."""
Fit = Callable[[np.ndarray, np.ndarray, int], Any]
"""``fit(X, y, seed) -> estimator`` with ``predict_proba`` and ``classes_`` (scikit-learn style)."""

ISSUES_FILE = "label_issues.csv"
SHEET_FILE = "label_issues_review.png"


def classifier_fold_model(features: np.ndarray, fit: Fit, n_classes: int) -> FoldModel:
    """A FoldModel fitting a scikit-learn-style classifier on rows of a feature matrix (one row per
    manifest row); classes absent from a fold's training rows get probability 0, and a fold whose
    training rows hold a single class predicts that class (no classifier can be fitted)."""

    def fit_predict(train: np.ndarray, labels: np.ndarray, predict: np.ndarray, seed: int) -> np.ndarray:
        probabilities = np.zeros((len(predict), n_classes))
        if len(np.unique(labels)) == 1:
            probabilities[:, labels[0]] = 1.0
            return probabilities
        estimator = fit(features[train], labels, seed)
        trained = np.asarray(estimator.classes_, dtype=int)
        probabilities[:, trained] = estimator.predict_proba(features[predict])
        return probabilities

    return fit_predict


def erm_fold_model(
    dataset: Dataset, config: Mapping[str, Any], n_classes: int, device: str = "cpu"
) -> FoldModel:
    """A FoldModel training the ERM network (the run config's ``hparams``, ``training`` and ``data``
    sections) from scratch on each fold's rows, without validation (the last epoch is kept)."""
    import torch  # imported only for the deep finder

    from data_tools.cache import PairImageCache
    from data_tools.dataset import PairedGrainDataset
    from data_tools.transforms import AugmentationConfig, PairTransform, channel_stats, reference_options
    from san.algorithms.registry import build_algorithm
    from san.runtime import seed_everything
    from san.training.engine import Trainer, TrainingSettings, predict_dataset

    size, crop = config["data"]["size"], config["data"]["crop"]
    pairs = PairImageCache().load(dataset, size, crop, progress=False)
    training = {
        k: v for k, v in config["training"].items() if k not in ("class_weighted_loss", "deterministic")
    }
    settings = TrainingSettings(**{**training, "num_workers": 0, "domain_balanced": False, "patience": None})
    augmentation = AugmentationConfig.from_mapping(config["augmentation"])
    reference = reference_options(config["data"])
    domains = np.zeros(len(dataset.manifest), dtype=np.int64)  # one river at a time
    target = torch.device(device)

    def fit_predict(train: np.ndarray, labels: np.ndarray, predict: np.ndarray, seed: int) -> np.ndarray:
        seed_everything(seed, config["training"]["deterministic"])
        all_labels = np.full(len(dataset.manifest), -1, dtype=np.int64)
        all_labels[train] = labels
        stats = channel_stats(pairs.plane, pairs.cross, train, **reference)
        augment = PairTransform(size, stats, train=True, augmentation=augmentation, seed=seed, **reference)
        train_data = PairedGrainDataset(pairs, train, all_labels, domains, augment)
        algorithm = build_algorithm("erm", n_classes, 1, dict(config["hparams"])).to(target)
        with tempfile.TemporaryDirectory() as scratch:
            Trainer(
                algorithm,
                train_data,
                None,
                settings,
                seed=seed,
                device=target,
                run_dir=Path(scratch),
                class_names=[str(c) for c in range(n_classes)],
                progress=False,
            ).fit()
        evaluation = PairTransform(size, stats, train=False, **reference)
        predicted = PairedGrainDataset(pairs, predict, all_labels, domains, evaluation)
        probabilities, _ = predict_dataset(algorithm, predicted, target, settings.eval_batch_size)
        return probabilities  # predict_dataset keeps the dataset's order

    return fit_predict


def out_of_fold_probabilities(
    rows: np.ndarray, labels: np.ndarray, n_classes: int, model: FoldModel, *, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Class probabilities of every row from a model fitted on the other stratified folds.

    Args:
        rows: manifest positions; labels: their class indices.
        folds: requested folds, reduced (with a warning) so that the largest class fills each fold.

    Returns:
        len(rows) x n_classes probabilities.

    Raises:
        ValueError: fewer than 2 rows per fold would be possible.
    """
    rows, labels = np.asarray(rows), np.asarray(labels)
    largest = np.bincount(labels).max()
    n_folds = int(min(folds, largest))
    if n_folds < 2:
        raise ValueError(f"{len(rows)} row(s), at most {largest} per class: cross-validation needs two folds")
    if n_folds < folds:
        log.warning("largest class has %d rows: %d folds instead of %d", largest, n_folds, folds)
    probabilities = np.zeros((len(rows), n_classes))
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fold, (fit_part, held_out) in enumerate(splitter.split(rows, labels)):
        probabilities[held_out] = model(rows[fit_part], labels[fit_part], rows[held_out], seed + fold)
    return probabilities


@dataclass
class LabelErrorResult:
    """The examined rows and what the finder says about them.

    ``table`` has one row per examined pair: ``row`` (manifest position), ``sample_id``, ``domain``,
    ``given`` (the label examined, after any planted flip), ``original`` (the manifest's label),
    ``suggested`` (the most probable class out of fold), ``self_confidence``, ``flagged`` (a cleanlab
    label issue), ``planted`` (flipped on purpose) and ``rank`` (1 = most suspect: flagged rows first in
    cleanlab's self-confidence order, then the others by self-confidence).
    """

    table: pd.DataFrame
    classes: list[str]

    @property
    def suspects(self) -> pd.DataFrame:
        """The flagged rows in rank order."""
        return self.table[self.table["flagged"]].sort_values("rank")


def _river_issues(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cleanlab on one river's classes: (flagged indices ranked by self-confidence, self-confidence)."""
    present = np.unique(labels)
    local = np.searchsorted(present, labels)
    restricted = probabilities[:, present]
    restricted = restricted / np.clip(restricted.sum(axis=1, keepdims=True), 1e-12, None)
    ranked = find_label_issues(local, restricted, return_indices_ranked_by="self_confidence", n_jobs=1)
    scores = get_label_quality_scores(local, restricted, method="self_confidence")
    return np.asarray(ranked, dtype=np.int64), scores


def find_label_errors(
    manifest: pd.DataFrame,
    model: FoldModel,
    *,
    seed: int = 0,
    folds: int = 5,
    data_config: Mapping[str, Any] | None = None,
    plant: float = 0.0,
    plant_seed: int = 0,
) -> LabelErrorResult:
    """Flag likely label errors among the non-test rows of every river.

    Args:
        manifest: one row per pair (``sample_id``, ``domain``, ``label``).
        model: fits on some rows and predicts others (:func:`classifier_fold_model`, :func:`erm_fold_model`).
        seed: seeds the mixed split and the folds.
        data_config: ``test_fraction`` and ``val_fraction`` of the split (default 0.3 and 0.15).
        plant: fraction of each river's examined labels flipped on purpose first (0: none).
        plant_seed: seeds the planted flips.

    Returns:
        The examined rows with their self-confidence, suggestion, flag and rank.

    Raises:
        ValueError: a river holds too few rows for two folds, or no river holds two classes.
    """
    data_config = data_config or {}
    split = split_mixed(
        manifest,
        seed,
        test_fraction=data_config.get("test_fraction", 0.3),
        val_fraction=data_config.get("val_fraction", 0.15),
    )
    classes = ordered_classes(manifest["label"])
    original = manifest["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(int)
    given, planted = original.copy(), np.empty(0, dtype=np.int64)
    examined = np.flatnonzero(split.isin(["train", "val"]).to_numpy())
    rng = np.random.default_rng(plant_seed)
    parts = []
    for river in ordered_domains(manifest["domain"]):
        rows = examined[manifest["domain"].to_numpy()[examined] == river]
        if plant > 0:
            given, flipped = flip_labels(given, rows, plant, rng)
            planted = np.concatenate([planted, flipped])
        if len(np.unique(given[rows])) < 2:
            log.warning("river %s has fewer than two classes outside its test split: skipped", river)
            continue
        probabilities = out_of_fold_probabilities(
            rows, given[rows], len(classes), model, folds=folds, seed=seed
        )
        ranked, scores = _river_issues(given[rows], probabilities)
        flagged = np.zeros(len(rows), dtype=bool)
        flagged[ranked] = True
        parts.append(
            pd.DataFrame(
                {
                    "row": rows,
                    "sample_id": manifest["sample_id"].to_numpy()[rows],
                    "domain": river,
                    "given": [classes[i] for i in given[rows]],
                    "original": [classes[i] for i in original[rows]],
                    "suggested": [classes[i] for i in probabilities.argmax(axis=1)],
                    "self_confidence": scores,
                    "flagged": flagged,
                }
            )
        )
    if not parts:
        raise ValueError("no river holds two classes outside its test split: nothing to cross-validate")
    table = pd.concat(parts, ignore_index=True)
    table["planted"] = table["row"].isin(planted)
    keys = (table["sample_id"].to_numpy(), table["self_confidence"].to_numpy(), ~table["flagged"].to_numpy())
    order = np.lexsort(keys)
    table["rank"] = 0
    table.loc[table.index[order], "rank"] = np.arange(1, len(table) + 1)
    return LabelErrorResult(table.sort_values("rank", ignore_index=True), classes)


def planted_scores(result: LabelErrorResult, k: int | None = None) -> dict[str, float]:
    """How well the ranking finds the planted flips.

    Returns:
        ``planted``, ``k`` (default: the number planted), ``found_at_k``, ``precision_at_k`` and
        ``recall_at_k`` over the top-k ranked rows, and ``flagged``, ``precision_flagged``,
        ``recall_flagged`` over cleanlab's flagged set.

    Raises:
        ValueError: nothing was planted.
    """
    table = result.table
    planted = int(table["planted"].sum())
    if planted == 0:
        raise ValueError("no label was planted (use plant > 0): nothing to score")
    k = planted if k is None else k
    found = int(table.loc[table["rank"] <= k, "planted"].sum())
    flagged = table["flagged"]
    found_flagged = int((flagged & table["planted"]).sum())
    return {
        "planted": planted,
        "k": k,
        "found_at_k": found,
        "precision_at_k": found / k,
        "recall_at_k": found / planted,
        "flagged": int(flagged.sum()),
        "precision_flagged": found_flagged / max(1, int(flagged.sum())),
        "recall_flagged": found_flagged / planted,
    }


def save_issues_csv(result: LabelErrorResult, path: str | Path) -> Path:
    """Write the flagged rows (sample_id, domain, given, suggested, self_confidence, rank, and original and
    planted when flips were planted) as a CSV; returns its path."""
    columns = ["sample_id", "domain", "given", "suggested", "self_confidence", "rank"]
    if result.table["planted"].any():
        columns += ["original", "planted"]
    result.suspects[columns].to_csv(path, index=False, float_format="%.6g")
    return Path(path)


def save_review_sheet(
    result: LabelErrorResult,
    dataset: Dataset,
    path: str | Path,
    *,
    top: int = 24,
    size: int = 128,
    per_row: int = 4,
) -> Path | None:
    """A PNG of the ``top`` flagged pairs, each as PPL | XPL titled with its rank, sample, given and
    suggested label and self-confidence; returns its path (None when nothing is flagged)."""
    suspects = result.suspects.head(top)
    if suspects.empty:
        return None
    lines = -(-len(suspects) // per_row)
    figure, axes = subplots(lines, 2 * per_row, figsize=(2.0 * 2 * per_row, 2.3 * lines), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    manifest = dataset.manifest
    for i, suspect in enumerate(suspects.itertuples()):
        line, column = divmod(i, per_row)
        plane_axis, cross_axis = axes[line, 2 * column], axes[line, 2 * column + 1]
        for axis, path_column in ((plane_axis, "plane_path"), (cross_axis, "cross_path")):
            axis.imshow(load_prepared(dataset.path(manifest[path_column].iloc[suspect.row]), size))
        mark = " (planted)" if suspect.planted else ""
        plane_axis.set_title(
            f"#{suspect.rank} {suspect.sample_id}{mark}\n{suspect.given} -> "
            f"{suspect.suggested} (p={suspect.self_confidence:.2f})",
            fontsize=7,
            loc="left",
            color="tab:red" if suspect.planted else "black",
        )
        cross_axis.set_title("XPL", fontsize=7)
    figure.suptitle(f"likely label errors: PPL | XPL, given -> suggested (top {len(suspects)})", fontsize=9)
    return save_figure(figure, path, dpi=100)
