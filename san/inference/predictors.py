"""A trained run as a predictor: pairs of images in, calibrated class probabilities out.

Everything comes from the run directory, nothing is re-specified: a deep run's ``model.pt`` holds
the method, weights, hyper-parameters, class list, normalisation and input size; a classical
run's ``model.joblib`` holds the estimator, class list, feature columns and feature size (its
crop mode is read from ``config.yaml``). ``calibration.json``, when present, holds the
temperature that scales the scores before the softmax.

Scores are logits for a deep model and log-probabilities for a classical one; both become
probabilities by softmax(scores / T), averaged over the test-time-augmentation views.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from data_tools.images import CropMode, load_prepared
from data_tools.transforms import ChannelStats, PairTransform
from san.evaluation.calibration import TemperatureScaling, log_scores
from san.inference.tta import pair_views
from san.runtime import resolve_device

log = logging.getLogger(__name__)

DEEP_MODEL_FILE = "model.pt"
CLASSICAL_MODEL_FILE = "model.joblib"
DEEP_PAYLOAD_KEYS = (
    "method",
    "state_dict",
    "hparams",
    "num_classes",
    "num_domains",
    "classes",
    "normalisation",
    "data",
)
CLASSICAL_PAYLOAD_KEYS = ("estimator", "classes", "feature_columns", "trained_classes", "hparams")


class RunLoadError(ValueError):
    """A run directory holds no usable model; the message names the directory and what is wrong."""


class Predictor(ABC):
    """A loaded model with its preprocessing.

    Attributes:
        run_dir: the run it was loaded from.
        method: the run's method name.
        classes: the class names, in the order of the probability columns.
        size, crop: how every image is prepared (``load_prepared(path, size, crop)``).
        calibration: the temperature applied to the scores, or None (T = 1).
    """

    kind: str

    def __init__(self, run_dir: Path, method: str, classes: list[str], size: int, crop: CropMode) -> None:
        self.run_dir, self.method, self.classes, self.size, self.crop = run_dir, method, classes, size, crop
        self.calibration = TemperatureScaling.load(run_dir)

    def prepare(self, path: str | Path) -> np.ndarray:
        """One image decoded, cropped and resized as in training (size x size x 3 uint8).

        Raises:
            data_tools.images.ImageDecodeError: the file cannot be decoded (the message names it).
        """
        return load_prepared(path, self.size, self.crop)

    @abstractmethod
    def scores(self, plane: np.ndarray, cross: np.ndarray) -> np.ndarray:
        """Uncalibrated scores N x C (logits or log-probabilities) of N prepared pairs (N x S x S x 3)."""

    def predict_pairs(self, plane: np.ndarray, cross: np.ndarray, *, tta: bool = False) -> np.ndarray:
        """Class probabilities N x C of N prepared pairs: softmax(scores / T), averaged over the eight
        flips and rotations (applied to both images alike) when ``tta``.

        Raises:
            ValueError: the two stacks differ in shape or are not N x S x S x 3.
        """
        if plane.ndim != 4 or plane.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"expected prepared pairs N x {self.size} x {self.size} x 3, got {plane.shape}")
        scaling = self.calibration or TemperatureScaling(1.0, "none")
        views = [scaling.apply(self.scores(p, c)) for p, c in pair_views(plane, cross, tta)]
        return np.mean(views, axis=0)

    def describe(self) -> dict[str, Any]:
        """Facts for a prediction summary: run, method, kind, classes, input size, temperature."""
        return {
            "run_dir": str(self.run_dir),
            "method": self.method,
            "kind": self.kind,
            "classes": self.classes,
            "size": self.size,
            "crop": self.crop,
            "temperature": self.calibration.temperature if self.calibration else None,
        }


class DeepPredictor(Predictor):
    """A deep run (SAN, ERM, CNN baselines): the registered algorithm rebuilt and loaded, in eval mode."""

    kind = "deep"

    def __init__(self, run_dir: Path, payload: dict[str, Any], device: torch.device) -> None:
        super().__init__(
            run_dir,
            payload["method"],
            list(payload["classes"]),
            int(payload["data"]["size"]),
            payload["data"]["crop"],
        )
        import baselines  # noqa: F401 - registers the CNN baselines by name
        from san.algorithms.registry import build_algorithm

        # The saved weights replace any initialisation: never download or read backbone weights here.
        hparams = {**payload["hparams"], "pretrained": False, "weights": None}
        self.algorithm = build_algorithm(
            payload["method"], payload["num_classes"], payload["num_domains"], hparams
        )
        try:
            self.algorithm.load_state_dict(payload["state_dict"])
        except RuntimeError as error:
            raise RunLoadError(
                f"{run_dir / DEEP_MODEL_FILE}: the weights do not fit the {payload['method']} "
                f"network its hyper-parameters describe ({error})"
            ) from error
        self.algorithm.to(device).eval()
        self.device = device
        self.transform = PairTransform(
            self.size, ChannelStats.from_dict(payload["normalisation"]), train=False
        )

    def batch(self, plane: np.ndarray, cross: np.ndarray) -> dict[str, torch.Tensor]:
        """The model's input batch of N prepared pairs: normalised ``plane`` and ``cross`` N x 3 x S x S."""
        tensors = [self.transform(p, c) for p, c in zip(plane, cross, strict=True)]
        return {
            "plane": torch.stack([t[0] for t in tensors]).to(self.device),
            "cross": torch.stack([t[1] for t in tensors]).to(self.device),
        }

    @torch.no_grad()
    def scores(self, plane: np.ndarray, cross: np.ndarray) -> np.ndarray:
        return self.algorithm.predict(self.batch(plane, cross)).float().cpu().numpy().astype(np.float64)

    @torch.no_grad()
    def features(self, plane: np.ndarray, cross: np.ndarray) -> np.ndarray:
        """The features the class head sees (N x d; the fused features of the pair networks)."""
        return self.algorithm.features(self.batch(plane, cross)).float().cpu().numpy()


