"""Classify an input (an image tree or a manifest) with a trained run and write what a geologist reads.

Output folder:
    predictions.csv   one row per pair: sample, top-3 classes with probabilities, ``uncertain``
                      (top-1 probability below the threshold), every class's probability, the label
    problems.csv      every file that was not predicted, with the reason (unreadable, unpaired, ...)
    assemblage.csv    per sample and mineral: count, %, 95% Wilson interval, the chosen quantifier's
                      % and bootstrap interval (``corrected_*`` columns) and its name
    provenance.csv    per sample: ZTR, GZi, ATi, RZi, MZi with 95% intervals, or why not computable
    assemblage.md     the same as a readable report (with the error against the labels, if any)
    assemblage.png    raw and quantified percentages side by side, with their intervals
    report.html       one page: per sample the chart, tables, indices and the uncertain grains
                      (PPL above XPL thumbnails)
    metrics.json      labelled input only: the shared classification metrics (+ confusion.png)
    summary.json      the run, the settings, the counts and where everything is
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from data_tools.atomic import atomic_write, atomic_write_text
from data_tools.images import ImageDecodeError
from data_tools.inputs import UNLABELLED, PredictionInput, read_prediction_input
from data_tools.manifest import Problem
from data_tools.manifest_io import Dataset
from san.evaluation.metrics import classification_metrics
from san.inference.predictors import Predictor, load_predictor
from san.inference.report import write_assemblage
from san.inference.settings import PredictionSettings
from san.runs.figures import save_confusion_matrix

log = logging.getLogger(__name__)

TOP_K = 3
ASSEMBLAGE_DRAWS = 200
PROBLEM_COLUMNS = ["severity", "kind", "path", "sample_id", "message"]


class StrictInputError(ValueError):
    """``strict`` was asked for and the input has problems (the message lists them)."""


def _prepared_pair(
    predictor: Predictor, dataset: Dataset, record: pd.Series
) -> tuple[np.ndarray, ...] | Problem:
    """Both prepared images of a manifest row, or the problem naming the file that failed."""
    images = []
    for column in ("plane_path", "cross_path"):
        try:
            images.append(predictor.prepare(dataset.path(record[column])))
        except (ImageDecodeError, OSError) as error:
            return Problem("error", "unreadable", str(record[column]), str(error), str(record["sample_id"]))
    return tuple(images)


def predict_dataset_pairs(
    predictor: Predictor, dataset: Dataset, settings: PredictionSettings
) -> tuple[np.ndarray, np.ndarray, list[Problem]]:
    """Probabilities (N x C) of every readable pair, their manifest positions (N), and one problem per
    pair that could not be decoded (the others are still predicted unless ``settings.strict``).

    Raises:
        StrictInputError: a pair cannot be decoded and ``settings.strict`` is set.
    """
    manifest = dataset.manifest
    probabilities, rows, problems = [], [], []
    bar = tqdm(total=len(manifest), desc="predicting", unit="pair", disable=not settings.progress)
    for start in range(0, len(manifest), settings.batch_size):
        planes, crosses, kept = [], [], []
        for row in range(start, min(start + settings.batch_size, len(manifest))):
            pair = _prepared_pair(predictor, dataset, manifest.iloc[row])
            if isinstance(pair, Problem):
                if settings.strict:
                    raise StrictInputError(f"{pair.path}: {pair.message}")
                problems.append(pair)
                continue
            planes.append(pair[0])
            crosses.append(pair[1])
            kept.append(row)
        if kept:
            probabilities.append(
                predictor.predict_pairs(np.stack(planes), np.stack(crosses), tta=settings.tta)
            )
            rows += kept
        bar.update(min(settings.batch_size, len(manifest) - start))
    bar.close()
    empty = np.zeros((0, len(predictor.classes)))
    return (np.concatenate(probabilities) if probabilities else empty), np.asarray(rows, dtype=int), problems


def prediction_table(
    manifest: pd.DataFrame, rows: np.ndarray, probabilities: np.ndarray, classes: list[str], threshold: float
) -> pd.DataFrame:
    """``predictions.csv``: sample_id, sample, paths, label, top-3 classes and probabilities,
    ``uncertain`` (top-1 probability < threshold), then ``prob_<class>`` for every class (rows sum to 1)."""
    chosen = manifest.iloc[rows].reset_index(drop=True)
    table = pd.DataFrame(
        {
            "sample_id": chosen["sample_id"],
            "sample": chosen["domain"],
            "plane_path": chosen["plane_path"],
            "cross_path": chosen["cross_path"],
            "label": chosen["label"],
        }
    )
    order = np.argsort(-probabilities, axis=1, kind="stable")
    for rank in range(min(TOP_K, len(classes))):
        table[f"class_{rank + 1}"] = [classes[i] for i in order[:, rank]]
        table[f"probability_{rank + 1}"] = probabilities[np.arange(len(rows)), order[:, rank]]
    table["uncertain"] = probabilities.max(axis=1, initial=0.0) < threshold
    for i, name in enumerate(classes):
        table[f"prob_{name}"] = probabilities[:, i]
    return table


def label_problems(manifest: pd.DataFrame, classes: list[str]) -> list[Problem]:
    """One problem per label the model does not know (class list mismatch), naming it and its count."""
    labels = manifest["label"][manifest["label"] != UNLABELLED]
    return [
        Problem(
            "warning",
            "unknown_class",
            f"(label {name})",
            f"{count} pair(s) labelled {name!r}, a class the model does not know (its classes: "
            f"{', '.join(classes)}); they are predicted but left out of the metrics",
            "",
        )
        for name, count in labels[~labels.isin(classes)].value_counts(sort=False).items()
    ]


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "input"


def default_output_dir(run_dir: str | Path, input_path: str | Path) -> Path:
    """``RUN_DIR/predict/<input name>``: beside the model, never inside the image tree."""
    return Path(run_dir) / "predict" / _safe_name(Path(input_path).resolve().stem)


@dataclass
class ClassifiedInput:
    """An input read and classified: ``predictions`` (``predictions.csv``'s table, possibly empty),
    ``scored`` (the manifest rows of those pairs, in the same order), every ``problem`` (unreadable
    or unpaired files, unknown labels) and the input as read."""

    inputs: PredictionInput
    predictions: pd.DataFrame
    scored: pd.DataFrame
    problems: list[Problem]


def classify_input(
    predictor: Predictor,
    input_path: str | Path,
    *,
    layout: str | None = None,
    sample: str | None = None,
    settings: PredictionSettings | None = None,
) -> ClassifiedInput:
    """Read an input (an image tree or a manifest) and classify every readable pair; writes nothing.

    Raises:
        FileNotFoundError, data_tools.layout.LayoutError, data_tools.manifest_io.ManifestError: bad input.
        StrictInputError: ``settings.strict`` and the input has problems.
    """
    settings = settings or PredictionSettings()
    inputs: PredictionInput = read_prediction_input(
        input_path, layout=layout, sample=sample, progress=settings.progress
    )
    problems = [p for p in inputs.problems if p.severity == "error"] + label_problems(
        inputs.manifest, predictor.classes
    )
    if settings.strict and problems:
        raise StrictInputError(
            f"{len(problems)} problem(s) in {input_path} (--strict):\n"
            + "\n".join(f"  {p.path}: {p.message}" for p in problems[:20])
        )
    probabilities, rows, decode_problems = predict_dataset_pairs(predictor, inputs.dataset, settings)
    predictions = prediction_table(
        inputs.manifest, rows, probabilities, predictor.classes, settings.threshold
    )
    return ClassifiedInput(inputs, predictions, inputs.manifest.iloc[rows], problems + decode_problems)


def run_prediction(
    run_dir: str | Path,
    input_path: str | Path,
    out_dir: str | Path | None = None,
    *,
    layout: str | None = None,
    sample: str | None = None,
    device: str = "auto",
    settings: PredictionSettings | None = None,
    trust_run: bool = False,
) -> dict[str, Any]:
    """Load a run, classify an input, and write the files listed in the module docstring.

    ``trust_run``: see :func:`san.inference.predictors.load_predictor`.

    Returns:
        The content of ``summary.json``.

    Raises:
        san.inference.predictors.RunLoadError: the run holds no usable model.
        FileNotFoundError, data_tools.layout.LayoutError, data_tools.manifest_io.ManifestError: bad input.
        StrictInputError: ``settings.strict`` and the input has problems.
        ValueError: no pair of the input could be predicted (the problems are still written).
    """
    settings = settings or PredictionSettings()
    predictor = load_predictor(run_dir, device, trust_run=trust_run)
    out = Path(out_dir) if out_dir is not None else default_output_dir(run_dir, input_path)
    classified = classify_input(predictor, input_path, layout=layout, sample=sample, settings=settings)
    inputs, predictions, scored, problems = (
        classified.inputs,
        classified.predictions,
        classified.scored,
        classified.problems,
    )
    out.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(
        [[getattr(p, c) for c in PROBLEM_COLUMNS] for p in problems], columns=PROBLEM_COLUMNS
    )
    atomic_write(out / "problems.csv", lambda tmp: frame.to_csv(tmp, index=False))
    for problem in problems:
        log.warning("not predicted or not scored: %s: %s", problem.path, problem.message)
    if predictions.empty:
        raise ValueError(
            f"{input_path}: no pair could be predicted ({len(problems)} problem(s), listed in "
            f"{out / 'problems.csv'})"
        )
    assemblage = write_assemblage(
        out,
        predictor,
        predictions,
        scored,
        settings,
        labelled=inputs.labelled,
        draws=settings.draws or ASSEMBLAGE_DRAWS,
        load_image=lambda path: predictor.prepare(inputs.dataset.path(path)),
    )
    adapted = assemblage.pop("adapted")
    if len(adapted):
        predictions = predictions.join(adapted)
    atomic_write(
        out / "predictions.csv", lambda tmp: predictions.to_csv(tmp, index=False, float_format="%.6g")
    )
    summary: dict[str, Any] = {
        "model": predictor.describe(),
        "input": str(input_path),
        "layout": inputs.layout,
        "output": str(out),
        "settings": asdict(settings),
        "n_predicted": len(predictions),
        "n_problems": len(problems),
        "n_uncertain": int(predictions["uncertain"].sum()),
        "samples": inputs.samples,
    }
    if inputs.labelled:
        summary["metrics"] = _write_metrics(out, scored, predictions, predictor.classes)
    summary["assemblage"] = assemblage
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary


def _write_metrics(out: Path, scored: pd.DataFrame, predictions: pd.DataFrame, classes: list[str]) -> dict:
    known = scored["label"].isin(classes).to_numpy()
    if not known.any():
        return {"status": "skipped", "reason": "no pair carries a label the model knows"}
    index = {name: i for i, name in enumerate(classes)}
    samples = list(dict.fromkeys(scored["domain"]))
    metrics = classification_metrics(
        scored["label"][known].map(index).to_numpy(),
        predictions["class_1"][known].map(index).to_numpy(),
        classes,
        scored["domain"][known].map({s: i for i, s in enumerate(samples)}).to_numpy(),
        samples,
    )
    summary = {k: metrics[k] for k in ("accuracy", "balanced_accuracy", "macro_f1", "n")}
    if "class_adapted" in predictions:
        # Per grain after EM prior adaptation to its own sample's estimated mix (Saerens et al.).
        adapted = predictions["class_adapted"][known].to_numpy() == scored["label"][known].to_numpy()
        metrics["accuracy_adapted"] = summary["accuracy_adapted"] = float(adapted.mean())
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    save_confusion_matrix(metrics["confusion"], classes, out / "confusion.png", "predicted input")
    return summary
