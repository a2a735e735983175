"""The assemblage of each predicted sample: ``assemblage.csv``, a Markdown report and a bar chart.

The correction uses the confusion counts of the run's in-domain ``test`` split from its
``results.json``; a labelled input gives each sample's true composition, so the report also says how
far the raw and corrected percentages are from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_tools.atomic import atomic_write, atomic_write_text
from data_tools.inputs import UNLABELLED
from san.inference.assemblage import assemblage_table, composition_error, confusion_rates
from san.inference.figures import save_assemblage_chart
from san.inference.predictors import Predictor
from san.inference.settings import PredictionSettings
from san.runs.records import read_record

CORRECTION_SPLIT = "test"


def in_domain_confusion(predictor: Predictor) -> tuple[np.ndarray | None, str]:
    """The run's in-domain test confusion counts (``classes`` order) and a note saying where they come
    from, or (None, why not)."""
    record = read_record(predictor.run_dir)
    if record is None or CORRECTION_SPLIT not in record.get("metrics", {}):
        return None, f"no correction: the run has no {CORRECTION_SPLIT!r} metrics in results.json"
    if list(record["classes"]) != predictor.classes:
        return None, (
            f"no correction: the record's classes {record['classes']} differ from the model's "
            f"{predictor.classes}"
        )
    confusion = np.asarray(record["metrics"][CORRECTION_SPLIT]["confusion"], dtype=np.int64)
    condition = np.linalg.cond(confusion_rates(confusion)[0])
    return confusion, (
        f"confusion matrix of the run's in-domain {CORRECTION_SPLIT} split "
        f"(n = {int(confusion.sum())}), inverted by non-negative least squares (condition number "
        f"{condition:.3g}: the larger, the less stable the correction)"
    )


def sample_assemblages(
    predictions: pd.DataFrame, classes: Sequence[str], confusion: np.ndarray | None, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """The assemblage table of every sample of ``predictions`` (``predictions.csv``'s columns
    ``sample`` and ``class_1``), in order of appearance; ``confusion`` corrects them (None: no
    correction); ``seed`` drives the bootstrap of the corrected intervals.

    Raises:
        ValueError: a column is missing, or a predicted class is not among ``classes``.
    """
    if missing := [c for c in ("sample", "class_1") if c not in predictions.columns]:
        raise ValueError(f"the predictions lack the column(s) {', '.join(missing)} (see predictions.csv)")
    rng = np.random.default_rng(seed)
    return {
        sample: assemblage_table(
            predictions["class_1"][(predictions["sample"] == sample).to_numpy()].tolist(),
            classes,
            confusion,
            rng,
            sample=sample,
        )
        for sample in dict.fromkeys(predictions["sample"])
    }


def _markdown_table(table: pd.DataFrame) -> list[str]:
    lines = [
        "| Mineral | Count | % | 95% interval | Corrected % | 95% interval |",
        "|---|---:|---:|---|---:|---|",
    ]
    for row in table.itertuples():
        corrected = (
            ("n/a", "n/a")
            if np.isnan(row.corrected_percent)
            else (f"{row.corrected_percent:.1f}", f"{row.corrected_low:.1f}-{row.corrected_high:.1f}")
        )
        lines.append(
            f"| {row.mineral} | {row.count} | {row.percent:.1f} | {row.percent_low:.1f}-"
            f"{row.percent_high:.1f} | {corrected[0]} | {corrected[1]} |"
        )
    return lines


def assemblage_report(
    tables: dict[str, pd.DataFrame],
    errors: dict[str, dict[str, float]],
    predictions: pd.DataFrame,
    header: list[str],
) -> str:
    """``assemblage.md``: the header, then per sample its table, uncertain count and known-truth error."""
    lines = ["# Heavy-mineral assemblage", ""] + [f"- {line}" for line in header] + [""]
    for sample, table in tables.items():
        rows = predictions[predictions["sample"] == sample]
        lines += [
            f"## Sample {sample}",
            "",
            f"{len(rows)} grains classified, {int(rows['uncertain'].sum())} of them uncertain.",
            "",
            *_markdown_table(table),
            "",
        ]
        if sample in errors:
            error = errors[sample]
            lines += [
                f"Against the labels of this sample (known composition): mean absolute error "
                f"{error['raw_mae_pp']:.2f} percentage points raw, {error['corrected_mae_pp']:.2f} "
                "corrected.",
                "",
            ]
    return "\n".join(lines)


def _true_percent(manifest: pd.DataFrame) -> dict[str, float]:
    shares = manifest["label"].value_counts(normalize=True)
    return {str(name): 100.0 * float(share) for name, share in shares.items()}


def write_assemblage(
    out: Path,
    predictor: Predictor,
    predictions: pd.DataFrame,
    scored: pd.DataFrame,
    settings: PredictionSettings,
    *,
    labelled: bool,
) -> dict[str, Any]:
    """Write ``assemblage.csv``, ``assemblage.md`` and ``assemblage.png`` for every sample of
    ``predictions`` (``predictions.csv``'s table; ``scored`` holds the same rows of the manifest).

    Returns:
        ``correction`` (what the correction used, or why there is none), ``composition_error`` (per
        labelled sample: raw and corrected mean absolute error in percentage points) and ``files``.
    """
    confusion, correction = in_domain_confusion(predictor)
    tables = sample_assemblages(predictions, predictor.classes, confusion, settings.seed)
    errors = {}
    for sample, table in tables.items():
        truth = scored[(predictions["sample"] == sample).to_numpy()]
        if labelled and confusion is not None and (truth["label"] != UNLABELLED).all():
            errors[sample] = composition_error(table, _true_percent(truth))
    combined = pd.concat(tables.values(), ignore_index=True)
    atomic_write(out / "assemblage.csv", lambda tmp: combined.to_csv(tmp, index=False, float_format="%.4g"))
    header = [
        f"Model: {predictor.method} ({predictor.kind}) from `{predictor.run_dir}`; "
        + (
            f"temperature {predictor.calibration.temperature:.3g}; "
            if predictor.calibration
            else "uncalibrated; "
        )
        + ("test-time augmentation (8 flips/rotations)." if settings.tta else "no test-time augmentation."),
        f"Uncertain: top-1 probability below {settings.threshold:g}. Counts use every grain's top-1 class.",
        "Raw 95% intervals: Wilson score. Corrected: "
        + correction
        + (
            "; 95% intervals by a bootstrap redrawing the sample and the confusion matrix."
            if confusion is not None
            else "."
        ),
    ]
    atomic_write_text(out / "assemblage.md", assemblage_report(tables, errors, predictions, header) + "\n")
    save_assemblage_chart(tables, out / "assemblage.png")
    return {
        "correction": correction,
        "composition_error": errors,
        "files": ["assemblage.csv", "assemblage.md", "assemblage.png"],
    }
