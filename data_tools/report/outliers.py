"""Outlying images by Tukey's IQR rule, judged against images of the same river, polarization and class.

A value is an outlier when it lies below Q1 - k*IQR or above Q3 + k*IQR of its group (k = 1.5 is
Tukey's "outside", 3 his "far out"). Minerals differ in brightness and colour by nature (rock
fragments are darker than quartz in PPL) and so do PPL and XPL images, while rivers differ by
acquisition, so an image is compared with its own river x polarization x class; the images of a
class with fewer than ``min_group`` of them there are compared with their whole river x polarization.

Colour is judged by chromaticity (a channel's share of R+G+B), which a pure exposure change leaves
alone, so an under-exposed image is not also listed three times as "off in colour"; sharpness is
judged on log10(1 + value), since blur scales it multiplicatively. The IQR used is at least a
rule's ``min_iqr``, so a group with almost no spread (quartz PPL: red share 0.323-0.326) does not
flag differences nobody could see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

Side = Literal["low", "high", "both"]

OUTLIER_COLUMNS: tuple[str, ...] = (
    "statistic",
    "direction",
    "value",
    "fence",
    "group",
    "domain",
    "pol",
    "label",
    "sample_id",
    "path",
)


def _share(channel: str) -> Callable[[pd.DataFrame], np.ndarray]:
    def share(images: pd.DataFrame) -> np.ndarray:
        total = images[["mean_red", "mean_green", "mean_blue"]].to_numpy(dtype=float).sum(axis=1)
        return images[f"mean_{channel}"].to_numpy(dtype=float) / np.maximum(total, 1e-9)

    return share


@dataclass(frozen=True)
class OutlierRule:
    """A quantity judged by the IQR rule: its name, how it is computed (default: the column of that
    name), which side is checked, on which scale, and the least value a high outlier must exceed."""

    name: str
    side: Side = "both"
    log: bool = False
    floor: float = -np.inf
    min_iqr: float = 0.0
    compute: Callable[[pd.DataFrame], np.ndarray] | None = None

    def values(self, images: pd.DataFrame) -> np.ndarray:
        """The quantity for each row of ``images``."""
        return self.compute(images) if self.compute else images[self.name].to_numpy(dtype=float)


OUTLIER_RULES: tuple[OutlierRule, ...] = (
    OutlierRule("sharpness", log=True, min_iqr=0.1),  # a quarter of a factor 2.5 in Laplacian variance
    OutlierRule("brightness", min_iqr=4.0),  # grey levels of 255
    OutlierRule("contrast", min_iqr=2.0),
    OutlierRule("clipped_dark", side="high", floor=0.01),  # at least 1% of the pixels
    OutlierRule("clipped_bright", side="high", floor=0.01),
    OutlierRule("red_share", compute=_share("red"), min_iqr=0.01),
    OutlierRule("blue_share", compute=_share("blue"), min_iqr=0.01),
)


def iqr_fences(values: np.ndarray, k: float, min_iqr: float = 0.0) -> tuple[float, float]:
    """(Q1 - k*IQR, Q3 + k*IQR) of the values (linear-interpolated quartiles), IQR at least ``min_iqr``."""
    q1, q3 = np.quantile(np.asarray(values, dtype=float), [0.25, 0.75])
    spread = max(q3 - q1, min_iqr)
    return float(q1 - k * spread), float(q3 + k * spread)


def _judge(
    judged: pd.DataFrame, reference: pd.DataFrame, group: str, k: float, rules: tuple[OutlierRule, ...]
) -> list[pd.DataFrame]:
    """Rows of ``judged`` outside the fences computed on ``reference``, for every rule."""
    found = []
    for rule in rules:
        raw = rule.values(judged)
        scale = (lambda v: np.log10(1.0 + v)) if rule.log else (lambda v: v)
        scaled = scale(raw)
        low, high = iqr_fences(scale(rule.values(reference)), k, rule.min_iqr)
        for direction, mask, fence in (
            ("low", scaled < low, low),
            ("high", (scaled > high) & (raw > rule.floor), high),
        ):
            if rule.side not in (direction, "both") or not mask.any():
                continue
            hits = judged[mask]
            found.append(
                pd.DataFrame(
                    {
                        "statistic": rule.name,
                        "direction": direction,
                        "value": raw[mask],
                        "fence": 10.0**fence - 1.0 if rule.log else fence,
                        "group": group,
                        "domain": hits["domain"].to_numpy(),
                        "pol": hits["pol"].to_numpy(),
                        "label": hits["label"].to_numpy(),
                        "sample_id": hits["sample_id"].to_numpy(),
                        "path": hits["path"].to_numpy(),
                        "_beyond": np.abs(scaled[mask] - fence),
                    }
                )
            )
    return found


def find_outliers(
    images: pd.DataFrame,
    *,
    k: float = 1.5,
    min_group: int = 8,
    rules: tuple[OutlierRule, ...] = OUTLIER_RULES,
) -> tuple[pd.DataFrame, list[str]]:
    """Images outside the IQR fences of their river x polarization x class (see the module docstring).

    Args:
        images: one row per image with domain, pol, label, sample_id, path and the statistics.
        k: the fence multiplier.
        min_group: least images a class needs to be its own reference, and a river x polarization
            to be judged at all (quartiles of a handful of values mean little).

    Returns:
        The outliers (columns :data:`OUTLIER_COLUMNS`; ``value`` and ``fence`` on the quantity's own
        scale, ``group`` names the reference), sorted by rule, direction and distance beyond the
        fence; and the river x polarization groups too small to judge ("pengqu/cross (5 images)").
    """
    found: list[pd.DataFrame] = []
    unjudged: list[str] = []
    for (domain, pol), river in images.groupby(["domain", "pol"], sort=True):
        name = f"{domain}/{pol}"
        if len(river) < min_group:
            unjudged.append(f"{name} ({len(river)} images)")
            continue
        sizes = river.groupby("label")["label"].transform("size")
        for label, members in river[sizes >= min_group].groupby("label", sort=True):
            found += _judge(members, members, f"{name}/{label}", k, rules)
        if (sizes < min_group).any():
            found += _judge(river[sizes < min_group], river, f"{name} (all classes)", k, rules)
    if not found:
        return pd.DataFrame(columns=list(OUTLIER_COLUMNS)), unjudged
    table = pd.concat(found, ignore_index=True)
    rule_order = {rule.name: i for i, rule in enumerate(rules)}
    table = table.assign(_rule=table["statistic"].map(rule_order))
    table = table.sort_values(["_rule", "direction", "_beyond"], ascending=[True, True, False], kind="stable")
    return table[list(OUTLIER_COLUMNS)].reset_index(drop=True), unjudged
