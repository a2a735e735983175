"""The training engine: drives any registered Algorithm through epochs.

Per step it calls ``algorithm.update(batch, progress)``, advances the learning-rate schedule and
calls the weight averager's (``training.averaging``) and each callback's ``after_step``; per epoch it
scores ``val`` (training rivers only; overall, per source river, and its loss), and the averaged
model too when averaging, keeps the best weights (the averaged ones when averaging), stops early if
asked, and writes a checkpoint from which ``resume`` continues exactly (data order, augmentation
streams and random states depend only on the seed and the epoch, or are restored). Splits given as
``scored_splits`` (a cross-domain run's in-domain test and target) are scored after every epoch too,
on the model that epoch would select, for the record only: the selection rules of the tables read
them (:mod:`san.benchmark.selection`); training and the checkpoint choice never do. Callbacks
(:class:`TrainingCallback`, e.g. SWAD) may replace the selected weights at the end.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from data_tools.atomic import atomic_write
from data_tools.dataset import PairedGrainDataset, seed_worker
from data_tools.transforms import DIHEDRAL_VIEWS, IDENTITY_VIEW, dihedral_view_tensor
from san.algorithms.base import Algorithm
from san.evaluation.metrics import classification_metrics
from san.runs.tracking import Tracker
from san.safe_load import UnsafeFileError, load_plain_torch
from san.training.averaging import AVERAGING, WeightAverager, build_averager
from san.training.sampling import BalancedBatchSampler, check_resampling

log = logging.getLogger(__name__)

SCHEDULES = ("cosine", "dann", "constant")
SELECTION_METRICS = ("accuracy", "macro_f1", "balanced_accuracy")
CHECKPOINT_FILE = "checkpoint.pt"
BEST_WEIGHTS_FILE = "best_weights.pt"
CHECKPOINT_KEYS = (
    "epoch",
    "model",
    "training_state",
    "scheduler",
    "history",
    "best_epoch",
    "best_score",
    "patience_left",
    "random_states",
)
BEST_PLAIN_WEIGHTS_FILE = "best_plain_weights.pt"  # with averaging: the best epoch of the raw weights


class TrainingInterrupted(RuntimeError):
    """Raised by the ``stop_after_epoch`` hook (tests simulate a crash with it)."""


@dataclass(frozen=True)
class TrainingSettings:
    """The ``training`` section of a run config, checked."""

    epochs: int
    batch_size: int
    eval_batch_size: int = 128
    schedule: str = "cosine"
    warmup_epochs: int = 0
    patience: int | None = None
    selection_metric: str = "accuracy"
    domain_balanced: bool = True
    class_balanced: bool = False
    resample: str = "none"
    resample_count: int | None = None
    num_workers: int = 0
    averaging: str = "none"
    ema_decay: float = 0.998
    swa_start: float = 0.75
    epoch_scores: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError(f"epochs and batch_size must be >= 1 (got {self.epochs}, {self.batch_size})")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"training.schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.selection_metric not in SELECTION_METRICS:
            raise ValueError(
                f"training.selection_metric must be one of {SELECTION_METRICS}, got {self.selection_metric!r}"
            )
        check_resampling(self.resample, self.resample_count, self.class_balanced)
        if self.averaging not in AVERAGING:
            raise ValueError(f"training.averaging must be one of {AVERAGING}, got {self.averaging!r}")


@dataclass
class FitResult:
    """What training produced: per-epoch history and the chosen epoch."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = -math.inf
    stopped_early: bool = False
    train_seconds: float = 0.0
    selection_rule: str = ""
    plain_best_epoch: int = -1  # with averaging: the best epoch of the raw (not averaged) weights
    plain_best_score: float = -math.inf
    averaging: dict[str, Any] = field(default_factory=dict)  # the averager's description, if any
    selection_details: dict[str, Any] = field(default_factory=dict)  # set by callbacks, e.g. SWAD's window


