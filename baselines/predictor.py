"""A classical run as a predictor: hand-crafted pair features and the fitted estimator.

Registered as the prediction loader of every classical method in :mod:`san.methods`, so that
``san.inference`` loads classical runs without importing this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from data_tools.images import CropMode
from san.evaluation.calibration import log_scores
from san.inference.predictors import Predictor, run_config, run_method
from san.runs.saved_model import CLASSICAL_MODEL_FILE, CLASSICAL_PAYLOAD_KEYS, RunLoadError, check_payload


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


def load_classical_predictor(run_dir: str | Path, device: str = "auto") -> ClassicalPredictor:
    """The classical model of a run (``model.joblib``); ``device`` is ignored (CPU only).

    Raises:
        RunLoadError: the file cannot be read or is not a model of this project.
    """
    import joblib

    run_dir = Path(run_dir)
    path = run_dir / CLASSICAL_MODEL_FILE
    try:
        payload = joblib.load(path)
    except (OSError, EOFError, ValueError, ModuleNotFoundError) as error:
        raise RunLoadError(f"{path}: cannot read the model ({error})") from error
    crop = run_config(run_dir).get("data", {}).get("crop", "center")
    return ClassicalPredictor(run_dir, check_payload(payload, CLASSICAL_PAYLOAD_KEYS, path), crop)
