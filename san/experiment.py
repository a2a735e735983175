"""One training run of a deep algorithm, from a request to a run directory with its record.

``run_experiment`` is what ``scripts/train_san.py`` and ``scripts/train_baseline.py`` call: it
opens the data (the built-in synthetic set when none is given), draws and saves the split,
decodes images once through the cache, trains with the engine, evaluates every split with the
shared metrics, draws the figures, and writes ``results.json`` plus a line of ``results.jsonl``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml

from data_tools.atomic import atomic_write, atomic_write_text
from data_tools.cache import PairImageCache
from data_tools.dataset import PairedGrainDataset
from data_tools.manifest import manifest_hash
from data_tools.manifest_io import Dataset, load_dataset
from data_tools.names import ordered_classes
from data_tools.splits import save_split, split_counts
from data_tools.transforms import AugmentationConfig, PairTransform, channel_stats
from san.config import resolve_config
from san.engine import (
    BEST_WEIGHTS_FILE,
    CHECKPOINT_FILE,
    FitResult,
    Trainer,
    TrainingSettings,
    predict_dataset,
)
from san.metrics import classification_metrics
from san.plots import save_confusion_matrix, save_training_curves
from san.protocol import Protocol, make_split, resolve_protocol, select_classes
from san.records import RESULTS_LOG, package_versions, read_record, write_record
from san.registry import build_algorithm, default_hparams
from san.runtime import loader_workers, resolve_device, seed_everything
from san.tracking import Tracker

log = logging.getLogger(__name__)

REQUEST_FILE = "request.json"
MODEL_FILE = "model.pt"
EVALUATED_SPLITS = ("val", "test", "target")


@dataclass
class RunRequest:
    """Everything a user chooses for a run (the command line, as data)."""

    method: str = "san"
    data: str | None = None
    layout: str | None = None
    domain: str | None = None
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
    tags: list[str] = field(default_factory=list)
    device: str = "auto"
    progress: bool = True


def _open_data(request: RunRequest) -> tuple[Dataset, bool]:
    if request.data is None:
        from data_tools.synthetic import default_dataset  # imported only when needed

        root = default_dataset()
        log.info("no --data given: using the built-in SYNTHETIC dataset at %s (not real micrographs)", root)
        return load_dataset(root, progress=request.progress), True
    return load_dataset(request.data, layout=request.layout, domain=request.domain,
                        progress=request.progress), False


def _run_dir(request: RunRequest, protocol: Protocol) -> Path:
    if request.run_dir:
        return Path(request.run_dir)
    base = Path(request.out) / f"{request.method}-{protocol.label}-seed{request.seed}"
    candidate, number = base, 1
    while candidate.exists():
        if read_record(candidate) is None and (candidate / CHECKPOINT_FILE).exists():
            log.warning("an unfinished run exists at %s; continue it with --resume %s", candidate, candidate)
        number += 1
        candidate = base.with_name(f"{base.name}-{number}")
    return candidate


def _class_weights(labels: np.ndarray, num_classes: int) -> list[float]:
    """w_i = max_j n_j / n_i over the training counts; classes with no sample get weight 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    weights = np.divide(counts.max(), counts, out=np.zeros_like(counts), where=counts > 0)
    return weights.round(6).tolist()


