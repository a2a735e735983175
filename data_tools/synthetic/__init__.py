"""Synthetic three-river heavy-mineral dataset: pixel-aligned PPL/XPL pairs with a measured river shift.

``generate_dataset(out, ...)`` writes a set in the published layout; ``default_dataset()``
returns the cached built-in set (generating it on first use). See ``minerals`` for the
per-class optics, ``rivers`` for what differs between rivers, and ``domain_gap`` for the
measurement that shows the shift is real.

The names below load the generator (numpy, the renderer) on first use (PEP 562), so the package's
command lines answer ``--help`` without it.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["GENERATOR_VERSION", "class_counts", "default_dataset", "generate_dataset"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("data_tools.synthetic.generate"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
