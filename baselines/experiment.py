"""A classical run (svm, rf, knn, dt, cart) through the same context as the deep methods:
same data opening, protocol, split, metrics, figures and run record.

Features come from the images (``baselines.features``, cached) or from a given feature table
(``--features``, then no images are needed). Hyper-parameters are chosen by grid search with
stratified folds inside the training split only.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import skops.io

from baselines.classical import METHODS, fit_classical
from baselines.feature_table import feature_columns, read_feature_table
from baselines.features import extract_features, pair_features
from data_tools.atomic import atomic_write
from data_tools.corruption import corrupt_feature_rows
from data_tools.manifest_io import Dataset
from san.runs.config import ConfigError
from san.runs.lifecycle import RunContext, RunRequest, open_request_data, resolve_run_config
from san.runs.saved_model import CLASSICAL_MODEL_FILE, FORMAT_VERSION

log = logging.getLogger(__name__)

CLASSICAL_HPARAMS: dict[str, Any] = {
    "class_weight": None,  # None or 'balanced'
    "cv_folds": 5,  # stratified folds of the grid search (reduced for tiny classes)
    "feature_size": None,  # images are prepared at this side before feature extraction; None = data.size,
    # the deep models' input side, so that one comparison has one input size
    "n_jobs": 1,  # parallel fits in the grid search
    "scoring": "accuracy",  # scikit-learn scorer that ranks the grid's settings
    "resample": "none",  # none|smote|borderline-smote|adasyn|random-over|random-under, inside the CV folds
}


def classical_hparams(method: str) -> dict[str, Any]:
    """The default hyper-parameters of a classical method (the same for all five)."""
    return dict(CLASSICAL_HPARAMS)


def _open(request: RunRequest) -> tuple[Dataset, bool, Any]:
    """The data (a manifest, or the feature table's rows), whether synthetic, and the given features."""
    if request.features:
        table = read_feature_table(request.features)
        return Dataset(manifest=table, root=Path(request.features).parent), False, table
    dataset, synthetic = open_request_data(request)
    return dataset, synthetic, None


def _hparams(config: dict[str, Any]) -> dict[str, Any]:
    if unknown := sorted(set(config["hparams"]) - set(CLASSICAL_HPARAMS)):
        raise ConfigError(
            f"unknown hparam(s) {unknown} for a classical method; known: {sorted(CLASSICAL_HPARAMS)}"
        )
    hparams = {**CLASSICAL_HPARAMS, **config["hparams"]}
    hparams["feature_size"] = int(hparams["feature_size"] or config["data"]["size"])
    return hparams


def _full_probabilities(
    estimator: Any, trained_classes: list[int], features: np.ndarray, n_classes: int
) -> np.ndarray:
    """predict_proba with a column for every class (zeros for classes absent from training)."""
    partial = estimator.predict_proba(features)
    full = np.zeros((len(features), n_classes))
    full[:, trained_classes] = partial
    return full


def _out_of_fold(
    context: RunContext, fitted: Any, features: np.ndarray, trained_classes: list[int]
) -> tuple[np.ndarray, np.ndarray, str] | None:
    """Calibration rows for the quantifiers: out-of-fold probabilities of the tuned estimator on the
    training split (the search's own stratified folds), so the misclassification rates come from
    every training row and never from test or target rows; (probabilities, manifest rows, source),
    or None when the folds cannot be fitted (the run then calibrates the quantifiers on ``val``)."""
    from sklearn.base import clone
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    train = context.rows("train")
    folds = StratifiedKFold(n_splits=fitted.cv_folds, shuffle=True, random_state=context.request.seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a class smaller than the folds: sklearn copes
            partial = cross_val_predict(
                clone(fitted.estimator),
                features[train],
                context.labels[train],
                cv=folds,
                method="predict_proba",
            )
    except ValueError as error:  # e.g. a class too small for the probability calibration inside a fold
        log.warning("out-of-fold predictions failed (%s): the quantifiers are calibrated on val", error)
        return None
    oof = np.zeros((len(train), len(context.class_names)))
    oof[:, trained_classes] = partial
    return (
        oof,
        train,
        f"out-of-fold predictions on the train split ({fitted.cv_folds}-fold, training rivers only)",
    )


def run_classical_experiment(request: RunRequest) -> dict[str, Any]:
    """Train and evaluate a classical method; returns the run record (also written to disk).

    Raises:
        ValueError: unknown method. ConfigError: unknown hyper-parameter. UsageError: unknown river or class.
    """
    if request.method not in METHODS:
        raise ValueError(f"unknown classical method {request.method!r}; expected one of {', '.join(METHODS)}")
    config = resolve_run_config(request, False, CLASSICAL_HPARAMS)  # a bad --set fails before the data load
    dataset, synthetic, given = _open(request)
    context = RunContext(
        request,
        dataset,
        synthetic=synthetic,
        use_cpu_preset=False,
        hparam_defaults=CLASSICAL_HPARAMS,
        resolved_config=config,
    )
    hparams = _hparams(context.config)
    facts = context.training_class_facts()
    started = time.perf_counter()
    if given is not None:
        table = context.manifest
    else:
        table = extract_features(
            context.manifest,
            context.dataset.root,
            size=hparams["feature_size"],
            crop=context.config["data"]["crop"],
            progress=request.progress,
        )
    if context.corruption.images is not None:  # a data-quality study degrading training images
        if given is not None:
            raise ConfigError(
                "image quality factors degrade images; a given feature table (--features) has none"
            )
        table = corrupt_feature_rows(
            table,
            context.dataset,
            context.corruption,
            size=hparams["feature_size"],
            crop=context.config["data"]["crop"],
            featurize=pair_features,
            progress=request.progress,
        )
    columns = feature_columns(table)
    features = table[columns].to_numpy(dtype=np.float64)
    feature_seconds = time.perf_counter() - started

    with context.tracked(tags=["classical"]):
        train = context.rows("train")
        fit_start = time.perf_counter()
        fitted = fit_classical(
            request.method,
            features[train],
            context.labels[train],
            seed=request.seed,
            class_weight=hparams["class_weight"],
            cv_folds=hparams["cv_folds"],
            n_jobs=hparams["n_jobs"],
            scoring=hparams["scoring"],
            resample=hparams["resample"],
            class_names=context.class_names,
        )
        fit_seconds = time.perf_counter() - fit_start
        trained_classes = [int(c) for c in fitted.classes]
        probabilities_by_split = {}
        for split in context.evaluated_splits():
            rows = context.rows(split)
            probabilities = _full_probabilities(
                fitted.estimator, trained_classes, features[rows], len(context.class_names)
            )
            probabilities_by_split[split] = (probabilities, rows)
        selection = {
            "rule": f"GridSearchCV, {fitted.cv_folds}-fold stratified within the training split "
            f"(training rivers only), scored by {hparams['scoring']}",
            "best_params": fitted.best_params,
            "cv_score": fitted.cv_score,
            "grid_size": fitted.grid_size,
            "cv_left_out": [context.class_names[int(c)] for c in fitted.cv_left_out],
        }
        timing = {"feature_seconds": round(feature_seconds, 2), "train_seconds": round(fit_seconds, 2)}
        extras = {
            **facts,
            "n_features": len(columns),
            "feature_source": request.features or "extracted",
            "param_grid": fitted.param_grid,
            "hparams": hparams,
            "resampling": fitted.resampling,
        }
        payload = {
            "format_version": FORMAT_VERSION,
            "estimator": fitted.estimator,
            "classes": context.class_names,
            "feature_columns": columns,
            "trained_classes": trained_classes,
            "hparams": hparams,
        }

        def save_artifacts(run_dir: Path) -> None:
            atomic_write(run_dir / CLASSICAL_MODEL_FILE, lambda tmp: skops.io.dump(payload, tmp))

        return context.conclude(
            probabilities_by_split,
            selection,
            timing,
            extras,
            save_artifacts,
            calibration_rows=_out_of_fold(context, fitted, features, trained_classes),
        )