@dataclass(frozen=True)
class ScoredSplit:
    """A split scored after every epoch for the record (history keys ``<name>_accuracy``,
    ``<name>_macro_f1`` and ``<name>_n``), never for training or selection. ``parts`` name subsets of
    its manifest rows scored as well (keys ``<name>_<part>_accuracy`` and so on)."""

    name: str
    data: PairedGrainDataset
    parts: Mapping[str, np.ndarray] = field(default_factory=dict)


class TrainingCallback(Protocol):
    """What the engine calls around training (e.g. :class:`san.training.swad.SWADAverager`).

    Unlike a :class:`~san.training.averaging.WeightAverager` (``training.averaging``, whose averaged
    model is scored and selected after every epoch), a callback sees the whole run and may replace
    the selected weights at the end (``after_fit``); one that does so says ``replaces_weights = True``
    and cannot be combined with ``training.averaging``.
    """

    def after_step(self, algorithm: Algorithm, step: int) -> None:
        """After optimisation step ``step`` (0-based, counted over the whole run)."""

    def after_epoch(self, algorithm: Algorithm, epoch: int, row: Mapping[str, float]) -> None:
        """After epoch ``epoch`` (0-based) was scored; ``row`` is its history row."""

    def after_fit(
        self, algorithm: Algorithm, result: FitResult, train_batches: Iterable[dict[str, torch.Tensor]]
    ) -> None:
        """After the best weights were loaded; may replace them and describe that in ``result``."""

    def state_dict(self) -> dict[str, Any]:
        """What a resume needs (tensors and plain containers only)."""

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output."""


def lr_factor(schedule: str, progress: float, warmup_fraction: float = 0.0) -> float:
    """Learning-rate multiplier at training progress p in [0, 1].

    cosine: (1 + cos(pi p)) / 2; dann: (1 + 10 p)^-0.75 (Ganin & Lempitsky); constant: 1.
    A linear warm-up from 0 scales the first ``warmup_fraction`` of training.
    """
    if schedule == "cosine":
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    elif schedule == "dann":
        factor = (1.0 + 10.0 * progress) ** -0.75
    elif schedule == "constant":
        factor = 1.0
    else:
        raise ValueError(f"unknown schedule {schedule!r}; expected one of {SCHEDULES}")
    if warmup_fraction > 0 and progress < warmup_fraction:
        factor *= progress / warmup_fraction
    return factor


def move_batch(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """The batch's tensors on the device."""
    return {key: value.to(device, non_blocking=True) for key, value in batch.items()}


@torch.no_grad()
def _map_dataset(
    algorithm: Algorithm,
    dataset: PairedGrainDataset,
    device: torch.device,
    output: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    batch_size: int,
    num_workers: int,
    progress: bool,
    description: str,
) -> tuple[np.ndarray, np.ndarray]:
    """``output(batch)`` of every item in order, in evaluation mode, and the manifest row indices."""
    was_training = algorithm.training
    algorithm.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    outputs, indices = [], []
    for batch in tqdm(loader, desc=description, leave=False, disable=not progress):
        outputs.append(output(move_batch(batch, device)).float().cpu().numpy())
        indices.append(batch["index"].numpy())
    algorithm.train(was_training)
    return np.concatenate(outputs), np.concatenate(indices)


