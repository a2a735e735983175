"""What every run shares, deep or classical: data, protocol, split, classes, run directory,
evaluation with the shared metrics, figures, and the run record.

A method supplies class probabilities per split; the context turns them into metrics,
predictions CSVs, confusion-matrix PNGs and the record (docs/architecture.md's schema).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from data_tools.atomic import atomic_write_text
from data_tools.commandline import log_to_file
from data_tools.corruption import corrupt_training
from data_tools.manifest import manifest_hash
from data_tools.manifest_io import Dataset, load_dataset
from data_tools.names import ordered_classes
from data_tools.splits import save_split, split_counts
from san.evaluation.calibration import (
    RELIABILITY_FILE,
    fit_temperature,
    log_scores,
    scaled_probabilities,
)
from san.evaluation.metrics import classification_metrics
from san.evaluation.protocols import make_split, resolve_protocol, select_classes
from san.runs.calibration import calibrate_run
from san.runs.config import resolve_config
from san.runs.config_types import check_config_types
from san.runs.figures import save_confusion_matrix
from san.runs.quantification import CalibrationRows, save_calibration_rows
from san.runs.records import RESULTS_FILE, RESULTS_LOG, package_versions, read_record, write_record
from san.runs.saved_model import model_file
from san.runs.tracking import Tracker

log = logging.getLogger(__name__)

REQUEST_FILE = "request.json"
LOG_FILE = "train.log"
CHECKPOINT_FILE = "checkpoint.pt"
EVALUATED_SPLITS = ("val", "test", "target")


@dataclass
class RunRequest:
    """Everything a user chooses for a run (the command line, as data)."""

    method: str = "san"
    data: str | None = None
    layout: str | None = None
    domain: str | None = None
    features: str | None = None
    domains: list[str] | None = None
    targets: list[str] | None = None
    classes: list[str] | None = None
    protocol: str | None = None
    seed: int = 0
    config_file: str | None = None
    overrides: list[str] = field(default_factory=list)
    out: str = "runs"
    run_dir: str | None = None
    wandb_mode: str = "offline"
    wandb_project: str = "heavy-minerals"
    wandb_group: str | None = None
    wandb_artifacts: bool = False
    tags: list[str] = field(default_factory=list)
    device: str = "auto"
    progress: bool = True


def open_request_data(request: RunRequest) -> tuple[Dataset, bool]:
    """The request's data and whether it is the built-in synthetic set."""
    if request.data is None:
        from data_tools.synthetic import default_dataset  # imported only when needed

        root = default_dataset()
        log.info("no --data given: using the built-in SYNTHETIC dataset at %s (not real micrographs)", root)
        return load_dataset(root, progress=request.progress), True
    return load_dataset(
        request.data, layout=request.layout, domain=request.domain, progress=request.progress
    ), False


