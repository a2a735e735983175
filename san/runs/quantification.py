"""A run's calibration rows for quantification, saved beside its model: ``quantification.npz``.

The rows are posteriors the model gave rows it was not trained on (a classical run: out-of-fold
predictions on its training split; a deep run: its ``val`` split), scaled by a temperature fitted on
those same rows, with their class indices. ``scripts/predict.py`` fits the chosen quantifier on them;
nothing from the test split or a target river is ever saved here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_tools.atomic import atomic_write

QUANTIFICATION_FILE = "quantification.npz"


@dataclass(frozen=True)
class CalibrationRows:
    """Posteriors (N x K, softmax(scores / ``temperature``)), class indices (N), the class names (K),
    where the rows come from, and the quantifier chosen on them (None if none was chosen)."""

    posteriors: np.ndarray
    labels: np.ndarray
    classes: list[str]
    temperature: float
    source: str
    chosen: str | None = None


def save_calibration_rows(run_dir: str | Path, rows: CalibrationRows) -> Path:
    """Write ``quantification.npz`` (plain arrays, no pickle); returns its path."""
    meta = {
        "classes": rows.classes,
        "temperature": rows.temperature,
        "source": rows.source,
        "chosen": rows.chosen,
    }

    def write(path: Path) -> None:
        with open(path, "wb") as handle:  # a handle: np.savez would append ".npz" to a path
            np.savez(handle, posteriors=rows.posteriors, labels=rows.labels, meta=np.array(json.dumps(meta)))

    return atomic_write(Path(run_dir) / QUANTIFICATION_FILE, write)


def load_calibration_rows(run_dir: str | Path) -> CalibrationRows | None:
    """The run's calibration rows, or None when the run has none (made before they were saved).

    Raises:
        ValueError: the file exists but is not one this project wrote (the message names it).
    """
    path = Path(run_dir) / QUANTIFICATION_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as content:
            meta = json.loads(str(content["meta"]))
            rows = CalibrationRows(
                np.asarray(content["posteriors"], dtype=np.float64),
                np.asarray(content["labels"], dtype=np.int64),
                list(meta["classes"]),
                float(meta["temperature"]),
                str(meta["source"]),
                meta.get("chosen"),
            )
    except (OSError, KeyError, ValueError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a calibration-rows file of this project ({error})") from error
    if rows.posteriors.shape != (len(rows.labels), len(rows.classes)):
        raise ValueError(
            f"{path}: posteriors {rows.posteriors.shape} do not fit {len(rows.labels)} labels and "
            f"{len(rows.classes)} classes"
        )
    return rows
