"""The saved-model format of a run directory, owned here: file names, payload keys, format version.

A deep run saves ``model.pt`` (a ``torch.save`` dict of tensors and plain data, read only with
``weights_only=True``); a classical run saves ``model.skops`` (skops' format: no pickle, so loading
runs no code; only the estimator types in ``baselines.predictor.TRUSTED_TYPES`` are rebuilt). Runs
made before that hold ``model.joblib``, a pickle, which is read only when the user says they trust
the run (``--trust-run``). Writers (the deep experiment, ``baselines.experiment``) and readers
(``san.inference.predictors``, ``baselines.predictor``) use these names and checks, so the format
is defined once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEEP_MODEL_FILE = "model.pt"
CLASSICAL_MODEL_FILE = "model.skops"
LEGACY_CLASSICAL_MODEL_FILE = "model.joblib"  # a pickle: loaded only with the user's explicit trust
MODEL_FILES = (DEEP_MODEL_FILE, CLASSICAL_MODEL_FILE, LEGACY_CLASSICAL_MODEL_FILE)
# Version 1 is every model written before the key existed; readers treat a missing key as 1.
FORMAT_VERSION = 1
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


def check_payload(payload: Any, keys: tuple[str, ...], path: Path) -> dict[str, Any]:
    """``payload`` if it is a model dict of this project with ``keys`` and a consistent class list.

    Raises:
        RunLoadError: not a dict with those keys, a newer format version, or an output count that
            differs from the number of class names (the message names ``path``).
    """
    if not isinstance(payload, dict) or any(k not in payload for k in keys):
        found = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
        raise RunLoadError(
            f"{path}: not a model saved by this project (expected keys {list(keys)}, got {found})"
        )
    if (version := payload.get("format_version", 1)) > FORMAT_VERSION:
        raise RunLoadError(
            f"{path}: saved-model format {version} is newer than this code reads ({FORMAT_VERSION}); "
            "update the package"
        )
    if "num_classes" in payload and payload["num_classes"] != len(payload["classes"]):
        raise RunLoadError(
            f"{path}: class list mismatch: the model has {payload['num_classes']} outputs but "
            f"{len(payload['classes'])} class names {payload['classes']}"
        )
    return payload


def model_file(run_dir: Path) -> Path | None:
    """The model file present in ``run_dir`` (deep first), or None."""
    return next((run_dir / name for name in MODEL_FILES if (run_dir / name).is_file()), None)
