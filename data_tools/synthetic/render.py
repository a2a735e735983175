"""Render one grain as a pixel-aligned PPL/XPL pair.

The scene is built in linear light on a frame supersampled ``SUPERSAMPLE`` times (so thin
cleavage traces and the outline are anti-aliased), then averaged down and handed to the
camera model. PPL: mounting medium behind a body-coloured, pleochroic grain with a dark
relief rim. XPL: Michel-Levy colour of the retardation map times the extinction factor
sin^2(2 theta), absorbed by the body colour, plus the little light that leaks through
imperfectly crossed polars.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from data_tools.synthetic import textures
from data_tools.synthetic.acquisition import Shot, develop, draw_shot
from data_tools.synthetic.grains import (
    Placement,
    fracture,
    outline,
    place,
    rasterize,
    round_corners,
    signed_distance,
    thickness_profile,
)
from data_tools.synthetic.minerals import MINERALS, MineralSpec
from data_tools.synthetic.optics import interference_planes
from data_tools.synthetic.recipe import GrainRecipe, draw_recipe
from data_tools.synthetic.rivers import RiverStyle, river_style
from data_tools.synthetic.stages import StageTimes, stage

_river_style = lru_cache(maxsize=64)(river_style)  # a pure function of its arguments, called per pair

SUPERSAMPLE = 2
PLANE_LAMP = 0.23
"""Linear brightness of the empty field in PPL before the river's lamp and exposure factors."""
CROSS_EXPOSURE = 1.8
"""XPL exposure: the operator exposes so that the brightest interference colours just saturate."""
SCATTER_LOSS = 0.45
"""Share of the light that a grain of the highest relief refracts out of the objective's aperture."""
LENS_BRIGHTENING = 0.35
"""Brightening of the thickest part of a high-relief grain, which acts as a lens."""
LEAK_TINT = np.array([0.7, 1.0, 1.45], np.float32)
"""Sheet polarizers leak more blue than red when crossed."""
EDGE_DEPOLARIZATION = 0.03
"""Faint light that the rim of even an isotropic grain scatters through crossed polars."""


@dataclass(frozen=True)
class RenderedPair:
    """An aligned PPL/XPL pair (uint8, size x size x 3), the grain mask and what was drawn."""

    plane: np.ndarray
    cross: np.ndarray
    mask: np.ndarray  # True where the grain covers at least half of the pixel
    recipe: GrainRecipe
    shot: Shot


@dataclass(frozen=True)
class _Geometry:
    mask: np.ndarray  # bool, supersampled
    distance: np.ndarray  # signed distance to the outline, pixels
    thickness: np.ndarray  # relative thickness 0..1, at the grain's pixels (``inside`` order)
    placement: Placement
    half_width: float
    inside: np.ndarray  # flat indices of the mask's pixels: maps used only under the grain are kept there

    def take(self, image: np.ndarray) -> np.ndarray:
        """The values of a frame-sized map at the grain's pixels (1-D, in ``inside`` order)."""
        return np.take(image, self.inside, mode="clip")  # indices are valid: skip numpy's bounds check


def _geometry(recipe: GrainRecipe, spec: MineralSpec, frame: int, rng: np.random.Generator) -> _Geometry:
    points = outline(rng, recipe.habit, spec.termination, recipe.aspect, spec.roughness)
    pixels, placement = place(rng, points, frame, recipe.length_fraction, recipe.long_axis_angle)
    half_width = placement.half_length / (recipe.aspect if recipe.habit in ("prism", "plate") else 1.0)
    mask = round_corners(rasterize(pixels, frame), recipe.rounding * 0.8 * half_width)
    if recipe.fractured:
        mask = fracture(rng, mask, placement)
    distance = signed_distance(mask)
    inside = np.flatnonzero(mask)
    depth = np.take(distance, inside, mode="clip")
    thickness = thickness_profile(depth, recipe.habit, edge_px=0.08 * half_width)
    return _Geometry(mask, distance, thickness, placement, half_width, inside)