def predict_dataset(
    algorithm: Algorithm,
    dataset: PairedGrainDataset,
    device: torch.device,
    batch_size: int = 128,
    num_workers: int = 0,
    progress: bool = False,
    description: str = "predicting",
    tta: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities (N x C) and manifest row indices (N) for every item, in order.

    With ``tta`` the probabilities are the mean over the 8 dihedral views of each pair (the same view
    of both images, :func:`data_tools.transforms.dihedral_view_tensor`).
    """
    views = range(len(DIHEDRAL_VIEWS)) if tta else (IDENTITY_VIEW,)

    def probabilities(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mean = 0
        for view in views:
            viewed = {**batch, **{k: dihedral_view_tensor(batch[k], view) for k in ("plane", "cross")}}
            mean = mean + torch.softmax(algorithm.predict(viewed).float(), dim=1) / len(views)
        return mean

    return _map_dataset(
        algorithm, dataset, device, probabilities, batch_size, num_workers, progress, description
    )


def dataset_features(
    algorithm: Algorithm,
    dataset: PairedGrainDataset,
    device: torch.device,
    batch_size: int = 128,
    num_workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """The features the class head sees (N x d, :meth:`Algorithm.features`) and the manifest row
    indices (N) of every item, in order."""
    return _map_dataset(
        algorithm, dataset, device, algorithm.features, batch_size, num_workers, False, "features"
    )


def score_predictions(
    probabilities: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    domains: np.ndarray | None = None,
    domain_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Scalar scores of class probabilities (N x C) against labels (N): ``accuracy``,
    ``balanced_accuracy``, ``macro_f1``, ``loss`` (mean negative log-likelihood) and, given the domain
    index of each row, ``accuracy_<domain name>`` per domain."""
    metrics = classification_metrics(labels, probabilities.argmax(1), class_names, domains, domain_names)
    scores = {k: float(metrics[k]) for k in SELECTION_METRICS}
    picked = probabilities[np.arange(len(labels)), labels]
    scores["loss"] = float(-np.log(np.clip(picked, 1e-12, None)).mean())
    scores.update({f"accuracy_{d}": float(m["accuracy"]) for d, m in metrics["per_domain"].items()})
    return scores


def _save(obj: Any, path: Path) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


_RESTART_HINT = "If this run folder is yours, delete {name} to start the run again from scratch"


def _random_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _restore_random_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


class Trainer:
    """Fits an algorithm on a training dataset, selecting on a validation dataset."""

    def __init__(
        self,
        algorithm: Algorithm,
        train_data: PairedGrainDataset,
        val_data: PairedGrainDataset | None,
        settings: TrainingSettings,
        *,
        seed: int,
        device: torch.device,
        run_dir: Path,
        class_names: list[str],
        tracker: Tracker | None = None,
        progress: bool = True,
        averager: WeightAverager | None = None,
        domain_names: Sequence[str] | None = None,
        scored_splits: Sequence[ScoredSplit] = (),
        callbacks: Sequence[TrainingCallback] = (),
    ) -> None:
        """``averager`` replaces the one ``settings.averaging`` describes; ``callbacks`` are called
        around training (:class:`TrainingCallback`, e.g. SWAD's).

        Raises:
            ValueError: a callback that replaces the selected weights together with an averager.
        """
        self.algorithm, self.train_data, self.val_data = algorithm, train_data, val_data
        self.settings, self.seed, self.device, self.run_dir = settings, seed, device, Path(run_dir)
        self.class_names, self.tracker, self.progress = class_names, tracker, progress
        self.domain_names = domain_names
        self.scored_splits = tuple(scored_splits) if settings.epoch_scores else ()
        self.callbacks = tuple(callbacks)
        self._plain_weights: Path | None = None  # set by fit when the selected weights are an average
        train_rows = train_data.rows
        self.sampler = BalancedBatchSampler(
            train_data.labels[train_rows],
            train_data.domains[train_rows],
            settings.batch_size,
            seed=seed,
            domain_balanced=settings.domain_balanced,
            class_balanced=settings.class_balanced,
            resample=settings.resample,
            resample_count=settings.resample_count,
        )
        algorithm.set_training_distribution(
            self.sampler.class_domain_distribution(algorithm.num_classes, algorithm.num_domains)
        )
        self.steps_per_epoch = len(self.sampler)
        self.total_steps = settings.epochs * self.steps_per_epoch
        warmup = settings.warmup_epochs / settings.epochs
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            algorithm.optimizer, lambda step: lr_factor(settings.schedule, step / self.total_steps, warmup)
        )
        self.averager = (
            averager
            if averager is not None
            else build_averager(
                settings.averaging,
                algorithm,
                epochs=settings.epochs,
                ema_decay=settings.ema_decay,
                swa_start=settings.swa_start,
                device=device,
            )
        )
        if self.averager is not None and (
            replacing := [type(c).__name__ for c in self.callbacks if getattr(c, "replaces_weights", False)]
        ):
            raise ValueError(
                f"{', '.join(replacing)} averages the weights itself; it cannot be combined with "
                f"training.averaging={self.averager.name!r} (set training.averaging: none)"
            )

    def epoch_loader(self, epoch: int) -> DataLoader:
        """The training batches of ``epoch`` (0-based): the same order and augmentation every call."""
        self.sampler.set_epoch(epoch)
        self.train_data.transform.reseed(self.seed * 100_003 + epoch)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return DataLoader(
            self.train_data,
            batch_sampler=self.sampler,
            num_workers=self.settings.num_workers,
            worker_init_fn=seed_worker,
            generator=generator,
            pin_memory=self.device.type == "cuda",
        )

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        self.algorithm.train()
        sums: dict[str, float] = defaultdict(float)
        bar = tqdm(
            self.epoch_loader(epoch),
            total=self.steps_per_epoch,
            desc=f"epoch {epoch + 1}/{self.settings.epochs}",
            leave=False,
            disable=not self.progress,
        )
        # Wall time spent waiting for the loader (decoding, augmentation) against the whole loop: the
        # record's train_data_seconds / train_loop_seconds says whether data is on the critical path.
        loop_start = last = time.perf_counter()
        waited = 0.0
        for i, batch in enumerate(bar):
            waited += time.perf_counter() - last
            step = epoch * self.steps_per_epoch + i
            try:
                scalars = self.algorithm.update(move_batch(batch, self.device), step / self.total_steps)
            except FloatingPointError as error:
                raise FloatingPointError(f"epoch {epoch + 1}, step {step}: {error}") from error
            self.scheduler.step()
            if self.averager is not None:
                self.averager.after_step(self.algorithm, step)
            for callback in self.callbacks:
                callback.after_step(self.algorithm, step)
            for key, value in scalars.items():
                sums[key] += value
            bar.set_postfix(loss=f"{sums['loss'] / (i + 1):.3f}", acc=f"{sums['acc'] / (i + 1):.3f}")
            last = time.perf_counter()
        means = {f"train_{k}": v / self.steps_per_epoch for k, v in sums.items()}
        means["lr"] = self.scheduler.get_last_lr()[0]
        means["train_data_seconds"] = waited
        means["train_loop_seconds"] = time.perf_counter() - loop_start
        return means

    def _predict(
        self, data: PairedGrainDataset, algorithm: Algorithm | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        return predict_dataset(
            algorithm or self.algorithm,
            data,
            self.device,
            self.settings.eval_batch_size,
            self.settings.num_workers,
        )

    def _validate(self, algorithm: Algorithm | None = None, prefix: str = "val_") -> dict[str, float]:
        """Scores of ``val`` (:func:`score_predictions`; ``loss`` is the plain cross-entropy of the
        val labels, without label smoothing or class weights), keys ``<prefix><score>``."""
        if self.val_data is None or len(self.val_data) == 0:
            return {}
        probabilities, rows = self._predict(self.val_data, algorithm)
        domains = self.val_data.domains[rows] if self.domain_names is not None else None
        scores = score_predictions(
            probabilities, self.val_data.labels[rows], self.class_names, domains, self.domain_names
        )
        return {f"{prefix}{k}": v for k, v in scores.items()}

    def _averaged_row(self, epoch: int) -> tuple[Algorithm | None, dict[str, float]]:
        """After an epoch: update the averager, and score its model on ``val`` (keys ``val_avg_*``)."""
        if self.averager is None:
            return None, {}
        self.averager.after_epoch(self.algorithm, epoch)
        model = self.averager.evaluation_model(epoch, self.epoch_loader(epoch))
        if model is None:
            return None, {}
        return model, self._validate(model, "val_avg_")

    def _score_splits(self, algorithm: Algorithm | None = None) -> dict[str, float]:
        """The ``scored_splits`` on ``algorithm`` (default: the trained one), for the record only."""
        row: dict[str, float] = {}
        for split in self.scored_splits:
            probabilities, rows = self._predict(split.data, algorithm)
            labels = split.data.labels[rows]
            for part, chosen in {"": None, **split.parts}.items():
                keep = slice(None) if chosen is None else np.isin(rows, chosen)
                if chosen is not None and not keep.any():
                    continue
                scores = score_predictions(probabilities[keep], labels[keep], self.class_names)
                prefix = f"{split.name}_{part}_" if part else f"{split.name}_"
                row.update({f"{prefix}{k}": scores[k] for k in ("accuracy", "macro_f1")})
                row[f"{prefix}n"] = float(len(labels[keep]))
        return row

    def _checkpoint(self, epoch: int, result: FitResult, patience_left: int | None) -> None:
        _save(
            {
                "epoch": epoch,
                "model": self.algorithm.state_dict(),
                "training_state": self.algorithm.training_state(),
                "scheduler": self.scheduler.state_dict(),
                "history": result.history,
                "best_epoch": result.best_epoch,
                "best_score": result.best_score,
                "patience_left": patience_left,
                "random_states": _random_states(),
                "plain_best": (result.plain_best_epoch, result.plain_best_score),
                "averager": None if self.averager is None else self.averager.state_dict(),
                "callbacks": [callback.state_dict() for callback in self.callbacks],
            },
            self.run_dir / CHECKPOINT_FILE,
        )

    def _restore(self, result: FitResult) -> tuple[int, int | None]:
        path = self.run_dir / CHECKPOINT_FILE
        try:
            state = load_plain_torch(path, map_location=self.device, what="checkpoint")
        except UnsafeFileError as error:
            raise UnsafeFileError(f"{error}. {_RESTART_HINT.format(name=path.name)}") from error
        if not isinstance(state, dict) or any(k not in state for k in CHECKPOINT_KEYS):
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise UnsafeFileError(
                f"{path}: not a checkpoint written by this engine (expected keys {list(CHECKPOINT_KEYS)}, "
                f"got {found}). {_RESTART_HINT.format(name=path.name)}"
            )
        self.algorithm.load_state_dict(state["model"])
        self.algorithm.load_training_state(state["training_state"])
        self.scheduler.load_state_dict(state["scheduler"])
        _restore_random_states(state["random_states"])
        result.plain_best_epoch, result.plain_best_score = state.get("plain_best", (-1, -math.inf))
        if self.averager is not None and state.get("averager") is not None:
            self.averager.load_state_dict(state["averager"])
        for callback, callback_state in zip(self.callbacks, state.get("callbacks", []), strict=False):
            callback.load_state_dict(callback_state)
        result.history, result.best_epoch, result.best_score = (
            state["history"],
            state["best_epoch"],
            state["best_score"],
        )
        log.info("resuming after epoch %d of %d", state["epoch"] + 1, self.settings.epochs)
        return state["epoch"] + 1, state["patience_left"]

    def fit(
        self, *, resume: bool = False, stop_after_epoch: Callable[[int], bool] | None = None
    ) -> FitResult:
        """Train for the configured epochs (or until early stopping); returns the history and choice.

        The best weights (by the selection metric on ``val``; the last epoch when there is no ``val``)
        are saved to ``best_weights.pt`` and loaded into the algorithm before returning.
        """
        result = FitResult()
        metric = self.settings.selection_metric
        has_val = self.val_data is not None and len(self.val_data) > 0
        result.selection_rule = (
            f"best val {metric} (training rivers only)" if has_val else "last epoch (no validation split)"
        )
        patience_left = self.settings.patience
        first_epoch = 0
        if resume and (self.run_dir / CHECKPOINT_FILE).exists():
            first_epoch, patience_left = self._restore(result)
        started = time.perf_counter()
        for epoch in range(first_epoch, self.settings.epochs):
            if patience_left is not None and patience_left <= 0:
                break
            epoch_start = time.perf_counter()
            row = {"epoch": epoch + 1, **self._train_epoch(epoch), **self._validate()}
            averaged, averaged_scores = self._averaged_row(epoch)
            row.update(averaged_scores)
            # The splits are scored on the model this epoch would select: the averaged one when
            # averaging (none yet in SWA's first epochs: those rows have no split scores).
            if self.averager is None or averaged is not None:
                row.update(self._score_splits(averaged))
            if "train_disc_acc" in row:
                row["disc_chance"] = 1.0 / self.algorithm.num_domains
            row["seconds"] = time.perf_counter() - epoch_start
            for callback in self.callbacks:
                callback.after_epoch(self.algorithm, epoch, row)
            result.history.append(row)
            plain_score = row.get(f"val_{metric}", float(epoch))
            if self.averager is None:
                score, chosen = plain_score, self.algorithm
            else:
                # The averaged model is selected; before it exists (SWA's first epochs) nothing is.
                score = row.get(f"val_avg_{metric}", float(epoch) if averaged is not None else -math.inf)
                chosen = averaged
                if plain_score > result.plain_best_score:
                    result.plain_best_score, result.plain_best_epoch = plain_score, epoch + 1
                    _save(self.algorithm.state_dict(), self.run_dir / BEST_PLAIN_WEIGHTS_FILE)
            if chosen is not None and score > result.best_score:
                result.best_score, result.best_epoch = score, epoch + 1
                _save(chosen.state_dict(), self.run_dir / BEST_WEIGHTS_FILE)
                patience_left = self.settings.patience
            elif patience_left is not None and chosen is not None:  # SWA's warm epochs do not count
                patience_left -= 1
            self._log_epoch(row)
            self._checkpoint(epoch, result, patience_left)
            if stop_after_epoch is not None and stop_after_epoch(epoch + 1):
                raise TrainingInterrupted(f"stopped after epoch {epoch + 1} on request")
        if result.history and patience_left is not None and patience_left <= 0:
            result.stopped_early = len(result.history) < self.settings.epochs
        result.train_seconds = time.perf_counter() - started
        if self.averager is not None:
            result.averaging = self.averager.describe()
        best = load_plain_torch(
            self.run_dir / BEST_WEIGHTS_FILE, map_location=self.device, what="best weights"
        )
        self.algorithm.load_state_dict(best)
        for callback in self.callbacks:
            callback.after_fit(self.algorithm, result, self.epoch_loader(self.settings.epochs))
        if self.averager is not None:
            self._plain_weights = self.run_dir / BEST_PLAIN_WEIGHTS_FILE
        elif result.selection_details:  # a callback replaced the best epoch's weights (SWAD)
            self._plain_weights = self.run_dir / BEST_WEIGHTS_FILE
        return result

    def load_plain_best(self) -> bool:
        """Load the best raw (not averaged) epoch's weights into the algorithm, when the selected
        weights are an average (``training.averaging``, or a callback's such as SWAD's); False without."""
        path = self._plain_weights
        if path is None or not path.is_file():
            return False
        self.algorithm.load_state_dict(
            load_plain_torch(path, map_location=self.device, what="best raw weights")
        )
        return True

    def _log_epoch(self, row: dict[str, float]) -> None:
        shown = {
            k: v
            for k, v in row.items()
            if k
            in (
                "train_loss",
                "train_acc",
                "val_loss",
                "val_accuracy",
                "val_macro_f1",
                "val_avg_accuracy",
                "train_domain_loss",
                "train_domain_loss_chance",
                "train_disc_acc",
                "train_disc_acc_class_only",
                "train_lambda",
            )
        }
        log.info(
            "epoch %d/%d  %s  (%.1fs)",
            row["epoch"],
            self.settings.epochs,
            "  ".join(f"{k}={v:.3f}" for k, v in shown.items()),
            row["seconds"],
        )
        if self.tracker is not None:
            self.tracker.log({k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"]))