def resolve_run_config(
    request: RunRequest, use_cpu_preset: bool, hparam_defaults: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """The run's config (every hyper-parameter resolved) and the layers it came from.

    Cheap and independent of the data: call it before opening the data, so that a mistyped
    ``--set`` fails at once rather than after the images are generated or checked.

    Raises:
        san.runs.config.ConfigError: an unknown key or a value of the wrong type.
    """
    config, layers = resolve_config(
        request.method,
        config_file=request.config_file,
        use_cpu_preset=use_cpu_preset,
        overrides=request.overrides,
        hparam_names=hparam_defaults,
    )
    # The record holds every resolved value, not only those a YAML layer wrote out.
    config["hparams"] = {**hparam_defaults, **config["hparams"]}
    check_config_types(config, hparam_defaults)
    return config, layers


def _fresh_run_dir(request: RunRequest, label: str) -> Path:
    base = Path(request.out) / f"{request.method}-{label}-seed{request.seed}"
    candidate, number = base, 1
    while candidate.exists():
        if read_record(candidate) is None and (candidate / CHECKPOINT_FILE).exists():
            log.warning("an unfinished run exists at %s; continue it with --resume %s", candidate, candidate)
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


class RunContext:
    """The parts of a run that do not depend on the method."""

    def __init__(
        self,
        request: RunRequest,
        dataset: Dataset,
        *,
        synthetic: bool,
        use_cpu_preset: bool,
        hparam_defaults: Mapping[str, Any],
        resume: bool = False,
        resolved_config: tuple[dict[str, Any], list[str]] | None = None,
    ) -> None:
        """``resolved_config``: the request's :func:`resolve_run_config`, when the caller resolved it
        before opening the data (it is not resolved again)."""
        self.started = time.perf_counter()
        self.request, self.resume, self.synthetic = request, resume, synthetic
        manifest = select_classes(dataset.manifest, request.classes)
        self.dataset = dataclasses.replace(dataset, manifest=manifest)
        self.protocol = resolve_protocol(manifest, request.domains, request.targets, request.protocol)
        self.config, self.config_layers = resolved_config or resolve_run_config(
            request, use_cpu_preset, hparam_defaults
        )
        if use_cpu_preset:
            log.info("no GPU and no --config: using the CPU preset (configs/presets/cpu.yaml)")
        self.run_dir = (
            Path(request.run_dir)
            if (resume or request.run_dir)
            else _fresh_run_dir(request, self.protocol.label)
        )
        self.split = make_split(manifest, self.protocol, request.seed, self.config["data"])
        self.class_names = ordered_classes(manifest.loc[self.split != "unused", "label"])
        class_index = {c: i for i, c in enumerate(self.class_names)}
        self.labels = manifest["label"].map(class_index).fillna(-1).to_numpy(int)
        domain_index = {d: i for i, d in enumerate(self.protocol.domains)}
        self.domains = manifest["domain"].map(domain_index).fillna(-1).to_numpy(int)
        # Data-quality studies corrupt the training split only (labels, rows); a no-op by default.
        self.corruption = corrupt_training(
            manifest, self.split, self.labels, self.config, run_seed=request.seed
        )
        self.split, self.labels = self.corruption.split, self.corruption.labels
        self.tracker: Tracker | None = None

    @property
    def manifest(self) -> pd.DataFrame:
        return self.dataset.manifest

    def rows(self, split: str) -> np.ndarray:
        """Manifest row positions of a split."""
        return np.flatnonzero(self.split.to_numpy() == split)

    def evaluated_splits(self) -> list[str]:
        """The splits with at least one row, among val, test and target."""
        return [s for s in EVALUATED_SPLITS if len(self.rows(s))]

    def training_class_facts(self) -> dict[str, Any]:
        """Classes with no training sample, and the best target accuracy reachable without them."""
        trained = set(self.labels[self.rows("train")])
        absent = [c for i, c in enumerate(self.class_names) if i not in trained]
        facts: dict[str, Any] = {"classes_absent_from_training": absent}
        if absent:
            log.warning(
                "class(es) %s have no training sample: the model cannot learn them", ", ".join(absent)
            )
        target = self.rows("target")
        if len(target):
            reachable = np.isin(self.labels[target], sorted(trained))
            facts["target_ceiling"] = float(reachable.mean())
            if not reachable.all():
                log.warning(
                    "%.1f%% of the target samples belong to classes absent from training: target "
                    "accuracy cannot exceed %.3f",
                    100 * (1 - reachable.mean()),
                    reachable.mean(),
                )
        return facts

    def start(self, tags: Iterable[str] = ()) -> Tracker:
        """Create the run directory with its inputs (request, resolved config, split) and the tracker."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.resume:
            request = dataclasses.asdict(self.request) | {"run_dir": str(self.run_dir)}
            atomic_write_text(self.run_dir / REQUEST_FILE, json.dumps(request, indent=2) + "\n")
            atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(self.config, sort_keys=False))
            save_split(self.manifest, self.split, str(self.run_dir / "split.csv"))
        request = self.request
        self.tracker = Tracker(
            request.wandb_mode,
            self.run_dir,
            project=request.wandb_project,
            group=request.wandb_group or self.protocol.label,
            name=self.run_dir.name,
            tags=[request.method, self.protocol.name, *request.tags, *tags],
            config={
                **self.config,
                "seed": request.seed,
                "sources": self.protocol.sources,
                "targets": self.protocol.targets,
            },
        )
        log.info(
            "run %s: %s, %s protocol, sources %s%s, seed %d; %d train / %d val pairs",
            self.run_dir,
            request.method,
            self.protocol.name,
            ",".join(self.protocol.sources),
            f", targets {','.join(self.protocol.targets)}" if self.protocol.targets else "",
            request.seed,
            len(self.rows("train")),
            len(self.rows("val")),
        )
        return self.tracker

    def split_metrics(
        self, split: str, probabilities: np.ndarray, rows: np.ndarray, *, suffix: str = ""
    ) -> dict[str, Any]:
        """Metrics of one split from class probabilities (rows = manifest positions); also writes
        ``predictions_<split><suffix>.csv`` with the probabilities, the true label and the prediction."""
        predicted = probabilities.argmax(axis=1)
        metrics = classification_metrics(
            self.labels[rows], predicted, self.class_names, self.domains[rows], list(self.protocol.domains)
        )
        table = pd.DataFrame(probabilities, columns=self.class_names)
        table.insert(0, "predicted", [self.class_names[i] for i in predicted])
        table.insert(0, "label", [self.class_names[i] for i in self.labels[rows]])
        table.insert(0, "domain", self.manifest["domain"].to_numpy()[rows])
        table.insert(0, "sample_id", self.manifest["sample_id"].to_numpy()[rows])
        table.to_csv(self.run_dir / f"predictions_{split}{suffix}.csv", index=False, float_format="%.6g")
        return metrics

    def save_figures(self, metrics: Mapping[str, dict[str, Any]]) -> None:
        """Confusion-matrix PNGs of test and target (also sent to W&B)."""
        for split in ("test", "target"):
            if split not in metrics:
                continue
            title = f"{self.request.method}: {split} split of {', '.join(metrics[split]['per_domain'])}"
            path = save_confusion_matrix(
                metrics[split]["confusion"], self.class_names, self.run_dir / f"confusion_{split}.png", title
            )
            if self.tracker is not None:
                self.tracker.log_confusion(
                    f"confusion/{split}", metrics[split]["confusion"], self.class_names
                )
                self.tracker.log_image(f"figures/confusion_{split}", path)

    def calibrate(self, probabilities: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
        """Temperature scaling fitted on ``val`` (``san.evaluation.calibration``): writes
        ``calibration.json`` (applied by ``scripts/predict.py``) and ``reliability.png``; ``probabilities``
        maps a split to (its class probabilities, its manifest rows). Returns the record's
        ``calibration`` entry (NLL and ECE before and after, per split), or a ``skipped`` entry when
        there is no val split."""
        labelled = {split: (p, self.labels[rows]) for split, (p, rows) in probabilities.items()}
        report = calibrate_run(labelled, self.run_dir, f"{self.request.method} {self.protocol.label}")
        if self.tracker is not None and report["status"] == "fitted":
            self.tracker.log_image("figures/reliability", self.run_dir / RELIABILITY_FILE)
        return report

    def quantify(
        self,
        calibration: tuple[np.ndarray, np.ndarray],
        source: str,
        probabilities: Mapping[str, tuple[np.ndarray, np.ndarray]],
    ) -> dict[str, Any]:
        """Fit the quantifiers' calibration rows and evaluate the assemblage under APP.

        ``calibration`` is (N x K class probabilities, N manifest rows) of rows the model did not train
        on (out-of-fold on ``train``, or ``val``), ``source`` says which; ``probabilities`` maps the
        evaluated splits to (probabilities, rows) as in :meth:`calibrate`. A temperature T_q is fitted
        on the calibration rows and applied to every split; the rows (scaled by T_q), T_q and the
        quantifier chosen on them are saved as ``quantification.npz`` for ``scripts/predict.py``.
        Returns the record's ``assemblage`` entry
        (:func:`san.evaluation.assemblage_evaluation.assemblage_record`), or a ``skipped`` entry.
        """
        from san.evaluation.assemblage_evaluation import assemblage_record

        started = time.perf_counter()
        raw, rows = calibration
        labels = self.labels[rows]
        if len(np.unique(labels)) < 2:
            return {"status": "skipped", "reason": f"the calibration rows ({source}) hold < 2 classes"}
        temperature = fit_temperature(log_scores(raw), labels)

        def scaled(p: np.ndarray) -> np.ndarray:
            return scaled_probabilities(log_scores(p), temperature)

        splits = {
            s: (scaled(p), self.labels[r]) for s, (p, r) in probabilities.items() if s in ("test", "target")
        }
        try:
            entry = assemblage_record(
                scaled(raw), labels, splits, np.random.default_rng(self.request.seed), source=source
            )
        except ValueError as error:  # e.g. a half of tiny calibration rows with a single class
            log.warning("no assemblage evaluation: %s", error)
            return {"status": "skipped", "reason": str(error)}
        entry = {
            "status": "evaluated",
            "temperature": temperature,
            **entry,
            "seconds": round(time.perf_counter() - started, 1),
        }
        save_calibration_rows(
            self.run_dir,
            CalibrationRows(
                scaled(raw), labels, self.class_names, temperature, source, entry["choice"]["chosen"]
            ),
        )
        return entry

    def record(
        self,
        metrics: dict[str, dict[str, Any]],
        selection: dict[str, Any],
        timing: dict[str, Any],
        extras: dict[str, Any],
    ) -> dict[str, Any]:
        """The run record (docs/architecture.md keys plus status, run_dir and extras)."""
        return {
            "status": "complete",
            "method": self.request.method,
            "protocol": self.protocol.name,
            "sources": list(self.protocol.sources),
            "targets": list(self.protocol.targets),
            "seed": self.request.seed,
            "classes": self.class_names,
            "selection": selection,
            "metrics": metrics,
            "timing": {
                "total_seconds": round(time.perf_counter() - self.started, 2),
                **timing,
                "resumed": self.resume,
            },
            "config": self.config,
            "versions": package_versions(),
            "data": {
                "root": str(self.dataset.root),
                "manifest_hash": manifest_hash(self.manifest),
                "n_pairs": int((self.split != "unused").sum()),
                "synthetic": self.synthetic,
                "features": self.request.features,
                "split_counts": split_counts(self.manifest, self.split).to_dict(orient="index"),
            },
            "run_dir": str(self.run_dir),
            "extras": {"config_layers": self.config_layers, "quality": self.corruption.describe(), **extras},
        }

    def finish(self, record: dict[str, Any]) -> dict[str, Any]:
        """Write the record (results.json and a line of <out>/results.jsonl) and close the tracker."""
        metrics = record["metrics"]
        if self.tracker is not None:
            self.tracker.summary(
                {f"{s}/{k}": v[k] for s, v in metrics.items() for k in ("accuracy", "macro_f1")}
            )
        write_record(record, self.run_dir, Path(self.request.out) / RESULTS_LOG)
        return record

    @contextmanager
    def tracked(self, tags: Iterable[str] = ()) -> Iterator[Tracker]:
        """:meth:`start` the run, yield its tracker, :meth:`close` it (failed if the body raised). Meanwhile
        the run directory's ``train.log`` gets every log line the console shows (appended on resume)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with log_to_file(self.run_dir / LOG_FILE):
            tracker = self.start(tags)
            failed = True
            try:
                yield tracker
                failed = False
            finally:
                self.close(failed)

    def conclude(
        self,
        probabilities: Mapping[str, tuple[np.ndarray, np.ndarray]],
        selection: dict[str, Any],
        timing: dict[str, Any],
        extras: dict[str, Any],
        save_artifacts: Callable[[Path], None],
        calibration_rows: tuple[np.ndarray, np.ndarray, str] | None = None,
        variants: Mapping[str, Mapping[str, tuple[np.ndarray, np.ndarray]]] | None = None,
    ) -> dict[str, Any]:
        """The end of every run, deep or classical, in one order: metrics and predictions CSV per split,
        the record, calibration on ``val``, the assemblage evaluation (:meth:`quantify`, on
        ``calibration_rows`` = (probabilities, manifest rows, where they come from) when given, else on
        ``val``), the method's own artifacts (``save_artifacts(run_dir)``: its model file, its
        figures), the confusion figures, then the record written (the run is complete only once
        results.json exists). ``probabilities`` maps a split to (its class probabilities, its manifest
        rows). ``variants`` are other evaluations of the same run (e.g. ``tta``, ``plain``), reported
        beside the main figures in ``record['variants']`` with their own
        ``predictions_<split>_<variant>.csv``, never instead of them. Returns the record."""
        metrics = {split: self.split_metrics(split, p, rows) for split, (p, rows) in probabilities.items()}
        record = self.record(metrics, selection, timing, extras)
        record["variants"] = {
            name: {
                split: self.split_metrics(split, p, rows, suffix=f"_{name}")
                for split, (p, rows) in splits.items()
            }
            for name, splits in (variants or {}).items()
        }
        record["calibration"] = self.calibrate(probabilities)
        if calibration_rows is None and "val" in probabilities:
            # A deep run cannot afford out-of-fold predictions (k retrainings): val is its calibration set.
            calibration_rows = (*probabilities["val"], "the val split (training rivers)")
        if calibration_rows is not None:
            raw, rows, source = calibration_rows
            record["assemblage"] = self.quantify((raw, rows), source, probabilities)
        save_artifacts(self.run_dir)
        self.save_figures(metrics)
        record = self.finish(record)
        if self.request.wandb_artifacts and self.tracker is not None:
            self.tracker.log_artifact(
                f"{self.request.method}-{self.protocol.label}-seed{self.request.seed}",
                [p for p in (model_file(self.run_dir), self.run_dir / RESULTS_FILE) if p is not None],
            )
        return record

    def close(self, failed: bool) -> None:
        """Close the tracker (marking the W&B run failed if the run raised)."""
        if self.tracker is not None:
            self.tracker.finish(failed=failed)
