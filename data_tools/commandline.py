"""What every command line of the project shares, defined once: exit codes, argument types, logging.

It sits in the lowest package so that the data commands and ``san.cli`` (which adds the mapping of
the library's errors to these exit codes) use the same vocabulary.
"""

from __future__ import annotations

import argparse
import logging

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CODES_HELP = "Exit codes: 0 done, 1 failed, 2 usage error."
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Largest image side a command accepts. One 8192 x 8192 RGB image is 192 MiB; preprocessing holds
# a pair per worker thread and the cache a stack of them, so a side of 100,000 px (28 GiB an image)
# would end in the out-of-memory killer rather than in an error.
MAX_SIDE = 8192


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not str(text).strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0 (seeds, counts)."""
    if not str(text).strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return int(text)


def probability(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
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


def configure_logging(*, quiet: bool = False, verbose: bool = True, timestamps: bool = True) -> None:
    """Log lines on stderr: warnings only when ``quiet`` or not ``verbose``, else progress messages too."""
    level = logging.INFO if verbose and not quiet else logging.WARNING
    logging.basicConfig(
        level=level,
        format=LOG_FORMAT if timestamps else "%(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
    )