def _texture_darkness(
    recipe: GrainRecipe, spec: MineralSpec, geometry: _Geometry, frame: int, rng: np.random.Generator
) -> np.ndarray:
    """Darkness (0..1) of cleavage traces, striations, fractures, inclusions and dirt, at the grain's pixels.

    Its only use is ``1 - darkness`` in float64, which ``textures.NEGLIGIBLE_WIDTHS`` relies on.
    """
    texture, scale, inside = spec.texture, frame / 256.0, geometry.inside
    darkness = np.zeros(inside.size, dtype=np.float32)
    if texture.cleavage > 0 and not recipe.basal:
        for angle_deg in texture.cleavage_angles_deg:
            angle = recipe.long_axis_angle + np.deg2rad(angle_deg)
            traces = textures.parallel_traces(
                rng,
                frame,
                inside,
                angle,
                spacing_px=frame * rng.uniform(0.04, 0.08),
                width_px=0.9 * scale,
                continuity=rng.uniform(0.35, 0.7),
            )
            darkness = np.maximum(darkness, texture.cleavage * traces)
    if texture.striations > 0 and not recipe.basal:
        traces = textures.parallel_traces(
            rng,
            frame,
            inside,
            recipe.long_axis_angle,
            spacing_px=frame * 0.025,
            width_px=0.7 * scale,
            continuity=0.6,
        )
        darkness = np.maximum(darkness, texture.striations * traces)
    fractures = int(rng.integers(texture.conchoidal_fractures[0], texture.conchoidal_fractures[1] + 1))
    if fractures:
        arcs = textures.conchoidal_fractures(rng, frame, inside, geometry.placement, fractures, 1.0 * scale)
        darkness = np.maximum(darkness, 0.55 * arcs)
    interior = geometry.distance > 0.12 * geometry.half_width
    inclusions = int(rng.integers(texture.inclusions[0], texture.inclusions[1] + 1))
    inclusion_map = textures.blobs(
        rng, frame, interior, inclusions, (1.2 * scale, 3.5 * scale), elongation=2.5
    )
    dirt = int(rng.poisson(8 * recipe.weathering))
    dirt_map = textures.blobs(rng, frame, geometry.mask, dirt, (0.8 * scale, 2.5 * scale))
    return np.maximum(darkness, np.maximum(0.8 * geometry.take(inclusion_map), 0.5 * geometry.take(dirt_map)))


@dataclass(frozen=True)
class _Surface:
    """Maps shared by the PPL and XPL renders of one grain, at the grain's pixels only (1-D)."""

    colour_depth: np.ndarray  # relative optical path through the coloured grain
    zoning: np.ndarray  # growth-zoning signal in [-1, 1] times the class's zoning amplitude
    rim: np.ndarray  # 0..1, the relief rim's profile
    rim_darkness: float
    rim_fade: np.ndarray  # exp(-depth below the outline / rim width)
    surface: np.ndarray  # transmission of the textures, weathering and relief scattering


# The maps below are computed at the grain's pixels only and laid into the frame at the end: every
# pixel goes through the same float operations as if the whole frame were computed, and the
# frame-wide terms that the grain's alpha multiplied by 0 (or 1) are simply not formed.