def _summary_rows(metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for split in ("test", "target"):
        if split not in metrics:
            continue
        for domain, values in metrics[split]["per_domain"].items():
            rows.append({"split": split, "river": domain, **{k: values[k] for k in ("n", "accuracy", "macro_f1")}})
        if len(metrics[split]["per_domain"]) > 1:
            rows.append({"split": split, "river": "(all)",
                         **{k: metrics[split][k] for k in ("n", "accuracy", "macro_f1")}})
    return rows


def summary_table(record: dict[str, Any]) -> pd.DataFrame:
    """In-domain test and target accuracy and macro-F1 per river, from a run record."""
    return pd.DataFrame(_summary_rows(record["metrics"]), columns=["split", "river", "n", "accuracy", "macro_f1"])


class Experiment:
    """A prepared run: data, protocol, split, config, datasets; ``run()`` trains and records."""

    def __init__(self, request: RunRequest, *, resume: bool = False) -> None:
        started = time.perf_counter()
        self.request, self.resume = request, resume
        self.device = resolve_device(request.device)
        self.dataset, self.synthetic = _open_data(request)
        manifest = select_classes(self.dataset.manifest, request.classes)
        self.dataset = dataclasses.replace(self.dataset, manifest=manifest)
        self.protocol = resolve_protocol(manifest, request.domains, request.targets, request.protocol)

        use_cpu_preset = self.device.type == "cpu" and request.config_file is None
        self.config, self.config_layers = resolve_config(
            request.method, config_file=request.config_file, use_cpu_preset=use_cpu_preset,
            overrides=request.overrides, hparam_names=default_hparams(request.method))
        if use_cpu_preset:
            log.info("no GPU and no --config: using the CPU preset (configs/presets/cpu.yaml): %s px, %d epochs",
                     self.config["data"]["size"], self.config["training"]["epochs"])
        self.run_dir = Path(request.run_dir) if resume else _run_dir(request, self.protocol)
        self.split = make_split(manifest, self.protocol, request.seed, self.config["data"])
        self.class_names = ordered_classes(manifest.loc[self.split != "unused", "label"])
        self.labels = manifest["label"].map({c: i for i, c in enumerate(self.class_names)}).fillna(-1).to_numpy(int)
        domain_index = {d: i for i, d in enumerate(self.protocol.domains)}
        self.domains = manifest["domain"].map(domain_index).fillna(-1).to_numpy(int)
        self.prepare_seconds = time.perf_counter() - started

    def rows(self, split: str) -> np.ndarray:
        """Manifest row positions of a split."""
        return np.flatnonzero(self.split.to_numpy() == split)

    def _check_training_classes(self) -> dict[str, Any]:
        trained = set(self.labels[self.rows("train")])
        absent = [c for i, c in enumerate(self.class_names) if i not in trained]
        facts: dict[str, Any] = {"classes_absent_from_training": absent}
        if absent:
            log.warning("class(es) %s have no training sample: the model cannot learn them", ", ".join(absent))
        target = self.rows("target")
        if len(target):
            reachable = np.isin(self.labels[target], sorted(trained))
            facts["target_ceiling"] = float(reachable.mean())
            if not reachable.all():
                log.warning("%.1f%% of the target samples belong to classes absent from training: target "
                            "accuracy cannot exceed %.3f", 100 * (1 - reachable.mean()), reachable.mean())
        return facts

    def _write_inputs(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        request = dataclasses.asdict(self.request) | {"run_dir": str(self.run_dir)}
        atomic_write_text(self.run_dir / REQUEST_FILE, json.dumps(request, indent=2) + "\n")
        atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(self.config, sort_keys=False))
        save_split(self.dataset.manifest, self.split, str(self.run_dir / "split.csv"))

    def _datasets(self, size: int, seed: int) -> tuple[dict[str, PairedGrainDataset], Any]:
        pairs = PairImageCache().load(self.dataset, size, self.config["data"]["crop"], progress=self.request.progress)
        stats = channel_stats(pairs.plane, pairs.cross, self.rows("train"))
        augmentation = AugmentationConfig.from_mapping(self.config["augmentation"])
        datasets = {"train": PairedGrainDataset(pairs, self.rows("train"), self.labels, self.domains,
                                                PairTransform(size, stats, train=True, augmentation=augmentation,
                                                              seed=seed))}
        evaluation = PairTransform(size, stats, train=False)
        for split in EVALUATED_SPLITS:
            if len(self.rows(split)):
                datasets[split] = PairedGrainDataset(pairs, self.rows(split), self.labels, self.domains, evaluation)
        return datasets, stats

    def _evaluate(self, algorithm, datasets, settings: TrainingSettings) -> dict[str, dict[str, Any]]:
        metrics = {}
        for split in EVALUATED_SPLITS:
            if split not in datasets:
                continue
            probabilities, indices = predict_dataset(algorithm, datasets[split], self.device,
                                                     settings.eval_batch_size, settings.num_workers,
                                                     progress=self.request.progress, description=f"evaluating {split}")
            metrics[split] = classification_metrics(self.labels[indices], probabilities.argmax(1), self.class_names,
                                                    self.domains[indices], list(self.protocol.domains))
            pd.DataFrame(probabilities, columns=self.class_names).assign(
                sample_id=self.dataset.manifest["sample_id"].to_numpy()[indices],
                label=[self.class_names[i] for i in self.labels[indices]],
            ).to_csv(self.run_dir / f"predictions_{split}.csv", index=False)
        return metrics

    def run(self, stop_after_epoch: Callable[[int], bool] | None = None) -> dict[str, Any]:
        """Train, evaluate and record; returns the run record.

        ``stop_after_epoch(epoch)`` returning True interrupts training after that epoch's checkpoint
        (used to test resuming).
        """
        request, config = self.request, self.config
        seed_everything(request.seed, config["training"]["deterministic"])
        if not self.resume:
            self._write_inputs()
        facts = self._check_training_classes()
        training = {k: v for k, v in config["training"].items() if k not in ("class_weighted_loss", "deterministic")}
        training["num_workers"] = loader_workers(training["num_workers"], self.device)
        settings = TrainingSettings(**training)
        datasets, stats = self._datasets(config["data"]["size"], request.seed)
        hparams = dict(config["hparams"])
        if config["training"]["class_weighted_loss"]:
            hparams["class_weights"] = _class_weights(self.labels[self.rows("train")], len(self.class_names))
        algorithm = build_algorithm(request.method, len(self.class_names), len(self.protocol.sources), hparams)
        algorithm.to(self.device)

        tracker = Tracker(request.wandb_mode, self.run_dir, project=request.wandb_project,
                          group=request.wandb_group or self.protocol.label, name=self.run_dir.name,
                          tags=[request.method, self.protocol.name, *request.tags],
                          config={**config, "seed": request.seed, "sources": self.protocol.sources,
                                  "targets": self.protocol.targets})
        failed = True
        try:
            log.info("run %s: %s, %s protocol, sources %s%s, seed %d, device %s, %d train / %d val pairs",
                     self.run_dir, request.method, self.protocol.name, ",".join(self.protocol.sources),
                     f", targets {','.join(self.protocol.targets)}" if self.protocol.targets else "",
                     request.seed, self.device, len(datasets["train"]), len(datasets.get("val", [])))
            trainer = Trainer(algorithm, datasets["train"], datasets.get("val"), settings, seed=request.seed,
                              device=self.device, run_dir=self.run_dir, class_names=self.class_names,
                              tracker=tracker, progress=request.progress)
            fit = trainer.fit(resume=self.resume, stop_after_epoch=stop_after_epoch)
            evaluate_start = time.perf_counter()
            metrics = self._evaluate(algorithm, datasets, settings)
            evaluate_seconds = time.perf_counter() - evaluate_start
            record = self._record(fit, metrics, facts, stats, evaluate_seconds)
            self._save_model(algorithm, stats)
            self._figures(record, fit, tracker)
            tracker.summary({f"{split}/{k}": v[k] for split, v in metrics.items() for k in ("accuracy", "macro_f1")})
            write_record(record, self.run_dir, Path(request.out) / RESULTS_LOG)
            for leftover in (CHECKPOINT_FILE, BEST_WEIGHTS_FILE):
                (self.run_dir / leftover).unlink(missing_ok=True)
            failed = False
            return record
        finally:
            tracker.finish(failed=failed)

    def _record(self, fit: FitResult, metrics: dict, facts: dict, stats, evaluate_seconds: float) -> dict[str, Any]:
        history = fit.history
        return {
            "status": "complete",
            "method": self.request.method,
            "protocol": self.protocol.name,
            "sources": list(self.protocol.sources),
            "targets": list(self.protocol.targets),
            "seed": self.request.seed,
            "classes": self.class_names,
            "selection": {"rule": fit.selection_rule, "epoch": fit.best_epoch, "score": fit.best_score,
                          "metric": self.config["training"]["selection_metric"],
                          "epochs_run": len(history), "stopped_early": fit.stopped_early},
            "metrics": metrics,
            "timing": {"prepare_seconds": round(self.prepare_seconds, 2), "train_seconds": round(fit.train_seconds, 2),
                       "evaluate_seconds": round(evaluate_seconds, 2),
                       "seconds_per_epoch": round(float(np.mean([h["seconds"] for h in history])), 2) if history else None,
                       "device": str(self.device), "resumed": self.resume},
            "config": self.config,
            "versions": package_versions(),
            "data": {"root": str(self.dataset.root), "manifest_hash": manifest_hash(self.dataset.manifest),
                     "n_pairs": int((self.split != "unused").sum()), "synthetic": self.synthetic,
                     "split_counts": split_counts(self.dataset.manifest, self.split).to_dict(orient="index")},
            "run_dir": str(self.run_dir),
            "extras": {**facts, "config_layers": self.config_layers, "normalisation": stats.to_dict(),
                       "final_epoch": history[-1] if history else {}},
        }

    def _save_model(self, algorithm, stats) -> None:
        payload = {"method": self.request.method, "state_dict": algorithm.state_dict(),
                   "hparams": algorithm.hparams, "num_classes": len(self.class_names),
                   "num_domains": len(self.protocol.sources), "classes": self.class_names,
                   "sources": list(self.protocol.sources), "normalisation": stats.to_dict(),
                   "data": {k: self.config["data"][k] for k in ("size", "crop")}}
        atomic_write(self.run_dir / MODEL_FILE, lambda tmp: torch.save(payload, tmp))

    def _figures(self, record: dict[str, Any], fit: FitResult, tracker: Tracker) -> None:
        for split in ("test", "target"):
            if split in record["metrics"]:
                path = save_confusion_matrix(record["metrics"][split]["confusion"], self.class_names,
                                             self.run_dir / f"confusion_{split}.png",
                                             f"{record['method']} {split} ({'+'.join(self.protocol.targets) or 'mixed'})")
                tracker.log_confusion(f"confusion/{split}", record["metrics"][split]["confusion"], self.class_names)
                tracker.log_image(f"figures/confusion_{split}", path)
        if fit.history:
            save_training_curves(fit.history, self.run_dir / "training_curves.png", self.run_dir.name)


def run_experiment(request: RunRequest) -> dict[str, Any]:
    """Prepare and run one experiment; returns its record (also written to the run directory)."""
    return Experiment(request).run()


def resume_experiment(run_dir: str | Path, *, device: str | None = None, wandb_mode: str | None = None,
                      progress: bool = True) -> dict[str, Any]:
    """Continue an interrupted run from its last checkpoint with its saved request and config.

    Raises:
        FileNotFoundError: the directory holds no saved request.
        ValueError: the run is already complete.
    """
    run_dir = Path(run_dir)
    if not (run_dir / REQUEST_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {REQUEST_FILE})")
    if (record := read_record(run_dir)) is not None and record.get("status") == "complete":
        raise ValueError(f"{run_dir} is already complete; nothing to resume")
    saved = json.loads((run_dir / REQUEST_FILE).read_text(encoding="utf-8"))
    request = RunRequest(**saved)
    request.run_dir, request.progress = str(run_dir), progress
    request.config_file = str(run_dir / "config.yaml")
    request.overrides = []
    if device:
        request.device = device
    if wandb_mode:
        request.wandb_mode = wandb_mode
    return Experiment(request, resume=True).run()
