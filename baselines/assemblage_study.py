"""The assemblage study with the SVM: quantifiers under APP on every held-out river and source test split.

Per held-out river (leave-one-river-out): the SVM is tuned and refitted on the training rivers'
``train`` split exactly as in a run (``baselines.classical.fit_classical``); its calibration rows are
out-of-fold posteriors of that same estimator on the ``train`` split (stratified 5-fold
``cross_val_predict``), so the misclassification rates come from 550-770 rows instead of the ~390 of a
test split; the temperature is fitted on those rows too. The target river's and the source rivers' ``test``
rows are then predicted and evaluated with :func:`san.evaluation.assemblage_evaluation.evaluate_quantifiers`;
their labels never fit or choose anything.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from baselines.classical import fit_classical
from baselines.experiment import CLASSICAL_HPARAMS
from baselines.features import extract_features
from san.evaluation.assemblage_evaluation import choose_quantifier, evaluate_quantifiers
from san.evaluation.calibration import fit_temperature, log_scores, scaled_probabilities
from san.runs.lifecycle import RunContext, RunRequest, open_request_data

log = logging.getLogger(__name__)

OOF_FOLDS = 5


def _full(estimator: Any, features: np.ndarray, trained: list[int], n_classes: int) -> np.ndarray:
    full = np.zeros((len(features), n_classes))
    full[:, trained] = estimator.predict_proba(features)
    return full


def svm_posteriors(context: RunContext, features: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Calibrated posteriors and labels of one leave-one-river-out setting.

    Returns:
        ``calibration``/``calibration_labels`` (out-of-fold on ``train``), ``target``/``target_labels``,
        ``test``/``test_labels``/``test_domains`` (source rivers' in-domain test rows), ``temperature``
        (fitted on the out-of-fold rows).
    """
    train, test, target = (context.rows(s) for s in ("train", "test", "target"))
    labels, n_classes = context.labels, len(context.class_names)
    fitted = fit_classical("svm", features[train], labels[train], seed=seed)
    trained = [int(c) for c in fitted.classes]
    folds = StratifiedKFold(n_splits=OOF_FOLDS, shuffle=True, random_state=seed)
    oof = np.zeros((len(train), n_classes))
    oof[:, trained] = cross_val_predict(
        clone(fitted.estimator), features[train], labels[train], cv=folds, method="predict_proba"
    )
    # The temperature is fitted on the out-of-fold rows (~5x the val split): on a small, nearly
    # perfectly classified val split it runs to its lower bound and makes every posterior one-hot,
    # which leaves PCC, PACC, EM and HDy nothing to work with.
    temperature = fit_temperature(log_scores(oof), labels[train])

    def calibrated(rows: np.ndarray) -> np.ndarray:
        return scaled_probabilities(
            log_scores(_full(fitted.estimator, features[rows], trained, n_classes)), temperature
        )

    return {
        "calibration": scaled_probabilities(log_scores(oof), temperature),
        "calibration_labels": labels[train],
        "target": calibrated(target),
        "target_labels": labels[target],
        "test": calibrated(test),
        "test_labels": labels[test],
        "test_domains": context.manifest["domain"].to_numpy()[test].astype(str),  # no object array
        "temperature": np.array(temperature),
    }


def loro_contexts(data: str | None, seed: int, progress: bool) -> tuple[list[RunContext], np.ndarray]:
    """One run context per held-out river (nothing is written) and the feature matrix of the manifest."""
    base = RunRequest(method="svm", data=data, seed=seed, wandb_mode="disabled", progress=progress)
    dataset, synthetic = open_request_data(base)
    rivers = list(dict.fromkeys(dataset.manifest["domain"]))
    contexts = [
        RunContext(
            dataclasses.replace(base, domains=[r for r in rivers if r != target], targets=[target]),
            dataset,
            synthetic=synthetic,
            use_cpu_preset=False,
            hparam_defaults=CLASSICAL_HPARAMS,
        )
        for target in rivers
    ]
    first = contexts[0]
    table = extract_features(
        first.manifest,
        first.dataset.root,
        size=CLASSICAL_HPARAMS["feature_size"],
        crop=first.config["data"]["crop"],
        progress=progress,
    )
    columns = [c for c in table.columns if c not in ("sample_id", "domain", "label", "split")]
    return contexts, table[columns].to_numpy(dtype=np.float64)


