"""Argument checks shared by the generator's public functions (numpy scalars count as numbers)."""

from __future__ import annotations

import math
import numbers

MIN_SIZE, MAX_SIZE = 32, 1024  # the image sides the generator renders, in pixels


def is_finite_number(value: object) -> bool:
    """True for a finite real number (int, float or numpy scalar), False for bools, NaN and infinities."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value: object) -> bool:
    """True for an integer (int or numpy integer), False for bools."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
