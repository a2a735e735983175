"""Optics of a grain between polars: Michel-Levy interference colours, relief, sRGB transfer.

All colours here are *linear* RGB (proportional to light intensity), white-balanced so that
full transmission is (1, 1, 1); the camera model applies the tone curve.
"""

from __future__ import annotations

import numpy as np

WAVELENGTHS_NM: np.ndarray = np.arange(400.0, 701.0, 1.0)
"""Visible band integrated over (the reference's 400-700 nm), 1 nm steps."""

MAX_RETARDATION_NM = 40_000
"""Largest retardation in the lookup table; beyond it the colour is the high-order white."""

LAMP_TEMPERATURE_K = 6500.0
"""Blackbody temperature of the microscope lamp behind its daylight filter."""

_XYZ_TO_LINEAR_SRGB = np.array(
    [
        [3.2406, -1.5372, -0.4986],
        [-0.9689, 1.8758, 0.0415],
        [0.0557, -0.2040, 1.0570],
    ]
)

# (weight, mean nm, sigma below the mean, sigma above the mean) for x-bar, y-bar, z-bar.
_CMF_LOBES: tuple[tuple[tuple[float, float, float, float], ...], ...] = (
    ((1.056, 599.8, 37.9, 31.0), (0.362, 442.0, 16.0, 26.7), (-0.065, 501.1, 20.4, 26.2)),
    ((0.821, 568.8, 46.9, 40.5), (0.286, 530.9, 16.3, 31.1)),
    ((1.217, 437.0, 11.8, 36.0), (0.681, 459.0, 26.0, 13.8)),
)


def colour_matching_functions(wavelengths_nm: np.ndarray) -> np.ndarray:
    """CIE 1931 2-degree colour-matching functions x-bar, y-bar, z-bar at the given wavelengths.

    Uses the multi-lobe piecewise-Gaussian fit of Wyman, Sloan & Shirley (2013), "Simple
    analytic approximations to the CIE XYZ color matching functions", JCGT 2(2): 1-11,
    which matches the tabulated CMFs to within about 1% of their peak.

    Returns:
        Array of shape (len(wavelengths_nm), 3).
    """
    wavelengths = np.asarray(wavelengths_nm, dtype=np.float64)
    columns = []
    for lobes in _CMF_LOBES:
        total = np.zeros_like(wavelengths)
        for weight, mean, sigma_low, sigma_high in lobes:
            sigma = np.where(wavelengths < mean, sigma_low, sigma_high)
            total += weight * np.exp(-0.5 * ((wavelengths - mean) / sigma) ** 2)
        columns.append(total)
    return np.stack(columns, axis=1)


def blackbody_spectrum(wavelengths_nm: np.ndarray, temperature_k: float) -> np.ndarray:
    """Planck's law, normalised to a maximum of 1 over the given wavelengths."""
    metres = np.asarray(wavelengths_nm, dtype=np.float64) * 1e-9
    second_radiation_constant = 1.4388e-2  # h c / k_B in m K
    radiance = metres**-5 / np.expm1(second_radiation_constant / (metres * temperature_k))
    return radiance / radiance.max()


def _spectra_to_linear_rgb(transmission: np.ndarray, lamp: np.ndarray, cmfs: np.ndarray) -> np.ndarray:
    """Integrate transmission spectra (N x wavelengths) under the lamp; white-balanced linear RGB."""
    weights = lamp[:, None] * cmfs
    white = _XYZ_TO_LINEAR_SRGB @ weights.sum(axis=0)
    return (transmission @ weights) @ _XYZ_TO_LINEAR_SRGB.T / white


class _InterferenceTable:
    """The Michel-Levy table as channel planes (3 x retardations), filled on demand a chunk at a time.

    Each chunk always spans the same retardations, so a row's value does not depend on how far the
    table has been filled, and a process that renders weakly birefringent grains never pays for the
    high orders.
    """

    CHUNK = 4096  # rows computed at a time (keeps the temporary spectra small)

    def __init__(self) -> None:
        self.planes = np.zeros((3, MAX_RETARDATION_NM + 1), np.float32)
        self.rows_ready = 0

    def fill(self, rows: int) -> None:
        """Make sure at least the first ``rows`` rows are computed."""
        if rows <= self.rows_ready:
            return
        cmfs = colour_matching_functions(WAVELENGTHS_NM)
        lamp = blackbody_spectrum(WAVELENGTHS_NM, LAMP_TEMPERATURE_K)
        while self.rows_ready < rows:
            start, stop = self.rows_ready, min(self.rows_ready + self.CHUNK, MAX_RETARDATION_NM + 1)
            retardation = np.arange(start, stop, dtype=np.float64)
            transmission = np.sin(np.pi * retardation[:, None] / WAVELENGTHS_NM[None, :]) ** 2
            self.planes[:, start:stop] = np.clip(_spectra_to_linear_rgb(transmission, lamp, cmfs), 0.0, 1.0).T
            self.rows_ready = stop


_TABLE = _InterferenceTable()


def interference_lut() -> np.ndarray:
    """Michel-Levy colours: linear RGB of I = sin^2(pi Gamma / lambda) for Gamma = 0..MAX nm.

    Computed once per process: the spectrum between crossed polars at maximum brightness
    (extinction factor 1) is integrated against the colour-matching functions under the lamp
    and white-balanced; out-of-gamut components are clipped to [0, 1].

    Returns:
        float32 array of shape (MAX_RETARDATION_NM + 1, 3); row g is the colour at g nm.
    """
    _TABLE.fill(MAX_RETARDATION_NM + 1)
    return _TABLE.planes.T


def interference_planes(retardation_nm: np.ndarray) -> np.ndarray:
    """Linear-RGB interference colour for each retardation value (nm), by table lookup, as channel planes.

    Returns:
        Array of shape (3,) + retardation_nm.shape, float32 in [0, 1].
    """
    index = np.clip(np.rint(retardation_nm), 0, MAX_RETARDATION_NM).astype(np.int32)
    _TABLE.fill(int(index.max(initial=0)) + 1)
    return np.take(_TABLE.planes, index, axis=1, mode="clip")


def interference_colour(retardation_nm: np.ndarray) -> np.ndarray:
    """Linear-RGB interference colour for each retardation value (nm), by table lookup.

    Returns:
        Array of shape retardation_nm.shape + (3,), float32 in [0, 1].
    """
    return np.moveaxis(interference_planes(retardation_nm), 0, -1)


def relief_strength(grain_index: float, medium_index: float) -> float:
    """Relief in [0, 1] from the refractive-index contrast between grain and mounting medium.

    Contrast 0.03 is low relief (muscovite in balsam), 0.1 moderate (apatite), 0.25 very high
    (zircon), and anything above about 0.5 extreme (rutile).
    """
    contrast = abs(grain_index - medium_index)
    return float(1.0 - np.exp(-contrast / 0.16))


def srgb_to_linear(values: np.ndarray) -> np.ndarray:
    """Decode sRGB values in [0, 1] to linear light (IEC 61966-2-1)."""
    values = np.asarray(values, dtype=np.float64)
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)