def evaluate_setting(
    posteriors: dict[str, np.ndarray],
    rng: np.random.Generator,
    *,
    n_samples: int,
    coverage_samples: int,
    draws: int,
) -> dict[str, Any]:
    """APP evaluation on the target river (``n_samples``, with coverage) and each source river's test
    rows (half as many samples, without coverage), plus the quantifier chosen on the calibration rows
    (half as many samples per fold)."""
    calibration = (posteriors["calibration"], posteriors["calibration_labels"])
    result: dict[str, Any] = {
        "choice": choose_quantifier(*calibration, rng, n_samples=max(20, n_samples // 2)),
        "target": evaluate_quantifiers(
            *calibration,
            posteriors["target"],
            posteriors["target_labels"],
            rng,
            n_samples=n_samples,
            coverage_samples=coverage_samples,
            draws=draws,
        ),
        "sources": {},
    }
    for river in dict.fromkeys(posteriors["test_domains"]):
        rows = posteriors["test_domains"] == river
        result["sources"][str(river)] = evaluate_quantifiers(
            *calibration,
            posteriors["test"][rows],
            posteriors["test_labels"][rows],
            rng,
            n_samples=max(20, n_samples // 2),
            coverage_samples=0,
        )
    return result


def _save_npz(path: Any, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as handle:  # a file handle: np.savez would append ".npz" to a path
        np.savez(handle, **arrays)


def study_tables(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: the APP table per held-out river and quantifier, the source rivers' MAE, the
    per-grain accuracy with and without EM prior adaptation, and the validation choice."""
    from san.evaluation.quantification import QUANTIFIERS

    lines = [
        "### APP on each held-out river (SVM, synthetic set)",
        "",
        "| held-out river | quantifier | MAE (pp) | ± sd | RAE | natural-mix AE (pp) | coverage 95% "
        "(all classes) | coverage (present) | mean interval width (pp) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for river, result in results.items():
        for name in QUANTIFIERS:
            q = result["target"]["quantifiers"][name]
            cover = (
                (
                    f"{100 * q['coverage']:.1f}%",
                    f"{100 * q['coverage_present']:.1f}%",
                    f"{q['interval_width_pp']:.1f}",
                )
                if "coverage" in q
                else ("-", "-", "-")
            )
            chosen = " (chosen)" if result["choice"]["chosen"] == name else ""
            lines.append(
                f"| {river} | {name}{chosen} | {q['mae_pp']:.2f} | {q['mae_pp_std']:.2f} | {q['rae']:.2f} | "
                f"{q['natural_ae_pp']:.2f} | {cover[0]} | {cover[1]} | {cover[2]} |"
            )
    lines += [
        "",
        "### APP on the source rivers' test split (same models)",
        "",
        "| held-out river | source river | " + " | ".join(f"{n} MAE" for n in QUANTIFIERS) + " |",
        "|---|---|" + "---:|" * len(QUANTIFIERS),
    ]
    for river, result in results.items():
        for source, evaluated in result["sources"].items():
            values = " | ".join(f"{evaluated['quantifiers'][n]['mae_pp']:.2f}" for n in QUANTIFIERS)
            lines.append(f"| {river} | {source} | {values} |")
    lines += [
        "",
        "### Per-grain accuracy on the held-out river, without and with EM prior adaptation",
        "",
        "| held-out river | natural mix | adapted | APP samples (mean) | adapted |",
        "|---|---:|---:|---:|---:|",
    ]
    for river, result in results.items():
        g = result["target"]["per_grain"]
        lines.append(
            f"| {river} | {g['accuracy']:.3f} | {g['accuracy_adapted']:.3f} | {g['app_accuracy']:.3f} | "
            f"{g['app_accuracy_adapted']:.3f} |"
        )
    lines += ["", "### Quantifier chosen on the calibration rows (2-fold cross-fitting, APP)", ""]
    for river, result in results.items():
        scores = ", ".join(f"{n} {v:.2f}" for n, v in result["choice"]["mae_pp"].items())
        lines.append(f"- held out {river}: **{result['choice']['chosen']}** (MAE pp: {scores})")
    return "\n".join(lines) + "\n"


def run_study(
    out: str,
    *,
    data: str | None = None,
    seed: int = 0,
    n_samples: int = 500,
    coverage_samples: int = 25,
    draws: int = 40,
    rivers: list[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """The whole study: per held-out river (all, or ``rivers``) its posteriors and its results, both
    cached in OUT (``posteriors-<river>-seed<seed>.npz``, ``results-<river>-seed<seed>.json``, so
    rivers can run in separate processes and a finished river is never redone), then
    ``OUT/assemblage_study.json`` and ``.md`` over every river with results. Each river's generator
    is seeded from (seed, river index), so a river's figures do not depend on which others ran.

    Raises:
        ValueError: a requested river is not in the data.
    """
    import json
    from pathlib import Path

    from data_tools.atomic import atomic_write, atomic_write_text

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    contexts, features = loro_contexts(data, seed, progress)
    names = [c.protocol.targets[0] for c in contexts]
    if unknown := sorted(set(rivers or []) - set(names)):
        raise ValueError(f"unknown river(s) {unknown}; the data has {names}")
    results: dict[str, dict[str, Any]] = {}
    for number, context in enumerate(contexts):
        river = context.protocol.targets[0]
        done = folder / f"results-{river}-seed{seed}.json"
        if done.is_file():
            results[river] = json.loads(done.read_text(encoding="utf-8"))
            continue
        if rivers and river not in rivers:
            continue
        cache = folder / f"posteriors-{river}-seed{seed}.npz"
        if cache.is_file():
            posteriors = dict(np.load(cache, allow_pickle=False))
        else:
            log.info("fitting the SVM with %s held out", river)
            posteriors = svm_posteriors(context, features, seed)
            atomic_write(cache, lambda tmp, p=posteriors: _save_npz(tmp, p))
        log.info("evaluating quantifiers with %s held out", river)
        rng = np.random.default_rng([seed, number])
        result = evaluate_setting(
            posteriors, rng, n_samples=n_samples, coverage_samples=coverage_samples, draws=draws
        )
        result["classes"] = context.class_names
        result["temperature"] = float(posteriors["temperature"])
        atomic_write_text(done, json.dumps(result, indent=2) + "\n")
        results[river] = result
    atomic_write_text(folder / "assemblage_study.json", json.dumps(results, indent=2) + "\n")
    atomic_write_text(folder / "assemblage_study.md", study_tables(results))
    return results
