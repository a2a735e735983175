"""Per-river, per-class pair counts of the published dataset's feature release (Hao et al. 2022).

Source: ../shared/reference/heavy-minerals.md (1,654 samples, train+val of the authors' 7:3 split).
The synthetic generator reproduces these counts (times a scale factor).
"""

from __future__ import annotations

PUBLISHED_COUNTS: dict[str, dict[str, int]] = {
    "yangtze": {
        "Amp": 21,
        "Ap": 54,
        "Bt": 33,
        "Ep": 0,
        "Grt": 50,
        "Mnz": 50,
        "Ms": 28,
        "Px": 50,
        "Rt": 0,
        "Spn": 29,
        "Tur": 0,
        "Zrn": 50,
    },
    "pengqu": {
        "Amp": 31,
        "Ap": 48,
        "Bt": 35,
        "Ep": 49,
        "Grt": 98,
        "Mnz": 56,
        "Ms": 76,
        "Px": 66,
        "Rt": 67,
        "Spn": 42,
        "Tur": 56,
        "Zrn": 104,
    },
    "yarlung": {
        "Amp": 34,
        "Ap": 51,
        "Bt": 53,
        "Ep": 58,
        "Grt": 57,
        "Mnz": 28,
        "Ms": 48,
        "Px": 42,
        "Rt": 53,
        "Spn": 46,
        "Tur": 55,
        "Zrn": 36,
    },
}

# Per-channel RGB statistics (0-1) the authors used for normalisation.
PUBLISHED_CHANNEL_STATS: dict[str, dict[str, tuple[float, float, float]]] = {
    "plane": {"mean": (0.385, 0.372, 0.360), "std": (0.213, 0.215, 0.225)},
    "cross": {"mean": (0.294, 0.353, 0.370), "std": (0.192, 0.209, 0.227)},
}
