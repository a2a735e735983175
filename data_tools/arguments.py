"""Command-line value types shared by the data commands (argparse ``type=`` callables)."""

from __future__ import annotations

import argparse

# Largest image side a command accepts. One 8192 x 8192 RGB image is 192 MiB; preprocessing holds
# a pair per worker thread and the cache a stack of them, so a side of 100,000 px (28 GiB an image)
# would end in the out-of-memory killer rather than in an error.
MAX_SIDE = 8192


def positive_int(text: str) -> int:
    """A whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def side_problem(size: int) -> str | None:
    """Why ``size`` is not a usable image side in pixels, or None."""
    if not 1 <= size <= MAX_SIDE:
        return f"image side must be 1..{MAX_SIDE} px, got {size}"
    return None


def image_side(text: str) -> int:
    """An image side in pixels, 1..:data:`MAX_SIDE`."""
    size = positive_int(text)
    if problem := side_problem(size):
        raise argparse.ArgumentTypeError(problem)
    return size
