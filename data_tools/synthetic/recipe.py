"""Draw the numbers that describe one grain: its variety, shape, optics and orientation.

A recipe depends only on the class table, the river's style and the sample's own Generator,
so two renders of the same (seed, river, class, index) agree whatever the worker count.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from data_tools.synthetic.minerals import MINERALS, ColourVariant, MineralSpec
from data_tools.synthetic.optics import relief_strength, srgb_to_linear
from data_tools.synthetic.rivers import RiverStyle, variant_logit

ROTATED_TO_BRIGHTNESS = 0.5
"""Share of grains the operator rotated near 45 degrees (maximum brightness) before the XPL shot."""


@dataclass(frozen=True)
class GrainRecipe:
    """One grain's drawn parameters (angles in radians, thickness in micrometres)."""

    mineral: str
    variant: str
    habit: str
    aspect: float
    length_fraction: float  # long axis / frame
    rounding: float  # 0..1
    fractured: bool
    relief: float  # 0..1 against this river's mounting medium
    absorbance_along: np.ndarray  # linear-RGB absorbance at the thickest point, light along the long axis
    absorbance_across: np.ndarray
    retardation_nm: float  # retardation at the thickest point
    long_axis_angle: float  # in the image, from the polarizer (x axis)
    vibration_angle: float  # of the grain's fast ray, from the polarizer: extinction at 0 and 90 deg
    twin_angle: float | None  # vibration angle of the twin half, if twinned
    basal: bool  # seen along the optic axis: near-isotropic, no pleochroism
    weathering: float  # 0..1


@lru_cache(maxsize=256)
def _absorbance(colour: tuple[int, int, int]) -> np.ndarray:
    """Linear-RGB absorbance of an sRGB body colour (float32; cached, read-only)."""
    transmission = np.clip(srgb_to_linear(np.asarray(colour, dtype=np.float64) / 255.0), 1e-3, 1.0)
    absorbance = (-np.log(transmission)).astype(np.float32)
    absorbance.flags.writeable = False
    return absorbance


@lru_cache(maxsize=256)
def _variant_probabilities(mineral: str, river: str, shift: float) -> np.ndarray:
    """Chance of each colour variety of ``mineral`` in ``river`` (cached, read-only)."""
    logits = np.array(
        [
            np.log(variant.weight) + variant_logit(river, mineral, variant.name, shift)
            for variant in MINERALS[mineral].variants
        ]
    )
    weights = np.exp(logits - logits.max())
    probabilities = weights / weights.sum()
    probabilities.flags.writeable = False
    return probabilities


def _pick_variant(spec: MineralSpec, river: str, shift: float, rng: np.random.Generator) -> ColourVariant:
    probabilities = _variant_probabilities(spec.code, river, shift)
    return spec.variants[int(rng.choice(len(spec.variants), p=probabilities))]


def _pick(rng: np.random.Generator, options: dict[str, float]) -> str:
    names = list(options)
    weights = np.array([options[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _orientation_factor(habit: str, basal: bool, rng: np.random.Generator) -> float:
    """Share of the maximum birefringence shown by the section the grain lies on."""
    if basal:
        return rng.uniform(0.05, 0.2)
    if habit == "prism":  # prisms lie on their length: optic axis near the stage plane
        return rng.uniform(0.75, 1.0)
    if habit == "plate":  # flakes tilted off their cleavage
        return rng.uniform(0.35, 0.9)
    return 1.0 - rng.uniform(0.0, 0.9) ** 2  # random direction of an equant grain's optic axis


def draw_recipe(
    mineral: str, river: str, shift: float, style: RiverStyle, rng: np.random.Generator
) -> GrainRecipe:
    """Draw one grain of class ``mineral`` as it occurs in ``river`` (styled at ``shift``).

    Raises:
        KeyError: ``mineral`` is not in the class table.
    """
    spec = MINERALS[mineral]
    variant = _pick_variant(spec, river, shift, rng)
    habit = _pick(rng, spec.habits)
    basal = habit == "triangular" or rng.random() < spec.basal_probability
    elongate = habit in ("prism", "plate")
    aspect = rng.uniform(*spec.aspect) if elongate else rng.uniform(1.0, min(spec.aspect[1], 1.3))
    size_draw = rng.uniform(*spec.size)
    length_fraction = size_draw * np.exp(style.size_log + rng.normal(0, 0.05))
    # Transport rounds hard grains; flakes fray and bend instead, so the river's rounding skips them.
    transport = 0.0 if habit == "plate" else style.rounding
    rounding = rng.uniform(*spec.rounding) + transport + (0.25 if habit == "equant" else 0.0)
    fractured = habit != "plate" and rng.random() < style.fracture_probability

    relief = relief_strength(rng.uniform(*spec.refractive_index), style.medium_index)
    along, across = _absorbance(variant.along), _absorbance(variant.across)
    if basal:
        along = across  # both vibrations are the same (ordinary) ray: no pleochroism
    size_factor = np.sqrt(size_draw / np.mean(spec.size))  # larger grains of a class are thicker
    thickness = rng.uniform(*spec.thickness_um) * np.exp(style.thickness_log) * size_factor
    # Colours are given at the class's mean thickness; a square root (not Beer-Lambert's linear law)
    # keeps thick grains of pale minerals from turning dark, as the eye and camera see them.
    depth = float(np.sqrt(thickness / np.mean(spec.thickness_um)))
    birefringence = rng.uniform(*(variant.birefringence or spec.birefringence))
    retardation = birefringence * _orientation_factor(habit, basal, rng) * thickness * 1000.0

    if rng.random() < ROTATED_TO_BRIGHTNESS:
        vibration = np.pi / 4 + rng.normal(0, np.deg2rad(10))
    else:
        vibration = rng.uniform(0, np.pi)
    extinction = np.deg2rad(rng.uniform(*spec.extinction_deg)) * rng.choice([-1, 1])
    long_axis = vibration + extinction + (np.pi / 2 if rng.random() < 0.5 else 0.0)
    twin = vibration + rng.uniform(0.4, 1.2) if rng.random() < spec.texture.twin_probability else None
    return GrainRecipe(
        mineral=mineral,
        variant=variant.name,
        habit=habit,
        aspect=float(aspect),
        length_fraction=float(length_fraction),
        rounding=float(np.clip(rounding, 0, 1)),
        fractured=bool(fractured),
        relief=relief,
        absorbance_along=along * depth,
        absorbance_across=across * depth,
        retardation_nm=float(retardation),
        long_axis_angle=float(long_axis),
        vibration_angle=float(vibration),
        twin_angle=None if twin is None else float(twin),
        basal=bool(basal),
        weathering=float(np.clip(style.weathering * rng.uniform(0.3, 1.7), 0, 1)),
    )
