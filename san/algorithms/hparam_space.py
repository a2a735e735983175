"""Random hyper-parameter search spaces (after DomainBed's ``hparams_registry``).

Each algorithm class declares ``HPARAM_SPACE``: for a hyper-parameter name, a function drawing a
value from a ``numpy.random.Generator``. Trial 0 is the defaults (the preset's values); trial k > 0
draws every hyper-parameter of the space from a generator seeded by (method, k) only, so trial k
is the same configuration for every river and seed of a benchmark, and the draw does not depend
on the order in which hyper-parameters are listed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

Sampler = Callable[[np.random.Generator], Any]


def log_uniform(low: float, high: float) -> Sampler:
    """10 ** U(low, high)."""
    return lambda rng: float(10 ** rng.uniform(low, high))


def uniform(low: float, high: float) -> Sampler:
    """U(low, high)."""
    return lambda rng: float(rng.uniform(low, high))


def choice(*values: Any) -> Sampler:
    """One of ``values``, uniformly."""
    return lambda rng: values[int(rng.integers(len(values)))]


def _seed(*parts: object) -> int:
    return int.from_bytes(hashlib.sha256("/".join(map(str, parts)).encode()).digest()[:8], "little")


def sample_hparams(method: str, space: Mapping[str, Sampler], trial: int) -> dict[str, Any]:
    """The hyper-parameters of trial ``trial``: {} (the defaults) for trial 0, else one draw per name.

    Each name gets its own generator seeded by (method, trial, name): deterministic, and adding a
    name to the space leaves the others' draws unchanged.

    Raises:
        ValueError: a negative trial.
    """
    if trial < 0:
        raise ValueError(f"trial must be >= 0, got {trial}")
    if trial == 0:
        return {}
    return {
        name: draw(np.random.default_rng(_seed(method, trial, name))) for name, draw in sorted(space.items())
    }
