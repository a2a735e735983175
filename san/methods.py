"""The one registry of every method this project trains, deep and classical.

Each method is named once, here, with its family and, as ``module:attribute`` import paths, the
function that runs it, the one that resumes it (deep methods) and the one that loads a finished
run for prediction. Paths are strings so that ``san`` never imports ``baselines`` (the methods it
is compared with) and a worker process can resolve a method from its name alone. Every command
line, the benchmark grid, prediction and the label-error finder ask this registry; none keeps a
list of its own.

This module imports nothing from the project, so every layer may use it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

FAMILIES: tuple[str, ...] = ("classical", "cnn", "erm", "san", "dg", "published")

_DEEP_RUN = "san.training.experiment:run_experiment"
_DEEP_RESUME = "san.training.experiment:resume_experiment"
_DEEP_PREDICTOR = "san.inference.predictors:load_deep_predictor"
_CLASSICAL_RUN = "baselines.experiment:run_classical_experiment"
_CLASSICAL_PREDICTOR = "baselines.predictor:load_classical_predictor"
_DEEP_HPARAMS = "san.algorithms.registry:default_hparams"
_CLASSICAL_HPARAMS = "baselines.experiment:classical_hparams"


class UnknownMethodError(ValueError):
    """A method name that is not registered (the message lists the registered ones)."""


@dataclass(frozen=True)
class Method:
    """One method: how to run, resume and load it, as import paths.

    Attributes:
        name: the name used on command lines, in run folders and records.
        family: ``classical`` (scikit-learn on hand-crafted features), ``cnn`` (single-network CNN
            baselines), ``erm`` (the Siamese pair network without the adversary; its own family so it
            is never "the best CNN" of a table), ``san``, ``dg`` (domain-generalisation algorithms
            on the same pair network: the DomainBed family, the class-conditional adversary, SWAD)
            or ``published`` (a reproduction of the published protocol, labelled as such).
        run: ``module:function`` taking a ``RunRequest`` and returning the run record.
        predictor: ``module:function`` taking a run directory (and ``device``, ``trust_run``) and
            returning a ``san.inference.predictors.Predictor``.
        resume: ``module:function`` continuing an interrupted run from its directory; None when the
            method has no checkpoints (a classical fit is simply rerun).
        hparams: ``module:function`` taking the method name and returning its default
            hyper-parameters (the values a config's ``hparams`` section overrides).
        algorithm_module: for deep methods, the module whose import registers the algorithm class.
        label_errors: the label-error finder can use this method as its out-of-fold model.
        summary: one line for ``--help`` texts and the README.
        callbacks: ``module:function`` taking the built algorithm and returning the engine callbacks
            its training needs (e.g. SWAD's weight averaging); None for none.
    """

    name: str
    family: str
    run: str
    predictor: str
    hparams: str
    resume: str | None = None
    algorithm_module: str | None = None
    label_errors: bool = False
    summary: str = ""
    callbacks: str | None = None

    @property
    def deep(self) -> bool:
        """True for methods trained by the engine (they have an algorithm class)."""
        return self.algorithm_module is not None


def _classical(name: str, summary: str, *, label_errors: bool = False) -> Method:
    return Method(
        name,
        "classical",
        _CLASSICAL_RUN,
        _CLASSICAL_PREDICTOR,
        _CLASSICAL_HPARAMS,
        label_errors=label_errors,
        summary=summary,
    )


def _deep(
    name: str,
    family: str,
    module: str,
    summary: str,
    *,
    label_errors: bool = False,
    callbacks: str | None = None,
) -> Method:
    return Method(
        name,
        family,
        _DEEP_RUN,
        _DEEP_PREDICTOR,
        _DEEP_HPARAMS,
        _DEEP_RESUME,
        module,
        label_errors,
        summary,
        callbacks,
    )


# Order matters: it is the order of `--methods all`, of the benchmark grid and of the tables' rows.
_METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        _classical("svm", "RBF support-vector machine on hand-crafted PPL/XPL features", label_errors=True),
        _classical("rf", "random forest on hand-crafted features"),
        _classical("knn", "k-nearest neighbours on standardised hand-crafted features"),
        _classical("dt", "decision tree (entropy criterion) on hand-crafted features"),
        _classical("cart", "CART decision tree (Gini criterion) on hand-crafted features"),
        _deep("vgg16", "cnn", "baselines.cnn", "VGG-16 on the pair (input mode from the config)"),
        _deep("resnet34", "cnn", "baselines.cnn", "ResNet34 on the pair (input mode from the config)"),
        _deep(
            "erm",
            "erm",
            "san.algorithms",
            "the Siamese pair network without the adversary",
            label_errors=True,
        ),
        _deep("san", "san", "san.algorithms", "Siamese Adversarial Network: pair network + river adversary"),
        _deep(
            "cdann",
            "dg",
            "san.algorithms",
            "class-conditional river adversary, balanced per class (CDANN/CDAN)",
        ),
        _deep(
            "coral", "dg", "san.algorithms", "Deep CORAL: match feature means and covariances across rivers"
        ),
        _deep(
            "mmd", "dg", "san.algorithms", "MMD: match feature distributions across rivers (Gaussian kernels)"
        ),
        _deep(
            "groupdro", "dg", "san.algorithms", "GroupDRO: minimise the worst river's loss (online weights)"
        ),
        _deep("vrex", "dg", "san.algorithms", "V-REx: penalise the variance of the rivers' losses"),
        _deep("mixup", "dg", "san.algorithms", "inter-river Mixup of image pairs and labels"),
        _deep(
            "mixstyle",
            "dg",
            "san.algorithms",
            "MixStyle: mix feature statistics across rivers in early layers",
        ),
        _deep(
            "swad",
            "dg",
            "san.algorithms",
            "SWAD: ERM with dense weight averaging over a validation-loss window",
            callbacks="san.training.swad:swad_callbacks",
        ),
        _deep(
            "published_san",
            "published",
            "san.algorithms",
            "published-protocol reproduction: two ResNet-18s, three stages, frozen discriminator",
        ),
    )
}


def method_names(family: str | None = None, *, deep: bool | None = None) -> list[str]:
    """Registered method names in registry order, optionally of one family or only deep/classical."""
    return [
        m.name
        for m in _METHODS.values()
        if (family is None or m.family == family) and (deep is None or m.deep == deep)
    ]


def get_method(name: str) -> Method:
    """The method registered as ``name`` (case-insensitive).

    Raises:
        UnknownMethodError: no such method; the message lists the registered ones.
    """
    method = _METHODS.get(name.lower()) if isinstance(name, str) else None
    if method is None:
        raise UnknownMethodError(f"unknown method {name!r}; registered: {', '.join(_METHODS)}")
    return method


def families() -> dict[str, str]:
    """Method name -> family, for every registered method."""
    return {m.name: m.family for m in _METHODS.values()}


def resolve(path: str) -> Callable[..., Any]:
    """The object an import path ``module:attribute`` names (imports the module).

    Raises:
        ImportError: the module or the attribute does not exist.
    """
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attribute)
    except AttributeError as error:
        raise ImportError(f"{module_name} has no attribute {attribute!r} (registry path {path!r})") from error


def default_hparams(name: str) -> dict[str, Any]:
    """The default hyper-parameters of method ``name`` (imports its module)."""
    return resolve(get_method(name).hparams)(name)


def run_method(request: Any) -> dict[str, Any]:
    """Run ``request.method`` through its registered runner; returns the run record."""
    return resolve(get_method(request.method).run)(request)
