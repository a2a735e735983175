"""Algorithms by name (after timm's ``register_model``): the engine builds them from a config.

``erm`` and ``san`` register when :mod:`san.algorithms` is imported (the look-ups below import
it); the CNN baselines register on ``import baselines``.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from san.algorithms.base import Algorithm

_ALGORITHMS: dict[str, type[Algorithm]] = {}
_LAZY: dict[str, str] = {}  # name -> module that registers it when imported


def register_algorithm(name: str) -> Callable[[type[Algorithm]], type[Algorithm]]:
    """Class decorator registering an :class:`~san.algorithms.base.Algorithm` under ``name``.

    Raises:
        ValueError: ``name`` is already registered.
    """

    def register(cls: type[Algorithm]) -> type[Algorithm]:
        if name in _ALGORITHMS:
            raise ValueError(
                f"algorithm {name!r} is already registered "
                f"(by {_ALGORITHMS[name].__module__}.{_ALGORITHMS[name].__qualname__})"
            )
        _ALGORITHMS[name] = cls
        return cls

    return register


def register_lazy(names: tuple[str, ...], module: str) -> None:
    """Declare that importing ``module`` registers ``names``; it is imported on first use.

    Lets ``import baselines`` announce the CNN baselines without importing torch (feature-extraction
    worker processes import the package too).

    Raises:
        ValueError: a name is already registered or declared by another module.
    """
    for name in names:
        if name in _ALGORITHMS or _LAZY.get(name, module) != module:
            raise ValueError(f"algorithm {name!r} is already registered")
        _LAZY[name] = module


def algorithm_names() -> list[str]:
    """The registered (or lazily declared) algorithm names, sorted."""
    _import_builtin_algorithms()
    return sorted(set(_ALGORITHMS) | set(_LAZY))


def algorithm_class(name: str) -> type[Algorithm]:
    """The class registered as ``name``.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    _import_builtin_algorithms()
    if name not in _ALGORITHMS and name in _LAZY:
        importlib.import_module(_LAZY[name])
    if name not in _ALGORITHMS:
        raise ValueError(
            f"unknown algorithm {name!r}; registered: {', '.join(sorted(_ALGORITHMS))} "
            f"(the CNN baselines register on `import baselines`)"
        )
    return _ALGORITHMS[name]


def default_hparams(name: str) -> dict[str, Any]:
    """A copy of the default hyper-parameters of algorithm ``name``.

    Raises:
        ValueError: unknown name.
    """
    return copy.deepcopy(algorithm_class(name).DEFAULT_HPARAMS)


def build_algorithm(
    name: str, num_classes: int, num_domains: int, hparams: Mapping[str, Any] | None = None
) -> Algorithm:
    """Algorithm ``name`` with ``hparams`` merged over its defaults.

    Raises:
        ValueError: unknown name, unknown hyper-parameter keys or invalid values.
    """
    return algorithm_class(name)(num_classes, num_domains, hparams)


def _import_builtin_algorithms() -> None:
    # Imported lazily: the algorithm modules import this one to register themselves.
    importlib.import_module("san.algorithms")