class ClassicalPredictor(Predictor):
    """A classical run: hand-crafted pair features (``baselines.features``) and the fitted estimator."""

    kind = "classical"

    def __init__(self, run_dir: Path, payload: dict[str, Any], crop: CropMode) -> None:
        super().__init__(
            run_dir,
            _method_of(run_dir),
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


def _method_of(run_dir: Path) -> str:
    from san.runs.records import read_record

    record = read_record(run_dir) or {}
    return str(record.get("method", "classical"))


def _run_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _check_payload(payload: Any, keys: tuple[str, ...], path: Path) -> dict[str, Any]:
    if not isinstance(payload, dict) or any(k not in payload for k in keys):
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise RunLoadError(
            f"{path}: not a model saved by this project (expected keys {list(keys)}, got {found})"
        )
    if "num_classes" in payload and payload["num_classes"] != len(payload["classes"]):
        raise RunLoadError(
            f"{path}: class list mismatch: the model has {payload['num_classes']} outputs but "
            f"{len(payload['classes'])} class names {payload['classes']}"
        )
    return payload


def load_predictor(run_dir: str | Path, device: str = "auto") -> Predictor:
    """Load the model of a run directory.

    Args:
        run_dir: a deep run (``model.pt``) or a classical one (``model.joblib``).
        device: ``auto``, ``cpu`` or ``cuda`` (deep runs; classical ones run on the CPU).

    Raises:
        RunLoadError: the directory is missing, holds no model, or the model file is not one of ours
            or does not fit its own class list (the message names the file).
        ValueError: ``cuda`` requested without a GPU, or an unknown device name.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunLoadError(f"run directory {str(run_dir)!r} does not exist")
    deep, classical = run_dir / DEEP_MODEL_FILE, run_dir / CLASSICAL_MODEL_FILE
    if deep.is_file():
        torch_device = resolve_device(device)
        try:
            payload = torch.load(deep, map_location=torch_device, weights_only=True)
        except (RuntimeError, OSError, EOFError) as error:  # pickle errors surface as RuntimeError here
            raise RunLoadError(f"{deep}: cannot read the model ({error})") from error
        predictor: Predictor = DeepPredictor(
            run_dir, _check_payload(payload, DEEP_PAYLOAD_KEYS, deep), torch_device
        )
    elif classical.is_file():
        import joblib

        try:
            payload = joblib.load(classical)
        except (OSError, EOFError, ValueError, ModuleNotFoundError) as error:
            raise RunLoadError(f"{classical}: cannot read the model ({error})") from error
        crop = _run_config(run_dir).get("data", {}).get("crop", "center")
        predictor = ClassicalPredictor(
            run_dir, _check_payload(payload, CLASSICAL_PAYLOAD_KEYS, classical), crop
        )
    else:
        raise RunLoadError(
            f"{run_dir}: no model in this run directory (expected {DEEP_MODEL_FILE} for a deep run "
            f"or {CLASSICAL_MODEL_FILE} for a classical one; an unfinished run has neither)"
        )
    log.info(
        "loaded %s run %s (%d classes, %d px%s)",
        predictor.method,
        run_dir,
        len(predictor.classes),
        predictor.size,
        f", T = {predictor.calibration.temperature:.3g}" if predictor.calibration else "",
    )
    return predictor
