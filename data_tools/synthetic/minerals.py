"""Per-class parameter table of the synthetic grains (ranges from reference/mineral-optics.md).

Colours are sRGB body colours seen through the grain's thickest part under white light, for
light vibrating along the grain's long axis (``along``) and across it (``across``); their
difference is the pleochroism. Refractive indices set the relief against the mounting
medium (see ``optics.relief_strength``); birefringence times thickness sets the interference
colour. Every range is (low, high) and drawn uniformly per grain.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from data_tools.names import CANONICAL_CLASSES

Range = tuple[float, float]
RGB = tuple[int, int, int]

HABITS: tuple[str, ...] = ("prism", "plate", "equant", "triangular", "octahedral")
"""Outline families: elongate prism, platy flake, equant grain, triangular section, octahedral section."""

TERMINATIONS: tuple[str, ...] = ("pyramid", "flat", "ragged", "oblique")
"""How a prism ends: pyramidal faces, flat or slightly bevelled, saw-tooth cleavage steps, oblique."""


@dataclass(frozen=True)
class ColourVariant:
    """One chemistry-driven colour variety of a mineral (e.g. pink vs brown garnet)."""

    name: str
    along: RGB
    across: RGB
    weight: float = 1.0
    birefringence: Range | None = None  # overrides the mineral's range (e.g. orthopyroxene)


@dataclass(frozen=True)
class Texture:
    """Internal features: amplitudes are 0 (absent) to 1 (strong)."""

    cleavage_angles_deg: tuple[float, ...] = ()  # trace directions relative to the long axis
    cleavage: float = 0.0
    conchoidal_fractures: tuple[int, int] = (0, 0)  # count range
    zoning: float = 0.0  # growth zoning parallel to the outline
    inclusions: tuple[int, int] = (0, 0)  # count range
    striations: float = 0.0  # fine lines along the long axis
    mottling: float = 0.0  # patchy body colour
    twin_probability: float = 0.0


@dataclass(frozen=True)
class MineralSpec:
    """Everything the renderer needs to know about one class."""

    code: str
    habits: dict[str, float]  # habit -> weight
    termination: str  # termination of the prism habit
    aspect: Range  # long / short axis
    size: Range  # long axis as a fraction of the frame, before the river's magnification
    rounding: Range  # 0 angular .. 1 well rounded
    roughness: float  # ragged-outline amplitude
    refractive_index: Range
    birefringence: Range
    thickness_um: Range  # thickness at the grain's thickest point
    extinction_deg: Range  # extinction angle from the long axis
    variants: tuple[ColourVariant, ...]
    texture: Texture = field(default_factory=Texture)
    basal_probability: float = 0.0  # chance of a section seen along the optic axis (near-isotropic)
    thickness_noise: float = 0.05  # relative thickness undulation: patchy interference colours

    @property
    def isotropic(self) -> bool:
        """True for cubic minerals (zero birefringence): black between crossed polars."""
        return self.birefringence[1] == 0.0


def _grey(level: int) -> RGB:
    return (level, level, level)


MINERALS: dict[str, MineralSpec] = {
    "Amp": MineralSpec(
        "Amp",
        {"prism": 1.0},
        "ragged",
        aspect=(1.8, 3.4),
        size=(1.0, 1.3),
        rounding=(0.0, 0.25),
        roughness=0.02,
        refractive_index=(1.63, 1.70),
        birefringence=(0.014, 0.026),
        thickness_um=(40, 60),
        extinction_deg=(12, 25),
        variants=(
            ColourVariant("green", (175, 195, 110), (60, 105, 60)),
            ColourVariant("brown-green", (190, 175, 105), (95, 90, 40)),
            ColourVariant("brown", (195, 155, 95), (115, 70, 35)),
            ColourVariant("blue-green", (165, 195, 155), (55, 105, 100), weight=0.5),
        ),
        texture=Texture(cleavage_angles_deg=(0.0, 56.0), cleavage=0.3, mottling=0.15, inclusions=(0, 2)),
        thickness_noise=0.08,
    ),
    "Ap": MineralSpec(
        "Ap",
        {"prism": 0.7, "equant": 0.3},
        "flat",
        aspect=(1.3, 2.2),
        size=(0.85, 1.1),
        rounding=(0.3, 0.8),
        roughness=0.0,
        refractive_index=(1.63, 1.65),
        birefringence=(0.002, 0.004),
        thickness_um=(25, 45),
        extinction_deg=(0, 0),
        variants=(
            ColourVariant("colourless", _grey(246), _grey(246), weight=3.0),
            ColourVariant("dusty", (232, 230, 222), (232, 230, 222)),
        ),
        texture=Texture(inclusions=(0, 3)),
    ),
    "Bt": MineralSpec(
        "Bt",
        {"plate": 1.0},
        "ragged",
        aspect=(1.0, 1.6),
        size=(0.95, 1.2),
        rounding=(0.0, 0.05),
        roughness=0.12,
        refractive_index=(1.60, 1.66),
        birefringence=(0.04, 0.07),
        thickness_um=(10, 25),
        extinction_deg=(0, 3),
        variants=(
            ColourVariant("brown", (185, 140, 85), (105, 60, 28)),
            ColourVariant("red-brown", (205, 145, 100), (115, 45, 25)),
            ColourVariant("green-brown", (180, 170, 100), (80, 75, 32)),
        ),
        texture=Texture(cleavage_angles_deg=(0.0,), cleavage=0.35, mottling=0.35, inclusions=(0, 3)),
        basal_probability=0.6,
        thickness_noise=0.1,
    ),
    "Ep": MineralSpec(
        "Ep",
        {"equant": 0.5, "prism": 0.5},
        "oblique",
        aspect=(1.1, 2.0),
        size=(0.85, 1.1),
        rounding=(0.1, 0.5),
        roughness=0.02,
        refractive_index=(1.72, 1.78),
        birefringence=(0.015, 0.05),
        thickness_um=(35, 55),
        extinction_deg=(0, 5),
        variants=(
            ColourVariant("pistachio", (212, 225, 150), (195, 212, 110)),
            ColourVariant("pale", (232, 234, 195), (222, 230, 175)),
            ColourVariant("yellow", (228, 220, 125), (210, 208, 100)),
        ),
        texture=Texture(cleavage_angles_deg=(0.0,), cleavage=0.2, mottling=0.45, inclusions=(0, 2)),
        thickness_noise=0.12,
    ),
    "Grt": MineralSpec(
        "Grt",
        {"equant": 1.0},
        "flat",
        aspect=(1.0, 1.25),
        size=(0.8, 1.0),
        rounding=(0.3, 0.9),
        roughness=0.01,
        refractive_index=(1.76, 1.85),
        birefringence=(0.0, 0.0),
        thickness_um=(50, 80),
        extinction_deg=(0, 0),
        variants=(
            ColourVariant("pink", (240, 200, 196), (240, 200, 196)),
            ColourVariant("colourless", (238, 236, 230), (238, 236, 230)),
            ColourVariant("red-brown", (222, 178, 150), (222, 178, 150)),
            ColourVariant("orange", (232, 196, 140), (232, 196, 140)),
        ),
        texture=Texture(conchoidal_fractures=(1, 4), inclusions=(0, 6)),
    ),
    "Mnz": MineralSpec(
        "Mnz",
        {"equant": 0.8, "prism": 0.2},
        "flat",
        aspect=(1.0, 1.5),
        size=(0.6, 0.85),
        rounding=(0.5, 0.95),
        roughness=0.0,
        refractive_index=(1.78, 1.84),
        birefringence=(0.045, 0.075),
        thickness_um=(50, 70),
        extinction_deg=(0, 6),
        variants=(
            ColourVariant("pale yellow", (240, 226, 165), (234, 216, 150)),
            ColourVariant("honey", (226, 188, 105), (214, 176, 95)),
        ),
        texture=Texture(mottling=0.1, inclusions=(0, 2)),
    ),
    "Ms": MineralSpec(
        "Ms",
        {"plate": 1.0},
        "flat",
        aspect=(1.1, 1.8),
        size=(0.95, 1.2),
        rounding=(0.0, 0.1),
        roughness=0.015,
        refractive_index=(1.56, 1.60),
        birefringence=(0.036, 0.049),
        thickness_um=(25, 45),
        extinction_deg=(0, 3),
        variants=(
            ColourVariant("colourless", _grey(246), _grey(246), weight=3.0),
            ColourVariant("pale green", (236, 243, 228), (228, 238, 218)),
        ),
        texture=Texture(cleavage_angles_deg=(0.0,), cleavage=0.15, inclusions=(0, 1)),
        basal_probability=0.35,
        thickness_noise=0.04,
    ),
    "Px": MineralSpec(
        "Px",
        {"prism": 0.7, "equant": 0.3},
        "oblique",
        aspect=(1.2, 2.2),
        size=(0.85, 1.1),
        rounding=(0.05, 0.4),
        roughness=0.015,
        refractive_index=(1.66, 1.74),
        birefringence=(0.018, 0.03),
        thickness_um=(35, 55),
        extinction_deg=(0, 42),
        variants=(
            ColourVariant("green cpx", (212, 228, 196), (195, 218, 180)),
            ColourVariant("colourless", _grey(238), _grey(236)),
            ColourVariant("opx", (226, 200, 198), (198, 224, 198), birefringence=(0.008, 0.013)),
        ),
        texture=Texture(cleavage_angles_deg=(45.0, -45.0), cleavage=0.25, inclusions=(0, 2)),
    ),
    "Rt": MineralSpec(
        "Rt",
        {"prism": 1.0},
        "pyramid",
        aspect=(1.6, 3.0),
        size=(0.65, 0.95),
        rounding=(0.1, 0.5),
        roughness=0.01,
        refractive_index=(2.6, 2.9),
        birefringence=(0.27, 0.29),
        thickness_um=(20, 40),
        extinction_deg=(0, 0),
        variants=(
            ColourVariant("red-brown", (170, 62, 30), (140, 48, 22)),
            ColourVariant("yellow-brown", (200, 130, 45), (178, 108, 36)),
            ColourVariant("dark", (120, 40, 22), (100, 34, 20)),
        ),
        texture=Texture(striations=0.35, twin_probability=0.3),
    ),
    "Spn": MineralSpec(
        "Spn",
        {"octahedral": 0.6, "equant": 0.4},
        "flat",
        aspect=(1.0, 1.3),
        size=(0.6, 0.85),
        rounding=(0.1, 0.5),
        roughness=0.01,
        refractive_index=(1.72, 2.05),
        birefringence=(0.0, 0.0),
        thickness_um=(30, 50),
        extinction_deg=(0, 0),
        variants=(
            ColourVariant("brown", (125, 80, 45), (125, 80, 45)),
            ColourVariant("green", (95, 130, 75), (95, 130, 75)),
            ColourVariant("red-brown", (150, 65, 40), (150, 65, 40)),
            ColourVariant("Cr-spinel", (60, 36, 26), (60, 36, 26)),
        ),
        texture=Texture(conchoidal_fractures=(0, 2), inclusions=(0, 1)),
    ),
    "Tur": MineralSpec(
        "Tur",
        {"prism": 0.75, "triangular": 0.25},
        "flat",
        aspect=(1.6, 3.0),
        size=(0.95, 1.25),
        rounding=(0.1, 0.5),
        roughness=0.01,
        refractive_index=(1.62, 1.67),
        birefringence=(0.017, 0.035),
        thickness_um=(35, 55),
        extinction_deg=(0, 0),
        variants=(
            ColourVariant("brown", (205, 170, 110), (80, 48, 25)),
            ColourVariant("green", (172, 198, 128), (38, 68, 40)),
            ColourVariant("blue", (168, 186, 210), (38, 48, 95), weight=0.6),
        ),
        texture=Texture(striations=0.3, conchoidal_fractures=(0, 2), inclusions=(0, 2)),
    ),
    "Zrn": MineralSpec(
        "Zrn",
        {"prism": 0.65, "equant": 0.35},
        "pyramid",
        aspect=(1.5, 3.0),
        size=(0.55, 0.85),
        rounding=(0.0, 0.35),
        roughness=0.0,
        refractive_index=(1.92, 1.98),
        birefringence=(0.042, 0.065),
        thickness_um=(28, 42),
        extinction_deg=(0, 0),
        variants=(
            ColourVariant("colourless", (246, 244, 238), (246, 244, 238), weight=2.0),
            ColourVariant("pink", (242, 218, 212), (240, 214, 208)),
            ColourVariant("yellow", (242, 232, 196), (240, 228, 190)),
        ),
        texture=Texture(zoning=0.5, inclusions=(0, 3)),
    ),
}


def _check_table() -> None:
    """Fail at import on a table that misses a class or names an unknown habit or termination."""
    if tuple(MINERALS) != CANONICAL_CLASSES:
        raise RuntimeError(f"MINERALS keys {tuple(MINERALS)} differ from {CANONICAL_CLASSES}")
    for code, spec in MINERALS.items():
        if unknown := set(spec.habits) - set(HABITS):
            raise RuntimeError(f"{code}: unknown habit(s) {sorted(unknown)}; expected {HABITS}")
        if spec.termination not in TERMINATIONS:
            raise RuntimeError(f"{code}: unknown termination {spec.termination!r}; expected {TERMINATIONS}")


_check_table()