def _surface(
    recipe: GrainRecipe, spec: MineralSpec, geometry: _Geometry, frame: int, rng: np.random.Generator
) -> _Surface:
    take, inside = geometry.take, geometry.inside
    darkness = _texture_darkness(recipe, spec, geometry, frame, rng)
    zoning = np.zeros(geometry.inside.size, np.float32)
    if spec.texture.zoning > 0:
        banding = textures.growth_zoning(rng, geometry.distance, geometry.inside, frame * 0.03)
        zoning = spec.texture.zoning * banding
    mottling = spec.texture.mottling * textures.smooth_noise_at(rng, frame, geometry.half_width * 0.5, inside)
    patches = textures.smooth_noise_at(rng, frame, geometry.half_width * 0.35, inside)
    weathering = recipe.weathering * 0.12 * patches
    colour_depth = geometry.thickness * np.clip(1 + 0.6 * mottling + 0.1 * zoning, 0.2, None)
    # Relief: a dark rim whose width and darkness grow with the index contrast, uneven along the edge.
    rim_width = frame * (0.004 + 0.07 * recipe.relief**2)
    rim_unevenness = np.clip(1 + 0.35 * textures.smooth_noise_at(rng, frame, frame * 0.08, inside), 0.3, 1.6)
    rim_fade = np.exp(-np.clip(take(geometry.distance), 0, None) / rim_width)
    rim = np.clip(1.3 * rim_fade * rim_unevenness, 0, 1)
    surface = (1 - darkness) * (1 - np.clip(weathering, 0, 0.5)) * (1 - SCATTER_LOSS * recipe.relief)
    return _Surface(colour_depth, zoning, rim, 0.15 + 0.8 * recipe.relief, rim_fade, surface)


def _medium(style: RiverStyle) -> np.ndarray:
    """Transmission of the mounting medium per channel (float32, 3)."""
    return np.exp(np.asarray(style.medium_tint, np.float32))


@dataclass(frozen=True)
class _Plane:
    """The PPL scene in parts: what lies behind the grain and the grain's own light."""

    lamp: np.ndarray  # frame pixels, float32: lamp brightness with the Becke halo, before the medium
    medium: np.ndarray  # per channel, float32: transmission of the mounting medium
    speckle: np.ndarray  # frame pixels, float64: transmission of the dust on the cover glass
    grain: np.ndarray  # channels x grain pixels, float64: the grain's light before the dust


def _plane_scene(
    recipe: GrainRecipe,
    style: RiverStyle,
    geometry: _Geometry,
    maps: _Surface,
    frame: int,
    rng: np.random.Generator,
) -> _Plane:
    """PPL in linear light, empty field = 1 (before lamp and camera): medium, grain, relief, dust."""
    shagreen = 1 + 0.08 * recipe.relief * textures.smooth_noise_at(
        rng, frame, 2.0 * SUPERSAMPLE, geometry.inside
    )
    lens = 1 + LENS_BRIGHTENING * recipe.relief * geometry.thickness**6  # a rounded grain focuses the lamp
    # The polarizer vibrates along x: the body colour mixes the along/across absorbances (pleochroism).
    along_share = np.cos(recipe.long_axis_angle) ** 2
    absorbance = along_share * recipe.absorbance_along + (1 - along_share) * recipe.absorbance_across
    transmission = (1 - maps.rim_darkness * maps.rim) * maps.surface * shagreen * lens
    medium = _medium(style)
    grain = np.empty((3, geometry.inside.size), np.float64)
    for channel in range(3):
        grain[channel] = np.exp(-absorbance[channel] * maps.colour_depth) * transmission * medium[channel]
    illumination = 1 + 0.04 * textures.smooth_noise(rng, frame, frame * 0.5)
    outside = np.clip(-geometry.distance, 0, None)
    halo = 1 + 0.2 * recipe.relief * np.exp(-outside / (1.5 * SUPERSAMPLE)) * (outside > 0)  # Becke line
    dust = textures.blobs(rng, frame, ~geometry.mask, int(rng.poisson(style.dust)), (0.8, 3.0))
    speckle = (1 - 0.7 * dust).ravel().astype(np.float64)  # cast once, not once per channel
    return _Plane((illumination * halo).ravel(), medium, speckle, grain)


