"""Synthetic three-river heavy-mineral dataset: pixel-aligned PPL/XPL pairs with a measured river shift.

``generate_dataset(out, ...)`` writes a set in the published layout; ``default_dataset()``
returns the cached built-in set (generating it on first use). See ``minerals`` for the
per-class optics, ``rivers`` for what differs between rivers, and ``domain_gap`` for the
measurement that shows the shift is real.
"""

from data_tools.synthetic.generate import GENERATOR_VERSION, class_counts, default_dataset, generate_dataset

__all__ = ["GENERATOR_VERSION", "class_counts", "default_dataset", "generate_dataset"]
