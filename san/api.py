"""The Python API: train a method, load a finished run, classify pairs, and the assemblage.

``import san`` is light; these names load the libraries they need when first used. Every function
raises exceptions (most are ``ValueError`` subclasses naming the bad value: an unknown method,
river or config key, a missing file); nothing here exits the interpreter. The command lines run the
same code (see docs/python-api.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from san import methods

if TYPE_CHECKING:
    import pandas as pd

    from san.inference.predictors import Predictor

log = logging.getLogger(__name__)
__all__ = ["Run", "assemblage", "load_run", "train"]


def train(
    method: str = "san",
    data: str | Path | None = None,
    *,
    domains: Sequence[str] | None = None,
    targets: Sequence[str] | None = None,
    protocol: str | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    config: str | Path | None = None,
    out: str | Path = "runs",
    run_dir: str | Path | None = None,
    classes: Sequence[str] | None = None,
    layout: str | None = None,
    domain: str | None = None,
    features: str | Path | None = None,
    device: str = "auto",
    wandb: str | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Train one run, as ``scripts/train_san.py`` / ``train_baseline.py`` do; returns its record.

    Args:
        method: any registered method (``san``, ``erm``, ``svm``, ``rf``, ``knn``, ``dt``, ``cart``,
            ``vgg16``, ``resnet34``).
        data: an image tree or a manifest CSV; None: the built-in synthetic set.
        domains, targets, protocol: source rivers, held-out rivers and ``mixed`` or ``loro`` (as the
            command line's ``--domains``, ``--targets``, ``--protocol``).
        seed: seed of the split, initialisation and data order.
        overrides: config values, e.g. ``{"training.epochs": 1}`` (or ``["epochs=1"]`` strings).
        config: a config file layered over the method's; None without a GPU: the CPU preset.
        out: parent folder of the run directories (``run_dir``: the exact one).
        classes, layout, domain, features: as ``--classes``, ``--layout``, ``--domain``, ``--features``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        wandb: ``offline`` (files under the run directory, no network), ``online`` or ``disabled``;
            None: ``$WANDB_MODE`` when set, else offline.
        progress: show progress bars.

    Returns:
        The run record (``results.json``): ``metrics`` per split, ``run_dir``, ``config``, ...

    Raises:
        ValueError: its subclasses name what is wrong (unknown method, river, class or config key,
            bad device, unreadable data).
    """
    from san.runs.config import override_strings
    from san.runs.lifecycle import RunRequest
    from san.runs.tracking import default_mode

    name = methods.get_method(method).name
    request = RunRequest(
        method=name,
        data=None if data is None else str(data),
        layout=layout,
        domain=domain,
        features=None if features is None else str(features),
        domains=list(domains) if domains else None,
        targets=list(targets) if targets else None,
        classes=list(classes) if classes else None,
        protocol=protocol,
        seed=seed,
        config_file=None if config is None else str(config),
        overrides=override_strings(overrides),
        out=str(out),
        run_dir=None if run_dir is None else str(run_dir),
        wandb_mode=wandb or default_mode(),
        device=device,
        progress=progress,
    )
    return methods.run_method(request)


@dataclass
class Run:
    """A finished run directory, ready to classify pairs.

    Attributes:
        run_dir: the run directory.
        record: its ``results.json`` (None when the run has none).
        device: where the model runs (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``).
        trust_run: also load an old classical run's pickled ``model.joblib`` (it runs whatever code
            it holds: only for a run you made or trust); ``model.pt`` and ``model.skops`` never need it.
    """

    run_dir: Path
    record: dict[str, Any] | None = None
    device: str = "auto"
    trust_run: bool = False

    @cached_property
    def predictor(self) -> Predictor:
        """The loaded model with its preprocessing and temperature."""
        from san.inference.predictors import load_predictor

        return load_predictor(self.run_dir, self.device, trust_run=self.trust_run)

    @property
    def method(self) -> str:
        """The run's method name."""
        return self.predictor.method

    @property
    def classes(self) -> list[str]:
        """The model's classes, in the order of its probability columns."""
        return list(self.predictor.classes)

    def predict(
        self,
        data: str | Path,
        *,
        tta: bool = False,
        threshold: float = 0.5,
        layout: str | None = None,
        sample: str | None = None,
        batch_size: int = 64,
        strict: bool = False,
        progress: bool = False,
    ) -> pd.DataFrame:
        """Classify the pairs of an image tree (``{pol}/{name}``, ``{sample}/{pol}/{name}`` or a labelled
        layout) or a manifest CSV; writes nothing.

        Returns:
            One row per predicted pair, as ``predictions.csv`` of ``scripts/predict.py``: sample_id,
            sample, paths, label, the top-3 classes and probabilities, ``uncertain`` (top-1 below
            ``threshold``), ``prob_<class>`` for every class. Unreadable or unpaired files are logged
            as warnings and left out (``strict``: raise instead).

        Raises:
            ValueError: bad input (its subclasses name the file), or no pair could be predicted.
        """
        from san.inference.prediction import classify_input
        from san.inference.settings import PredictionSettings

        settings = PredictionSettings(
            tta=tta, threshold=threshold, batch_size=batch_size, strict=strict, progress=progress
        )
        classified = classify_input(self.predictor, data, layout=layout, sample=sample, settings=settings)
        for problem in classified.problems:
            log.warning("not predicted or not scored: %s: %s", problem.path, problem.message)
        if classified.predictions.empty:
            raise ValueError(f"{data}: no pair could be predicted ({len(classified.problems)} problem(s))")
        return classified.predictions


def load_run(path: str | Path, *, device: str = "auto", trust_run: bool = False) -> Run:
    """A finished run directory (any method; its folder name does not matter), with its model loaded.

    Raises:
        FileNotFoundError: no such directory.
        san.runs.saved_model.RunLoadError: it holds no usable model (the message says what is wrong).
    """
    from san.runs.records import read_record

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"no run directory at {run_dir}")
    run = Run(run_dir, read_record(run_dir), device, trust_run)
    run.predictor  # noqa: B018 (load now, so a bad run fails here and not at the first prediction)
    return run


def assemblage(
    predictions: pd.DataFrame,
    run: Run | None = None,
    *,
    quantifier: str = "auto",
    seed: int = 0,
    draws: int = 200,
) -> pd.DataFrame:
    """The mineral assemblage of every sample of ``predictions`` (what :meth:`Run.predict` returns):
    one row per sample and mineral with count, percent and its 95% Wilson interval, and the
    ``quantifier``'s estimate (``corrected_*`` columns) with a bootstrap interval of ``draws`` draws
    (``seed`` drives it). ``auto`` is the quantifier the ``run`` chose on its calibration rows; without
    a run only counting (``cc``, ``pcc``) is possible, from the ``prob_*`` columns.

    Raises:
        ValueError: a column is missing, an unknown quantifier, or one the run cannot fit.
    """
    import pandas as pd

    from san.inference.report import quantify_samples

    if run is not None:
        classes, predictor = list(run.classes), run.predictor
    else:
        classes = [c.removeprefix("prob_") for c in predictions.columns if c.startswith("prob_")]
        predictor = None
    quantified = quantify_samples(
        predictions, classes, predictor=predictor, quantifier=quantifier, seed=seed, draws=draws
    )
    log.info("assemblage quantifier: %s", quantified.note)
    return pd.concat([s.table for s in quantified.samples.values()], ignore_index=True)
