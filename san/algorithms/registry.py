"""Algorithms by name (after timm's ``register_model``): the engine builds them from a config.

An algorithm class registers itself with :func:`register_algorithm` when its module is imported;
which module that is comes from the method registry (:mod:`san.methods`, ``algorithm_module``), so
a look-up by name imports it on first use (``erm`` and ``san`` from :mod:`san.algorithms`, the CNN
baselines from ``baselines.cnn``) without this module importing either.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from san import methods

if TYPE_CHECKING:
    from san.algorithms.base import Algorithm

_ALGORITHMS: dict[str, type[Algorithm]] = {}


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


def algorithm_names() -> list[str]:
    """The registered algorithm names and those of every deep method in :mod:`san.methods`, sorted."""
    return sorted(set(_ALGORITHMS) | set(methods.method_names(deep=True)))


def algorithm_class(name: str) -> type[Algorithm]:
    """The class registered as ``name``.

    Raises:
        ValueError: unknown name (the message lists the registered ones).
    """
    if name not in _ALGORITHMS and name in methods.method_names(deep=True):
        importlib.import_module(methods.get_method(name).algorithm_module)
    if name not in _ALGORITHMS:
        raise ValueError(f"unknown algorithm {name!r}; registered: {', '.join(algorithm_names())}")
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
