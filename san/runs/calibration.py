"""Calibration of a finished run: the temperature fitted on ``val`` (maths in
:mod:`san.evaluation.calibration`), saved as ``calibration.json``, with its reliability diagram."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from san.evaluation import calibration
from san.evaluation.calibration import (
    ECE_BINS,
    FIT_SPLIT,
    RELIABILITY_FILE,
    TemperatureScaling,
    fit_temperature,
    log_scores,
    split_report,
)
from san.runs.figures import save_reliability_diagram

log = logging.getLogger(__name__)


def calibrate_run(
    probabilities_by_split: Mapping[str, tuple[np.ndarray, np.ndarray]], run_dir: str | Path, title: str = ""
) -> dict[str, Any]:
    """Fit T on ``val`` and report every split; writes ``calibration.json`` and ``reliability.png``.

    Args:
        probabilities_by_split: split name -> (N x C uncalibrated probabilities, N class indices).
        run_dir: where the files go.
        title: the reliability diagram's title.

    Returns:
        The run record's ``calibration`` entry: ``temperature``, ``fitted_on``, ``n_fit``, ``bins``
        and per split ``n``, ``nll_before/after``, ``ece_before/after``; or ``{'status': 'skipped',
        'reason': ...}`` when there is no ``val`` split to fit on or it holds fewer than
        :data:`~san.evaluation.calibration.MIN_FIT_PAIRS` pairs (then predictions use T = 1).
    """
    if FIT_SPLIT not in probabilities_by_split or len(probabilities_by_split[FIT_SPLIT][1]) == 0:
        return {"status": "skipped", "reason": f"no {FIT_SPLIT!r} split to fit the temperature on"}
    fit_probabilities, fit_labels = probabilities_by_split[FIT_SPLIT]
    minimum = calibration.MIN_FIT_PAIRS  # read at call time: tests on tiny data lower it
    if len(fit_labels) < minimum:
        reason = (
            f"{FIT_SPLIT} holds {len(fit_labels)} pairs, fewer than the {minimum} a temperature needs "
            f"(fitted on so few it is mostly noise); predictions use T = 1"
        )
        log.warning("temperature scaling skipped: %s", reason)
        return {"status": "skipped", "reason": reason, "n_val": len(fit_labels), "min_pairs": minimum}
    scaling = TemperatureScaling(
        fit_temperature(log_scores(fit_probabilities), fit_labels), FIT_SPLIT, len(fit_labels)
    )
    splits = {split: split_report(p, y, scaling) for split, (p, y) in probabilities_by_split.items()}
    report = {
        "status": "fitted",
        "temperature": scaling.temperature,
        "fitted_on": FIT_SPLIT,
        "n_fit": scaling.n,
        "bins": ECE_BINS,
        "splits": splits,
    }
    scaling.save(run_dir, report)
    save_reliability_diagram(
        {split: (p, scaling.apply(log_scores(p)), y) for split, (p, y) in probabilities_by_split.items()},
        Path(run_dir) / RELIABILITY_FILE,
        f"{title} (T = {scaling.temperature:.3g}, fitted on {FIT_SPLIT})",
    )
    return report
