"""What differs between rivers, independently of the mineral: content and acquisition knobs.

Each knob has a value common to all rivers and a per-river offset; ``river_style(river, shift)``
returns ``common + shift * offset`` (clipped to the knob's valid range), so ``shift=0`` draws
every river from one distribution and ``shift=2`` doubles every difference. Colour-variety
preferences (garnet pink vs brown, ...) are logits added to the class's own variant weights.

The offsets are plausible stories, not measurements: the Yangtze sample (Nanjing, far
downstream) has finer, rounder, more weathered grains, mounted in yellowish Canada balsam
and shot warm with a sharp, clean camera; the Yarlung sample (Shigatse, ophiolite suture)
carries Cr-spinel, green hornblende and orthopyroxene, mounted in clear epoxy, shot cool,
softer and noisier at lower JPEG quality; the Pengqu sample (Dingri, close to its Himalayan
sources) has coarse angular fresh grains, mounted in a high-index medium (lower relief),
shot at higher magnification and a greenish white balance, with a dim, vignetted lamp.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from data_tools.names import CANONICAL_RIVERS
from data_tools.synthetic.checks import is_finite_number


@dataclass(frozen=True)
class RiverStyle:
    """Knob values for one river at one shift (see the module docstring)."""

    # content: the sediment itself
    size_log: float  # log factor on the grain's size in the frame (grain size x magnification)
    thickness_log: float  # log factor on grain thickness (coarser grains are thicker)
    rounding: float  # added to the class's rounding (transport distance)
    fracture_probability: float  # chance of a broken grain
    weathering: float  # surface alteration and dirt, 0..1
    # acquisition: mounting medium, microscope and camera
    medium_index: float  # refractive index of the mounting medium (sets the relief)
    medium_tint: tuple[float, float, float]  # log transmission of the medium per channel
    lamp: float  # log lamp brightness in PPL
    cross_gain: float  # log exposure boost for the XPL shot
    cross_leak: float  # light leaking through imperfectly crossed polars (linear)
    temperature: float  # white balance: > 0 warm (red up, blue down)
    tint: float  # white balance: > 0 green, < 0 magenta
    gamma: float  # tone-curve exponent
    contrast: float  # S-curve strength of the camera's contrast setting
    saturation: float
    blur_px: float  # focus blur sigma, pixels at 128 px
    noise: float  # sensor noise sigma (linear units)
    jpeg_quality: float
    vignetting: float  # fractional darkening in the corners
    dust: float  # expected number of dust specks
    bubble_probability: float  # air bubble in the mount beside the grain


COMMON = RiverStyle(
    size_log=0.0,
    thickness_log=0.0,
    rounding=0.0,
    fracture_probability=0.2,
    weathering=0.25,
    medium_index=1.56,
    medium_tint=(0.0, 0.0, 0.0),
    lamp=0.0,
    cross_gain=0.0,
    cross_leak=0.025,
    temperature=0.0,
    tint=0.0,
    gamma=2.2,
    contrast=1.0,
    saturation=1.0,
    blur_px=0.6,
    noise=0.012,
    jpeg_quality=85.0,
    vignetting=0.2,
    dust=2.0,
    bubble_probability=0.1,
)

RIVER_OFFSETS: dict[str, dict[str, object]] = {
    "yangtze": dict(
        size_log=-0.1,
        thickness_log=-0.15,
        rounding=0.2,
        fracture_probability=0.1,
        weathering=0.25,
        medium_index=-0.02,
        medium_tint=(0.0, -0.01, -0.035),
        lamp=0.025,
        cross_gain=-0.025,
        cross_leak=-0.003,
        temperature=0.04,
        tint=0.0,
        gamma=0.08,
        contrast=0.15,
        saturation=0.05,
        blur_px=-0.3,
        noise=-0.006,
        jpeg_quality=6.0,
        vignetting=-0.08,
        dust=-1.5,
        bubble_probability=0.15,
    ),
    "yarlung": dict(
        size_log=0.0,
        thickness_log=0.05,
        rounding=0.0,
        fracture_probability=0.05,
        weathering=0.0,
        medium_index=0.0,
        medium_tint=(-0.01, 0.0, 0.005),
        lamp=0.04,
        cross_gain=0.04,
        cross_leak=0.004,
        temperature=-0.035,
        tint=-0.01,
        gamma=-0.06,
        contrast=-0.1,
        saturation=-0.05,
        blur_px=0.3,
        noise=0.008,
        jpeg_quality=-10.0,
        vignetting=0.0,
        dust=3.0,
        bubble_probability=-0.05,
    ),
    "pengqu": dict(
        size_log=0.12,
        thickness_log=0.15,
        rounding=-0.15,
        fracture_probability=-0.12,
        weathering=-0.2,
        medium_index=0.1,
        medium_tint=(0.0, 0.0, 0.0),
        lamp=-0.05,
        cross_gain=0.0,
        cross_leak=0.0,
        temperature=0.0,
        tint=0.02,
        gamma=0.0,
        contrast=0.0,
        saturation=0.025,
        blur_px=0.1,
        noise=0.003,
        jpeg_quality=0.0,
        vignetting=0.12,
        dust=-0.5,
        bubble_probability=-0.05,
    ),
}

VARIANT_LOGITS: dict[str, dict[str, dict[str, float]]] = {
    # river -> class -> variant name -> logit added at shift 1
    "yangtze": {
        "Grt": {"pink": 1.2},
        "Amp": {"green": 1.0},
        "Bt": {"brown": 0.8},
        "Spn": {"brown": 1.0},
        "Zrn": {"pink": 0.8},
        "Mnz": {"honey": 0.8},
        "Px": {"green cpx": 0.8},
        "Ep": {"pale": 0.8},
    },
    "yarlung": {
        "Grt": {"colourless": 1.0},
        "Amp": {"blue-green": 1.0, "green": 0.5},
        "Bt": {"green-brown": 1.0},
        "Spn": {"Cr-spinel": 1.5, "green": 0.5},
        "Px": {"opx": 1.2},
        "Tur": {"green": 0.8},
        "Ep": {"pistachio": 0.8},
        "Rt": {"red-brown": 0.8},
    },
    "pengqu": {
        "Grt": {"red-brown": 1.2, "orange": 0.5},
        "Amp": {"brown": 1.0},
        "Bt": {"red-brown": 1.0},
        "Spn": {"red-brown": 1.0},
        "Tur": {"brown": 1.0, "blue": 0.5},
        "Zrn": {"yellow": 0.8},
        "Mnz": {"pale yellow": 0.8},
        "Rt": {"yellow-brown": 0.8},
        "Ep": {"yellow": 0.8},
    },
}

_LIMITS: dict[str, tuple[float, float]] = {
    "fracture_probability": (0.0, 1.0),
    "weathering": (0.0, 1.0),
    "medium_index": (1.45, 1.75),
    "cross_leak": (0.0, 0.2),
    "gamma": (1.4, 3.2),
    "contrast": (0.0, 3.0),
    "saturation": (0.0, 2.5),
    "blur_px": (0.0, 3.0),
    "noise": (0.0, 0.08),
    "jpeg_quality": (30.0, 98.0),
    "vignetting": (0.0, 0.8),
    "dust": (0.0, 20.0),
    "bubble_probability": (0.0, 1.0),
}
"""Valid range of a knob; a large shift is clipped to it."""


def check_shift(shift: float) -> float:
    """Return ``shift`` as a float; raises ValueError unless it is finite and >= 0."""
    if not is_finite_number(shift) or shift < 0:
        raise ValueError(f"shift must be a finite number >= 0, got {shift!r}")
    return float(shift)


def _check_river(river: str) -> None:
    if river not in RIVER_OFFSETS:
        raise ValueError(f"unknown river {river!r}; expected one of {CANONICAL_RIVERS}")


def river_style(river: str, shift: float = 1.0) -> RiverStyle:
    """The knob values of ``river`` with all differences scaled by ``shift``.

    Raises:
        ValueError: unknown river, or shift not a finite number >= 0.
    """
    _check_river(river)
    shift = check_shift(shift)
    values: dict[str, object] = {}
    for knob in fields(RiverStyle):
        common, offset = getattr(COMMON, knob.name), RIVER_OFFSETS[river].get(knob.name, 0.0)
        if isinstance(common, tuple):
            offset = offset or (0.0,) * len(common)
            values[knob.name] = tuple(c + shift * o for c, o in zip(common, offset, strict=True))
        else:
            low, high = _LIMITS.get(knob.name, (-math.inf, math.inf))
            values[knob.name] = min(max(common + shift * offset, low), high)
    return replace(COMMON, **values)


def variant_logit(river: str, mineral: str, variant: str, shift: float = 1.0) -> float:
    """Logit added to a colour variety's log-weight in a river (0 when the river has no preference).

    Raises:
        ValueError: unknown river, or shift not a finite number >= 0.
    """
    _check_river(river)
    return check_shift(shift) * VARIANT_LOGITS[river].get(mineral, {}).get(variant, 0.0)