def _extinction(recipe: GrainRecipe, geometry: _Geometry, frame: int, rng: np.random.Generator) -> np.ndarray:
    """sin^2(2 theta) at the grain's pixels; a twinned grain's second half extinguishes at another angle."""
    extinction = np.full(geometry.inside.size, np.sin(2 * recipe.vibration_angle) ** 2, np.float32)
    if recipe.twin_angle is not None:
        xs, ys = textures.pixel_coordinates(frame, geometry.inside)
        normal = recipe.long_axis_angle + np.pi / 2
        across = (xs - geometry.placement.centre[0]) * np.cos(normal) + (
            ys - geometry.placement.centre[1]
        ) * np.sin(normal)
        extinction[across > rng.normal(0, 0.2 * geometry.half_width)] = np.sin(2 * recipe.twin_angle) ** 2
    return extinction


def _cross_grain(
    recipe: GrainRecipe,
    spec: MineralSpec,
    style: RiverStyle,
    geometry: _Geometry,
    maps: _Surface,
    frame: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """XPL light of the grain itself (channels x grain pixels): interference colour x extinction x body.

    The polarizer leakage through the whole frame is added when the frame is laid out.
    """
    undulation = 1 + spec.thickness_noise * textures.smooth_noise_at(
        rng, frame, geometry.half_width * 0.6, geometry.inside
    )
    retardation = recipe.retardation_nm * geometry.thickness * undulation * (1 + 0.1 * maps.zoning)
    # A dichroic plate between crossed polars at angle theta transmits
    # sin^2(2 theta) [(a_e - a_o)^2 / 4 + a_e a_o sin^2(pi Gamma / lambda)], with a_e, a_o the amplitude
    # transmissions of its two vibrations: strong pleochroism masks the interference colour.
    along_scale, across_scale = -0.5 * recipe.absorbance_along, -0.5 * recipe.absorbance_across
    colour = interference_planes(retardation)
    extinction = _extinction(recipe, geometry, frame, rng)
    transmission = (1 - 0.85 * maps.rim_darkness * maps.rim) * maps.surface
    edge_glow = EDGE_DEPOLARIZATION * recipe.relief * maps.rim_fade
    medium = _medium(style)
    channels = np.empty(colour.shape, np.result_type(colour, extinction, transmission, edge_glow, medium))
    for channel in range(3):
        along = np.exp(along_scale[channel] * maps.colour_depth)
        across = np.exp(across_scale[channel] * maps.colour_depth)
        interference = colour[channel] * along * across + 0.25 * (along - across) ** 2
        channels[channel] = interference * extinction * transmission + edge_glow * medium[channel]
    return channels


def _lay_out(
    plane: _Plane,
    cross_grain: np.ndarray,
    ring: np.ndarray | None,
    geometry: _Geometry,
    style: RiverStyle,
    frame: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Frame-sized PPL and XPL channels (background, grain, dust, polarizer leak, bubble), downsampled.

    One channel at a time, which keeps the float64 working set small.

    Returns:
        Two float32 arrays of shape (3, size, size): the PPL and XPL linear light (before lamp scaling).
    """
    size = frame // SUPERSAMPLE
    small_plane, small_cross = np.empty((3, size, size), np.float32), np.empty((3, size, size), np.float32)
    ppl, xpl = np.empty(frame * frame, np.float64), np.empty(frame * frame, np.float64)
    for channel in range(3):
        # the mounting medium under the lamp, multiplied in float32 and stored as float64
        np.multiply(plane.lamp, plane.medium[channel], out=ppl, dtype=np.float32)
        ppl[geometry.inside] = plane.grain[channel]
        ppl *= plane.speckle
        np.multiply(ppl, style.cross_leak, out=xpl)  # light leaking through imperfectly crossed polars
        xpl *= LEAK_TINT[channel]
        leak = geometry.take(xpl)
        leak += cross_grain[channel]
        xpl[geometry.inside] = leak
        if ring is not None:
            ppl *= ring
            xpl *= ring
        _downsample(ppl, frame, out=small_plane[channel])
        _downsample(xpl, frame, out=small_cross[channel])
    return small_plane, small_cross


def _compose(
    recipe: GrainRecipe,
    spec: MineralSpec,
    style: RiverStyle,
    size: int,
    rng: np.random.Generator,
    times: StageTimes | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linear-light PPL and XPL images as channel planes (3 x size x size) and the supersampled grain mask."""
    frame = size * SUPERSAMPLE
    with stage(times, "geometry"):
        geometry = _geometry(recipe, spec, frame, rng)
    with stage(times, "surface"):
        maps = _surface(recipe, spec, geometry, frame, rng)
    with stage(times, "plane scene"):
        plane = _plane_scene(recipe, style, geometry, maps, frame, rng)
    with stage(times, "cross scene"):
        cross_grain = _cross_grain(recipe, spec, style, geometry, maps, frame, rng)
    with stage(times, "lay out, downsample"):
        ring = None
        if rng.random() < style.bubble_probability:  # an air bubble in the mount: isotropic, thick dark ring
            ring = (1 - 0.85 * textures.bubble_ring(rng, frame, geometry.mask)).ravel().astype(np.float64)
        plane_light, cross_light = _lay_out(plane, cross_grain, ring, geometry, style, frame)
        plane_light *= PLANE_LAMP
        cross_light *= CROSS_EXPOSURE
    return plane_light, cross_light, geometry.mask


def _downsample(planes: np.ndarray, frame: int, out: np.ndarray | None = None) -> np.ndarray:
    """Mean over SUPERSAMPLE x SUPERSAMPLE blocks: planes (C, frame * frame) -> float32 (C, size, size).

    Bit-identical to the former ``image.reshape(h, S, w, S, 3).mean(axis=(1, 3))`` of the
    H x W x 3 image, which adds a block's pixels in row-major order, and several times faster.
    ``out`` (float32, of the result's shape, or the same without the channel axis for one plane)
    receives the float32 means instead of a new array.
    """
    image = planes.reshape(-1, frame, frame)
    blocks = [
        image[:, dy::SUPERSAMPLE, dx::SUPERSAMPLE] for dy in range(SUPERSAMPLE) for dx in range(SUPERSAMPLE)
    ]
    total = blocks[0] + blocks[1]
    for block in blocks[2:]:
        total += block
    if out is None:
        total /= SUPERSAMPLE * SUPERSAMPLE
        return total.astype(np.float32, copy=False)
    np.divide(total, SUPERSAMPLE * SUPERSAMPLE, out=out.reshape(total.shape), casting="same_kind")
    return out


def _half_covered(mask: np.ndarray) -> np.ndarray:
    """True where the supersampled mask covers at least half of the output pixel (exact integer counts)."""
    counts = mask[0::SUPERSAMPLE, 0::SUPERSAMPLE].astype(np.uint8)
    for dy in range(SUPERSAMPLE):
        for dx in range(SUPERSAMPLE):
            if dy or dx:
                counts += mask[dy::SUPERSAMPLE, dx::SUPERSAMPLE]
    return 2 * counts.astype(np.int32) >= SUPERSAMPLE**2


def render_pair(
    mineral: str,
    river: str,
    *,
    size: int,
    shift: float,
    rng: np.random.Generator,
    times: StageTimes | None = None,
) -> RenderedPair:
    """Draw and render one grain of ``mineral`` from ``river``; ``times`` collects per-stage wall time.

    Returns:
        RenderedPair with 8-bit PPL and XPL images of ``size`` x ``size`` pixels.

    Raises:
        KeyError: unknown mineral. ValueError: unknown river or bad shift.
    """
    with stage(times, "recipe"):
        style = _river_style(river, shift)
        spec = MINERALS[mineral]
        recipe = draw_recipe(mineral, river, shift, style, rng)
    plane_light, cross_light, mask = _compose(recipe, spec, style, size, rng, times)
    with stage(times, "camera"):
        shot = draw_shot(style, rng)
        plane = develop(plane_light, shot, shot.exposure_plane, rng)
        cross = develop(cross_light, shot, shot.exposure_cross, rng)
        return RenderedPair(plane, cross, _half_covered(mask), recipe, shot)
