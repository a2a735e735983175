"""A trained run as a predictor: pairs of images in, calibrated class probabilities out.

Everything comes from the run directory, nothing is re-specified: a deep run's ``model.pt`` holds
the method, weights, hyper-parameters, class list, normalisation and input size; a classical
run's ``model.skops`` holds the estimator, class list, feature columns and feature size (its
crop mode is read from ``config.yaml``; its predictor lives in ``baselines.predictor``, found through
the method registry). ``calibration.json``, when present, holds the
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
from data_tools.transforms import ChannelStats, PairTransform, reference_options
from san import methods
from san.evaluation.calibration import TemperatureScaling
from san.inference.tta import pair_views
from san.runs.saved_model import (
    CLASSICAL_MODEL_FILE,
    DEEP_MODEL_FILE,
    DEEP_PAYLOAD_KEYS,
    RunLoadError,
    check_payload,
    model_file,
)
from san.runtime import resolve_device
from san.safe_load import UnsafeFileError, load_plain_torch

log = logging.getLogger(__name__)


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
            self.size,
            ChannelStats.from_dict(payload["normalisation"]),
            train=False,
            **reference_options(payload["data"]),
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


def run_method(run_dir: Path) -> str | None:
    """The method named in a run's record, or None when the run has no record."""
    from san.runs.records import read_record

    record = read_record(run_dir) or {}
    return record.get("method")


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's resolved ``config.yaml`` (empty when absent)."""
    path = run_dir / "config.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else {}


def load_deep_predictor(
    run_dir: str | Path, device: str = "auto", *, trust_run: bool = False
) -> DeepPredictor:
    """The deep model of a run (``model.pt``, read with ``weights_only=True``, so never running code;
    ``trust_run`` changes nothing here: a file holding more than tensors and plain data is refused).

    Raises:
        RunLoadError: the file cannot be read or is not a model of this project.
        ValueError: ``cuda`` requested without a GPU, or an unknown device name.
    """
    path = Path(run_dir) / DEEP_MODEL_FILE
    torch_device = resolve_device(device)
    try:
        payload = load_plain_torch(path, map_location=torch_device, what="model")
    except (UnsafeFileError, FileNotFoundError) as error:
        raise RunLoadError(str(error)) from error
    return DeepPredictor(Path(run_dir), check_payload(payload, DEEP_PAYLOAD_KEYS, path), torch_device)


def load_predictor(run_dir: str | Path, device: str = "auto", *, trust_run: bool = False) -> Predictor:
    """Load the model of a run directory through the loader its method registers (:mod:`san.methods`).

    Args:
        run_dir: a deep run (``model.pt``) or a classical one (``model.skops``).
        device: ``auto``, ``cpu`` or ``cuda`` (deep runs; classical ones run on the CPU).
        trust_run: also load an old classical run's pickled ``model.joblib``, which runs whatever
            code it holds: only for runs the user made or trusts.

    Raises:
        RunLoadError: the directory is missing, holds no model, or the model file is not one of ours
            or does not fit its own class list (the message names the file).
        ValueError: ``cuda`` requested without a GPU, or an unknown device name.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunLoadError(f"run directory {str(run_dir)!r} does not exist")
    found = model_file(run_dir)
    if found is None:
        raise RunLoadError(
            f"{run_dir}: no model in this run directory (expected {DEEP_MODEL_FILE} for a deep run "
            f"or {CLASSICAL_MODEL_FILE} for a classical one; an unfinished run has neither)"
        )
    name = run_method(run_dir)
    if name is None or name not in methods.method_names():
        # A run without a (known) record: the model file says which kind of loader reads it.
        name = methods.method_names(deep=found.name == DEEP_MODEL_FILE)[0]
    load = methods.resolve(methods.get_method(name).predictor)
    predictor: Predictor = load(run_dir, device=device, trust_run=trust_run)
    log.info(
        "loaded %s run %s (%d classes, %d px%s)",
        predictor.method,
        run_dir,
        len(predictor.classes),
        predictor.size,
        f", T = {predictor.calibration.temperature:.3g}" if predictor.calibration else "",
    )
    return predictor
