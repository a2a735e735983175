"""One training run of a deep algorithm, from a request to a run directory with its record.

``run_experiment`` is what ``scripts/train_san.py`` and ``scripts/train_baseline.py`` call for
deep methods: the shared RunContext opens the data (the built-in synthetic set when none is
given), draws and saves the split; here images are decoded once through the cache, the engine
trains, and every split is evaluated with the shared metrics before the record is written.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from data_tools.atomic import atomic_write
from data_tools.cache import PairImageCache
from data_tools.corruption import corrupt_pairs
from data_tools.dataset import PairedGrainDataset
from data_tools.splits import oracle_rows
from data_tools.transforms import (
    AugmentationConfig,
    ChannelStats,
    PairTransform,
    channel_stats,
    reference_options,
)
from san import methods
from san.algorithms.base import Algorithm
from san.algorithms.registry import build_algorithm, default_hparams
from san.evaluation.river_probe import river_probe
from san.runs.figures import save_training_curves
from san.runs.lifecycle import REQUEST_FILE, RunContext, RunRequest, open_request_data, resolve_run_config
from san.runs.records import read_record
from san.runs.saved_model import DEEP_MODEL_FILE, FORMAT_VERSION
from san.runs.tracking import Tracker
from san.runtime import loader_workers, resolve_device, seed_everything
from san.training.engine import (
    BEST_PLAIN_WEIGHTS_FILE,
    BEST_WEIGHTS_FILE,
    CHECKPOINT_FILE,
    FitResult,
    ScoredSplit,
    Trainer,
    TrainingCallback,
    TrainingSettings,
    dataset_features,
    predict_dataset,
)

log = logging.getLogger(__name__)

__all__ = ["Experiment", "RunRequest", "resume_experiment", "run_experiment"]


def _class_weights(labels: np.ndarray, num_classes: int) -> list[float]:
    """w_i = max_j n_j / n_i over the training counts; classes with no sample get weight 0."""
    counts = np.bincount(labels, minlength=num_classes).astype(float)
    weights = np.divide(counts.max(), counts, out=np.zeros_like(counts), where=counts > 0)
    return weights.round(6).tolist()


class PreparedRun(NamedTuple):
    """A run ready to train: class facts for the record, settings, datasets, stats and algorithm."""

    facts: dict[str, Any]
    settings: TrainingSettings
    datasets: dict[str, PairedGrainDataset]
    stats: ChannelStats
    algorithm: Algorithm


class Experiment:
    """A prepared deep run; ``run()`` trains, evaluates and records."""

    def __init__(self, request: RunRequest, *, resume: bool = False) -> None:
        self.device = resolve_device(request.device)
        use_cpu_preset = self.device.type == "cpu" and request.config_file is None
        hparam_defaults = default_hparams(request.method)
        # Resolved before the data is opened, so that a bad --set fails at once.
        config = resolve_run_config(request, use_cpu_preset, hparam_defaults)
        dataset, synthetic = open_request_data(request)
        self.context = RunContext(
            request,
            dataset,
            synthetic=synthetic,
            resume=resume,
            use_cpu_preset=use_cpu_preset,
            hparam_defaults=hparam_defaults,
            resolved_config=config,
        )

    @property
    def run_dir(self) -> Path:
        return self.context.run_dir

    def _datasets(self) -> tuple[dict[str, PairedGrainDataset], ChannelStats]:
        context, config = self.context, self.context.config
        size = config["data"]["size"]
        pairs = PairImageCache().load(
            context.dataset, size, config["data"]["crop"], progress=context.request.progress
        )
        pairs = corrupt_pairs(pairs, context.corruption)  # image factors degrade training rows on the fly
        reference = reference_options(config["data"])
        stats = channel_stats(pairs.plane, pairs.cross, context.rows("train"), **reference)
        augmentation = AugmentationConfig.from_mapping(config["augmentation"])
        train_transform = PairTransform(
            size, stats, train=True, augmentation=augmentation, seed=context.request.seed, **reference
        )
        datasets = {
            "train": PairedGrainDataset(
                pairs, context.rows("train"), context.labels, context.domains, train_transform
            )
        }
        evaluation = PairTransform(size, stats, train=False, **reference)
        for split in context.evaluated_splits():
            datasets[split] = PairedGrainDataset(
                pairs, context.rows(split), context.labels, context.domains, evaluation
            )
        return datasets, stats

    def _settings(self) -> TrainingSettings:
        training = {
            k: v
            for k, v in self.context.config["training"].items()
            if k not in ("class_weighted_loss", "deterministic")
        }
        training["num_workers"] = loader_workers(training["num_workers"], self.device)
        return TrainingSettings(**training)

    def _scored_splits(self, datasets: dict[str, PairedGrainDataset]) -> list[ScoredSplit]:
        """In-domain test and target, scored every epoch for the tables' selection rules (cross-domain
        runs only); the target also on its oracle-validation part (20%) and the rest."""
        if self.context.protocol.name == "mixed":
            return []
        scored = [ScoredSplit("test", datasets["test"])] if "test" in datasets else []
        if "target" in datasets:
            rows = self.context.rows("target")
            oracle = oracle_rows(self.context.manifest, rows, self.context.request.seed)
            parts = {"oracle_val": oracle, "oracle_rest": np.setdiff1d(rows, oracle)}
            scored.append(ScoredSplit("target", datasets["target"], parts))
        return scored

    def _callbacks(self, algorithm: Algorithm) -> list[TrainingCallback]:
        path = methods.get_method(self.context.request.method).callbacks
        return list(methods.resolve(path)(algorithm)) if path else []

    def _river_probe(
        self, algorithm: Algorithm, datasets: dict[str, PairedGrainDataset], settings: TrainingSettings
    ) -> dict[str, Any]:
        """The linear river probe (:mod:`san.evaluation.river_probe`) of the source rivers' test split."""
        context = self.context
        if len(context.protocol.sources) < 2 or "test" not in datasets:
            return {"status": "skipped", "reason": "needs a test split of at least two source rivers"}
        features, rows = dataset_features(
            algorithm, datasets["test"], self.device, settings.eval_batch_size, settings.num_workers
        )
        probe = river_probe(
            features,
            context.manifest["domain"].to_numpy()[rows],
            context.manifest["label"].to_numpy()[rows],
            context.request.seed,
        )
        return {**probe, "split": "test"}

    def prepare(self) -> PreparedRun:
        """Seed, open the splits and build the algorithm on the device: everything before training."""
        context, config, request = self.context, self.context.config, self.context.request
        seed_everything(request.seed, config["training"]["deterministic"])
        facts = context.training_class_facts()
        settings = self._settings()
        datasets, stats = self._datasets()
        hparams = dict(config["hparams"])
        if "img_size" in default_hparams(request.method) and hparams.get("img_size") is None:
            hparams["img_size"] = config["data"]["size"]  # fixed-size backbones (ViT) fit the input
        if config["training"]["class_weighted_loss"]:
            hparams["class_weights"] = _class_weights(
                context.labels[context.rows("train")], len(context.class_names)
            )
        algorithm = build_algorithm(
            request.method, len(context.class_names), len(context.protocol.sources), hparams
        )
        algorithm.to(self.device)
        log.info("arithmetic: %s (hparams.amp=%s)", algorithm.precision(), algorithm.hparams["amp"])
        return PreparedRun(facts, settings, datasets, stats, algorithm)

    def trainer(self, prepared: PreparedRun, tracker: Tracker | None = None) -> Trainer:
        """The engine for a prepared run (writes its checkpoints into the run directory)."""
        context = self.context
        return Trainer(
            prepared.algorithm,
            prepared.datasets["train"],
            prepared.datasets.get("val"),
            prepared.settings,
            seed=context.request.seed,
            device=self.device,
            run_dir=context.run_dir,
            class_names=context.class_names,
            tracker=tracker,
            progress=context.request.progress,
            domain_names=list(context.protocol.domains),
            scored_splits=self._scored_splits(prepared.datasets),
            callbacks=self._callbacks(prepared.algorithm),
        )

    def run(self, stop_after_epoch: Callable[[int], bool] | None = None) -> dict[str, Any]:
        """Train, evaluate and record; returns the run record.

        ``stop_after_epoch(epoch)`` returning True interrupts training after that epoch's checkpoint
        (used to test resuming).
        """
        context, config = self.context, self.context.config
        cpu_start = time.process_time()
        prepared = self.prepare()
        facts, settings, datasets, stats, algorithm = prepared
        with context.tracked() as tracker:
            trainer = self.trainer(prepared, tracker)
            fit = trainer.fit(resume=context.resume, stop_after_epoch=stop_after_epoch)
            evaluate_start = time.perf_counter()
            probabilities_by_split = self._predict(algorithm, datasets, settings)
            variants = {}
            if config["evaluation"]["tta"]:
                variants["tta"] = self._predict(algorithm, datasets, settings, tta=True)
            selected = {k: v.detach().clone() for k, v in algorithm.state_dict().items()}
            if trainer.load_plain_best():  # the raw weights' best epoch, beside the averaged model
                variants["plain"] = self._predict(algorithm, datasets, settings)
                algorithm.load_state_dict(selected)
            timing = {
                "train_seconds": round(fit.train_seconds, 2),
                "evaluate_seconds": round(time.perf_counter() - evaluate_start, 2),
                "seconds_per_epoch": round(float(np.mean([h["seconds"] for h in fit.history])), 2),
                # CPU time of this process, every thread summed (data-loader worker processes excluded)
                "cpu_seconds": round(time.process_time() - cpu_start, 1),
                "torch_threads": torch.get_num_threads(),
                "device": str(self.device),
                "precision": algorithm.precision(),
            }
            extras = {
                **facts,
                "normalisation": stats.to_dict(),
                "final_epoch": fit.history[-1],
                "sampling": trainer.sampler.describe(),
                "history": fit.history,
                "river_probe": self._river_probe(algorithm, datasets, settings),
            }

            def save_artifacts(run_dir: Path) -> None:
                self._save_model(algorithm, stats)
                save_training_curves(
                    fit.history,
                    run_dir / "training_curves.png",
                    run_dir.name,
                    chosen_epoch=fit.selection_details.get("epoch", fit.best_epoch),
                    selection=fit.selection_rule,
                )

            record = context.conclude(
                probabilities_by_split,
                self._selection(fit),
                timing,
                extras,
                save_artifacts,
                variants=variants,
            )
            for leftover in (CHECKPOINT_FILE, BEST_WEIGHTS_FILE, BEST_PLAIN_WEIGHTS_FILE):
                (context.run_dir / leftover).unlink(missing_ok=True)
            return record

    def _predict(
        self,
        algorithm,
        datasets: dict[str, PairedGrainDataset],
        settings: TrainingSettings,
        *,
        tta: bool = False,
    ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per evaluated split: (class probabilities, manifest rows); ``tta``: mean over the 8 D4 views."""
        return {
            split: predict_dataset(
                algorithm,
                datasets[split],
                self.device,
                settings.eval_batch_size,
                settings.num_workers,
                progress=self.context.request.progress,
                description=f"evaluating {split}{' (TTA)' if tta else ''}",
                tta=tta,
            )
            for split in self.context.evaluated_splits()
        }

    def _selection(self, fit: FitResult) -> dict[str, Any]:
        selection = {
            "rule": fit.selection_rule,
            "epoch": fit.best_epoch,
            "score": fit.best_score,
            "metric": self.context.config["training"]["selection_metric"],
            "epochs_run": len(fit.history),
            "stopped_early": fit.stopped_early,
            **fit.selection_details,
        }
        if fit.averaging:
            selection["rule"] += f", on the {fit.averaging['averaging'].upper()}-averaged weights"
            selection["averaging"] = fit.averaging
            selection["plain_epoch"] = fit.plain_best_epoch
            selection["plain_score"] = fit.plain_best_score
        return selection

    def _save_model(self, algorithm, stats: ChannelStats) -> None:
        context = self.context
        payload = {
            "format_version": FORMAT_VERSION,
            "method": context.request.method,
            "state_dict": algorithm.state_dict(),
            "hparams": algorithm.hparams,
            "num_classes": len(context.class_names),
            "num_domains": len(context.protocol.sources),
            "classes": context.class_names,
            "sources": list(context.protocol.sources),
            "normalisation": stats.to_dict(),
            "data": {
                k: context.config["data"][k]
                for k in ("size", "crop", "background_reference", "border_fraction")
            },
        }
        atomic_write(context.run_dir / DEEP_MODEL_FILE, lambda tmp: torch.save(payload, tmp))


def run_experiment(request: RunRequest) -> dict[str, Any]:
    """Prepare and run one deep experiment; returns its record (also written to the run directory)."""
    return Experiment(request).run()


def load_saved_request(run_dir: str | Path) -> RunRequest:
    """The request saved in a run directory, set up to resume it with its saved config.

    Raises:
        FileNotFoundError: the directory holds no saved request.
        ValueError: the run is already complete.
    """
    run_dir = Path(run_dir)
    if not (run_dir / REQUEST_FILE).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {REQUEST_FILE})")
    if (record := read_record(run_dir)) is not None and record.get("status") == "complete":
        raise ValueError(f"{run_dir} is already complete; nothing to resume")
    request = RunRequest(**json.loads((run_dir / REQUEST_FILE).read_text(encoding="utf-8")))
    request.run_dir, request.config_file, request.overrides = str(run_dir), str(run_dir / "config.yaml"), []
    return request


def resume_experiment(
    run_dir: str | Path, *, device: str | None = None, wandb_mode: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Continue an interrupted deep run from its last checkpoint with its saved request and config."""
    request = load_saved_request(run_dir)
    request.progress = progress
    request.device = device or request.device
    request.wandb_mode = wandb_mode or request.wandb_mode
    return Experiment(request, resume=True).run()
