"""The names of the data-quality factors (:mod:`data_tools.corruption` applies them), in a module
without heavy imports so that a command line can offer them as choices."""

from __future__ import annotations

SPLIT_FACTORS: tuple[str, ...] = ("label-noise", "class-removal", "size")
IMAGE_FACTORS: tuple[str, ...] = ("gaussian-noise", "salt-pepper", "brightness", "blur")
FACTORS: tuple[str, ...] = ("none", *SPLIT_FACTORS, *IMAGE_FACTORS)
STUDY_FACTORS: tuple[str, ...] = tuple(f for f in FACTORS if f != "none")
