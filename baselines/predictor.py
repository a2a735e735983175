"""A classical run as a predictor: hand-crafted pair features and the fitted estimator.

The model is read from ``model.skops`` without unpickling (see :func:`load_classical_predictor`).

Registered as the prediction loader of every classical method in :mod:`san.methods`, so that
``san.inference.predictors`` loads classical runs without importing this package.
"""

from __future__ import annotations

import logging
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from data_tools.images import CropMode
from san.evaluation.calibration import log_scores
from san.inference.predictors import Predictor, run_config, run_method
from san.runs.saved_model import (
    CLASSICAL_MODEL_FILE,
    CLASSICAL_PAYLOAD_KEYS,
    LEGACY_CLASSICAL_MODEL_FILE,
    RunLoadError,
    check_payload,
)

log = logging.getLogger(__name__)

# Types our pipelines hold that skops does not trust by default (scikit-learn's estimators, numpy
# and builtins it does): imbalanced-learn's pipeline and resamplers, our ADASYN fallback, the
# calibration, tree, neighbour-search and CV-splitter internals. Nothing that names a function.
TRUSTED_TYPES: tuple[str, ...] = (
    "baselines.classical.AdasynOrSmote",
    "imblearn.over_sampling._random_over_sampler.RandomOverSampler",
    "imblearn.over_sampling._smote.base.SMOTE",
    "imblearn.over_sampling._smote.filter.BorderlineSMOTE",
    "imblearn.pipeline.Pipeline",
    "imblearn.under_sampling._prototype_selection._random_under_sampler.RandomUnderSampler",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.model_selection._split.StratifiedKFold",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.tree._tree.Tree",
)


class ClassicalPredictor(Predictor):
    """A classical run: hand-crafted pair features (``baselines.features``) and the fitted estimator."""

    kind = "classical"

    def __init__(self, run_dir: Path, payload: dict[str, Any], crop: CropMode) -> None:
        super().__init__(
            run_dir,
            run_method(run_dir) or "classical",
            list(payload["classes"]),
            int(payload["hparams"]["feature_size"]),
            crop,
        )
        self.estimator = payload["estimator"]
        self.feature_columns = list(payload["feature_columns"])
        self.trained_classes = [int(c) for c in payload["trained_classes"]]

    def features(self, plane: np.ndarray, cross: np.ndarray) -> np.ndarray:
        """Feature matrix N x F in the run's column order.

        Raises:
            RunLoadError: the run was trained on other columns (e.g. a given feature table).
        """
        from baselines.features import pair_features  # scikit-image only when a classical run is used

        rows = [pair_features(p, c) for p, c in zip(plane, cross, strict=True)]
        if missing := [c for c in self.feature_columns if c not in rows[0]]:
            raise RunLoadError(
                f"{self.run_dir}: the model uses {len(missing)} feature column(s) the images do not give "
                f"(e.g. {', '.join(missing[:3])}); it was trained on a given feature table, so it can only "
                "predict from such a table, not from images"
            )
        return np.array([[row[c] for c in self.feature_columns] for row in rows], dtype=np.float64)

    def scores(self, plane: np.ndarray, cross: np.ndarray) -> np.ndarray:
        partial = self.estimator.predict_proba(self.features(plane, cross))
        full = np.zeros((len(partial), len(self.classes)))
        full[:, self.trained_classes] = partial
        return log_scores(full)


def load_classical_predictor(
    run_dir: str | Path, device: str = "auto", *, trust_run: bool = False
) -> ClassicalPredictor:
    """The classical model of a run; ``device`` is ignored (CPU only).

    ``model.skops`` is read without running code, rebuilding only skops' default types and
    :data:`TRUSTED_TYPES`. A run made before that format holds ``model.joblib``, a pickle that runs
    whatever code it contains when loaded: it is read only with ``trust_run``.

    Raises:
        RunLoadError: the file cannot be read, holds types outside the trusted set, is a pickle and
            ``trust_run`` is off, or is not a model of this project (the message names the file).
    """
    run_dir = Path(run_dir)
    path = run_dir / CLASSICAL_MODEL_FILE
    if path.is_file():
        payload = _load_skops(path)
    else:
        path = run_dir / LEGACY_CLASSICAL_MODEL_FILE
        payload = _load_pickle(path, trust_run)
    crop = run_config(run_dir).get("data", {}).get("crop", "center")
    return ClassicalPredictor(run_dir, check_payload(payload, CLASSICAL_PAYLOAD_KEYS, path), crop)


def _load_skops(path: Path) -> Any:
    import skops.io

    try:
        untrusted = skops.io.get_untrusted_types(file=path)
        if refused := sorted(set(untrusted) - set(TRUSTED_TYPES)):
            raise RunLoadError(
                f"{path}: refused: it would rebuild types this project never saves in a model "
                f"({', '.join(refused)}); a model file from elsewhere may be crafted to misuse them"
            )
        return skops.io.load(path, trusted=untrusted)
    except RunLoadError:
        raise
    except Exception as error:  # skops raises many kinds (zip, JSON, key, type errors) for a bad file
        raise RunLoadError(f"{path}: cannot read the model ({type(error).__name__}: {error})") from error


def _load_pickle(path: Path, trust_run: bool) -> Any:
    if not path.is_file():
        raise RunLoadError(
            f"{path.parent}: no classical model in this run directory ({CLASSICAL_MODEL_FILE})"
        )
    if not trust_run:
        raise RunLoadError(
            f"{path}: refused: this run was saved by an older version as a pickle, and loading a "
            "pickle runs whatever code it holds. If you made this run yourself or trust where it came "
            "from, pass --trust-run (trust_run=True) to load it; retraining writes model.skops, which "
            "loads without running code"
        )
    import joblib

    log.warning("loading the pickled model %s because the run is trusted (--trust-run)", path)
    try:
        return joblib.load(path)
    except (OSError, EOFError, ValueError, ModuleNotFoundError, pickle.UnpicklingError) as error:
        raise RunLoadError(f"{path}: cannot read the model ({error})") from error
