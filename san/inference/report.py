"""The assemblage of each predicted sample: ``assemblage.csv`` / ``.md`` / ``.png``, ``provenance.csv``
and the one-page ``report.html``.

Per sample: the raw count of top-1 classes with Wilson intervals, beside the estimate of the chosen
quantifier (``san.inference.quantified_assemblage``: fitted on the run's calibration rows, never on
its test split or a target river) with bootstrap intervals over grains and calibration rows; the
provenance indices; the grains' EM prior-adapted classes. A labelled input gives each sample's true
composition, so the report also says how far the raw and quantified percentages are from it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_tools.atomic import atomic_write, atomic_write_text
from data_tools.inputs import UNLABELLED
from san.evaluation.quantifier_names import QUANTIFIER_CHOICES
from san.inference.assemblage import composition_error
from san.inference.figures import save_assemblage_chart
from san.inference.predictors import Predictor
from san.inference.quantified_assemblage import (
    FITTING_FREE,
    SampleAssemblage,
    SampleQuantifier,
    rescale,
)
from san.inference.sample_report import SampleSection, least_certain, render_report
from san.inference.settings import PredictionSettings
from san.runs.quantification import QUANTIFICATION_FILE, CalibrationRows, load_calibration_rows

FALLBACK_QUANTIFIER = "cc"
REPORT_FILES = ["assemblage.csv", "assemblage.md", "assemblage.png", "provenance.csv", "report.html"]


def resolve_quantifier(requested: str, calibration: CalibrationRows | None) -> tuple[str, str]:
    """The quantifier to use and a sentence on why: ``auto`` is the one the run chose on its calibration
    rows, or ``cc`` for a run without them.

    Raises:
        ValueError: an unknown name, or a quantifier that needs calibration rows the run lacks.
    """
    if requested not in QUANTIFIER_CHOICES:
        raise ValueError(f"unknown quantifier {requested!r}; expected one of {', '.join(QUANTIFIER_CHOICES)}")
    if calibration is None:
        if requested == "auto":
            return FALLBACK_QUANTIFIER, (
                f"{FALLBACK_QUANTIFIER} (the run has no {QUANTIFICATION_FILE}: it predates quantification, "
                "so no label-shift correction and no prior adaptation; retrain it for them)"
            )
        if requested not in FITTING_FREE:
            raise ValueError(
                f"--quantifier {requested} is fitted on the run's calibration rows, and the run has no "
                f"{QUANTIFICATION_FILE}; use auto, {' or '.join(FITTING_FREE)}, or retrain the run"
            )
        return requested, f"{requested} (requested; counting noise only: the run has no calibration rows)"
    if requested == "auto":
        chosen = calibration.chosen or FALLBACK_QUANTIFIER
        return chosen, (
            f"{chosen}, the run's choice on its calibration rows ({calibration.source}, n = "
            f"{len(calibration.labels)}; lowest APP error under 2-fold cross-fitting)"
        )
    return (
        requested,
        f"{requested} (requested), fitted on {calibration.source}, n = {len(calibration.labels)}",
    )


@dataclass
class QuantifiedSamples:
    """The assemblage of every sample of a prediction table, and how it was made."""

    quantifier: SampleQuantifier
    note: str  # which quantifier and why
    samples: dict[str, SampleAssemblage]  # in order of appearance
    masks: dict[str, np.ndarray]  # sample -> its rows of the prediction table

    @property
    def name(self) -> str:
        return self.quantifier.name


def quantify_samples(
    predictions: pd.DataFrame,
    classes: list[str],
    *,
    predictor: Predictor | None = None,
    quantifier: str = "auto",
    seed: int = 0,
    draws: int,
) -> QuantifiedSamples:
    """Quantify each sample of ``predictions`` (``predictions.csv``'s ``sample`` and ``prob_*``
    columns) with the run's calibration rows; without a ``predictor`` only ``cc``/``pcc`` (counting).

    Raises:
        ValueError: a column is missing, an unknown quantifier, or one the run cannot fit.
    """
    columns = [f"prob_{c}" for c in classes]
    if missing := [c for c in ("sample", *columns) if c not in predictions.columns]:
        raise ValueError(f"the predictions lack the column(s) {', '.join(missing)} (see predictions.csv)")
    calibration = _calibration_for(predictor) if predictor is not None else None
    name, note = resolve_quantifier(quantifier, calibration)
    fitted = SampleQuantifier(name, len(classes), calibration, np.random.default_rng(seed), draws)
    probabilities = predictions[columns].to_numpy(dtype=np.float64)
    if calibration is not None and predictor is not None:
        # Predictions carry the run's val temperature; the calibration rows their own.
        current = predictor.calibration.temperature if predictor.calibration else 1.0
        probabilities = rescale(probabilities, current, calibration.temperature)
    samples, masks = {}, {}
    for sample in dict.fromkeys(predictions["sample"]):
        masks[sample] = (predictions["sample"] == sample).to_numpy()
        samples[sample] = fitted.assemble(sample, probabilities[masks[sample]], classes)
    return QuantifiedSamples(fitted, note, samples, masks)


def _markdown_table(table: pd.DataFrame) -> list[str]:
    lines = [
        "| Mineral | Count | % | 95% interval | Quantified % | 95% interval |",
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


def _indices_markdown(indices: pd.DataFrame) -> list[str]:
    lines = ["| Index | Value (%) | 95% interval |", "|---|---:|---|"]
    for row in indices.itertuples():
        if row.value is None or pd.isna(row.value):
            lines.append(f"| {row.index} | n/a | {row.note} |")
        else:
            lines.append(f"| {row.index} | {row.value:.1f} | {row.low:.1f}-{row.high:.1f} |")
    return lines


def assemblage_report(
    tables: dict[str, pd.DataFrame],
    errors: dict[str, dict[str, float]],
    predictions: pd.DataFrame,
    header: list[str],
    indices: dict[str, pd.DataFrame] | None = None,
) -> str:
    """``assemblage.md``: the header, then per sample its table, indices, uncertain count and the
    error against known labels."""
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
            *(_indices_markdown(indices[sample]) + [""] if indices and sample in indices else []),
        ]
        if sample in errors:
            error = errors[sample]
            lines += [
                f"Against the labels of this sample (known composition): mean absolute error "
                f"{error['raw_mae_pp']:.2f} percentage points raw, {error['corrected_mae_pp']:.2f} "
                "quantified.",
                "",
            ]
    return "\n".join(lines)


def _true_percent(manifest: pd.DataFrame) -> dict[str, float]:
    shares = manifest["label"].value_counts(normalize=True)
    return {str(name): 100.0 * float(share) for name, share in shares.items()}


def _calibration_for(predictor: Predictor) -> CalibrationRows | None:
    calibration = load_calibration_rows(predictor.run_dir)
    if calibration is not None and calibration.classes != predictor.classes:
        raise ValueError(
            f"{predictor.run_dir / QUANTIFICATION_FILE}: classes {calibration.classes} differ from the "
            f"model's {predictor.classes}"
        )
    return calibration


def write_assemblage(
    out: Path,
    predictor: Predictor,
    predictions: pd.DataFrame,
    scored: pd.DataFrame,
    settings: PredictionSettings,
    *,
    labelled: bool,
    draws: int,
    load_image: Callable[[str], np.ndarray],
) -> dict[str, Any]:
    """Write the assemblage files (:data:`REPORT_FILES`) for every sample of ``predictions``
    (``predictions.csv``'s table; ``scored`` holds the same rows of the manifest; ``load_image`` reads
    a prepared image by its manifest path, for the thumbnails).

    Returns:
        ``quantifier`` and ``quantifier_note`` (which and why), ``composition_error`` (per labelled
        sample: raw and quantified MAE in percentage points), ``files``, and ``adapted``: a DataFrame
        aligned with ``predictions`` (``class_adapted``, ``probability_adapted``; empty without prior
        adaptation).

    Raises:
        ValueError: an unknown quantifier, or one the run cannot fit.
    """
    quantified = quantify_samples(
        predictions,
        predictor.classes,
        predictor=predictor,
        quantifier=settings.quantifier,
        seed=settings.seed,
        draws=draws,
    )
    name, note, quantifier = quantified.name, quantified.note, quantified.quantifier
    tables, indices, errors, sections = {}, {}, {}, []
    adapted = pd.DataFrame(index=predictions.index, columns=["class_adapted", "probability_adapted"])
    for sample, result in quantified.samples.items():
        chosen = quantified.masks[sample]
        tables[sample], indices[sample] = result.table, result.indices
        if result.adapted is not None:
            adapted.loc[chosen, "class_adapted"] = [
                predictor.classes[i] for i in result.adapted.argmax(axis=1)
            ]
            adapted.loc[chosen, "probability_adapted"] = result.adapted.max(axis=1)
        truth = scored[chosen]
        known_truth = labelled and (truth["label"] != UNLABELLED).all()
        if known_truth:
            errors[sample] = composition_error(result.table, _true_percent(truth))
        rows = predictions[chosen]
        error_note = (
            f"Against its labels: MAE {errors[sample]['raw_mae_pp']:.2f} pp raw, "
            f"{errors[sample]['corrected_mae_pp']:.2f} pp {name}."
            if known_truth
            else ""
        )
        sections.append(
            SampleSection(
                str(sample),
                result.table,
                result.indices,
                len(rows),
                int(rows["uncertain"].sum()),
                least_certain(rows, load_image),
                _true_percent(truth) if known_truth else None,
                error_note,
            )
        )
    combined = pd.concat(tables.values(), ignore_index=True)
    atomic_write(out / "assemblage.csv", lambda tmp: combined.to_csv(tmp, index=False, float_format="%.4g"))
    index_table = pd.concat(indices.values(), ignore_index=True)
    atomic_write(
        out / "provenance.csv", lambda tmp: index_table.to_csv(tmp, index=False, float_format="%.4g")
    )
    header = [
        f"Model: {predictor.method} ({predictor.kind}) from `{predictor.run_dir}`; "
        + (
            f"temperature {predictor.calibration.temperature:.3g}; "
            if predictor.calibration
            else "uncalibrated; "
        )
        + ("test-time augmentation (8 flips/rotations)." if settings.tta else "no test-time augmentation."),
        f"Uncertain: top-1 probability below {settings.threshold:g}. Raw counts use every grain's top-1 "
        "class; 95% intervals: Wilson score.",
        f"Quantifier: {note}. Its 95% intervals: percentile bootstrap ({draws} draws) resampling the "
        "grains and refitting the quantifier on resampled calibration rows.",
        "Provenance indices (Morton and Hallsworth 1994; ZTR over transparent heavy minerals, micas "
        "excluded) from the quantified prevalences; not computable when the run does not know a mineral.",
    ]
    atomic_write_text(
        out / "assemblage.md", assemblage_report(tables, errors, predictions, header, indices) + "\n"
    )
    save_assemblage_chart(tables, out / "assemblage.png")
    page = render_report(sections, name, header, title=f"Assemblage: {predictor.method} run")
    atomic_write_text(out / "report.html", page)
    return {
        "quantifier": name,
        "quantifier_note": note,
        "composition_error": errors,
        "files": list(REPORT_FILES),
        "bootstrap": quantifier.describe(),
        "adapted": adapted.dropna(how="all") if quantifier.adapts else adapted.iloc[0:0],
    }
