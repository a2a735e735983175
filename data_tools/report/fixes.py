"""The closing "what to fix" list: one entry per kind of defect, ordered by how much it costs.

Order (first = worst): leakage (duplicates across labels, rivers or splits) > files that cannot be
used (unreadable, unpaired, ambiguous) > duplicates within a label > missing classes, extreme
imbalance and tiny classes > outlying images (blur, exposure, colour) > size and format matters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from data_tools.report.findings import Findings

Severity = Literal["critical", "high", "medium", "low", "info"]

_TREE_ERRORS: dict[str, tuple[str, str]] = {  # kind -> (what, action)
    "unreadable": (
        "unreadable or truncated image(s)",
        "re-export the files from the originals, or remove them",
    ),
    "unpaired": (
        "image(s) without their PPL/XPL partner",
        "add the partner (same file name in the other polarization folder) or remove the image",
    ),
    "ambiguous_pair": (
        "image(s) sharing a name stem in one folder",
        "rename so each stem is unique per polarization folder (e.g. a.bmp and a.tif)",
    ),
    "layout_mismatch": (
        "file(s) outside the layout",
        "move them into the layout, or pass the right --layout",
    ),
    "unknown_polarization": (
        "file(s) under an unknown polarization folder",
        "rename the folder to a known alias (plane/ppl/single, cross/xpl/cross_1)",
    ),
    "unknown_split": ("file(s) under an unknown split folder", "rename the folder to train, val or test"),
}
_HANDLED = set(_TREE_ERRORS) | {"leakage", "duplicate", "size_mismatch"}


@dataclass(frozen=True)
class Fix:
    """One defect: how bad, a one-line title with its count, what to do, and the files concerned."""

    severity: Severity
    title: str
    action: str
    items: tuple[str, ...]


def _pair_count(pairs: pd.DataFrame) -> int:
    return len({frozenset((a, b)) for a, b in zip(pairs["sample_a"], pairs["sample_b"], strict=True)})


def _duplicate_item(row: pd.Series) -> str:
    differences = []
    for name in row["crosses"].split(", ") if row["crosses"] else []:
        differences.append(f"{name} {row[f'{name}_a']} vs {row[f'{name}_b']}")
    detail = f"{row['kind']}, {row['distance']} bits" + (f"; {'; '.join(differences)}" if differences else "")
    return f"{row['path_a']} ~ {row['path_b']} ({detail})"


def _leakage(findings: Findings) -> list[Fix]:
    fixes = []
    crossing = findings.duplicates[findings.duplicates["crosses"] != ""]
    if not crossing.empty:
        fixes.append(
            Fix(
                "critical",
                f"{_pair_count(crossing)} pair(s) of samples share an image across labels, rivers or splits",
                "one grain photographed twice (or an augmented copy) under two labels or on both sides of "
                "a split inflates test scores: keep one copy with the right label, re-split",
                tuple(_duplicate_item(row) for _, row in crossing.iterrows()),
            )
        )
    leaked = findings.problems_of("leakage")
    if leaked:
        fixes.append(
            Fix(
                "critical",
                f"{len(leaked)} byte-identical image(s) under different labels or rivers "
                "(left out of the manifest)",
                "decide which label is right, delete the other copies",
                tuple(f"{p.path}: {p.message}" for p in leaked),
            )
        )
    return fixes


def _tree_errors(findings: Findings) -> list[Fix]:
    fixes = []
    for kind, (what, action) in _TREE_ERRORS.items():
        if problems := findings.problems_of(kind):
            fixes.append(
                Fix(
                    "high",
                    f"{len(problems)} {what}",
                    action,
                    tuple(f"{p.path}: {p.message}" for p in problems),
                )
            )
    other = [p for p in findings.problems if p.kind not in _HANDLED]
    if other:
        fixes.append(
            Fix(
                "high",
                f"{len(other)} other problem(s)",
                "see the messages",
                tuple(f"[{p.kind}] {p.path}: {p.message}" for p in other),
            )
        )
    return fixes


def _duplicates(findings: Findings) -> list[Fix]:
    within = findings.duplicates[findings.duplicates["crosses"] == ""]
    fixes = []
    for kind, action in (
        ("exact", "byte-identical copies count twice in training and may land in train and test: keep one"),
        ("near", "look at them (re-saved, resized, rotated or mirrored copies of one grain?): keep one"),
    ):
        pairs = within[within["kind"] == kind]
        if not pairs.empty:
            fixes.append(
                Fix(
                    "medium",
                    f"{_pair_count(pairs)} pair(s) of samples with {kind}-duplicate images (same label)",
                    action,
                    tuple(_duplicate_item(row) for _, row in pairs.iterrows()),
                )
            )
    return fixes


def _composition(findings: Findings) -> list[Fix]:
    table, limit = findings.composition, findings.settings.imbalance_limit
    fixes = []
    missing = table[table["missing"] != ""]
    if not missing.empty:
        fixes.append(
            Fix(
                "medium",
                f"classes missing from {len(missing)} river(s)",
                "a class a river lacks cannot be tested on it (leave-one-river-out): collect it, or leave "
                "the class out of cross-river comparisons and say so",
                tuple(f"{r.domain}: {r.missing}" for r in missing.itertuples()),
            )
        )
    extreme = table[table["imbalance_ratio"] > limit]
    if not extreme.empty:
        fixes.append(
            Fix(
                "medium",
                f"imbalance over {limit:g}x in {len(extreme)} river(s)",
                "collect more of the rare classes, or oversample them / weight the loss "
                "(w_i = max_j n_j / n_i), and report macro-F1 beside accuracy",
                tuple(
                    f"{r.domain}: {r.imbalance_ratio:.1f}x (largest {r.largest}, smallest {r.smallest})"
                    for r in extreme.itertuples()
                ),
            )
        )
    tiny = table[table["tiny"] != ""]
    if not tiny.empty:
        fixes.append(
            Fix(
                "medium",
                f"classes with fewer than {findings.settings.tiny_class} pairs in {len(tiny)} river(s)",
                "a stratified 7:3 split leaves them 0-1 test pairs: collect more, merge, or exclude them",
                tuple(f"{r.domain}: {r.tiny}" for r in tiny.itertuples()),
            )
        )
    return fixes


_OUTLIER_FAMILIES: tuple[tuple[str, Callable[[pd.DataFrame], pd.Series], str], ...] = (
    (
        "blurry (low sharpness)",
        lambda t: (t["statistic"] == "sharpness") & (t["direction"] == "low"),
        "re-shoot in focus or remove; many in one river point at that microscope's focus",
    ),
    (
        "badly exposed (brightness, contrast or clipped pixels)",
        lambda t: t["statistic"].isin(["brightness", "contrast", "clipped_dark", "clipped_bright"]),
        "check exposure and white level; clipped pixels lose the colour that identifies a mineral",
    ),
    (
        "off in colour (red or blue share of R+G+B)",
        lambda t: t["statistic"].str.endswith("_share"),
        "check white balance; a colour cast shared by one river is an acquisition shift",
    ),
    (
        "unusually sharp or noisy (high sharpness)",
        lambda t: (t["statistic"] == "sharpness") & (t["direction"] == "high"),
        "look for sensor noise, JPEG blocks or a textured background",
    ),
)


def _outliers(findings: Findings) -> list[Fix]:
    table = findings.outliers
    fixes = []
    for what, select, action in _OUTLIER_FAMILIES:
        hits = table[select(table)] if not table.empty else table
        if hits.empty:
            continue
        items = tuple(
            f"{path}: "
            + ", ".join(
                f"{r.statistic} {r.direction} ({r.value:.4g}, fence {r.fence:.4g})" for r in rows.itertuples()
            )
            for path, rows in hits.groupby("path", sort=False)
        )
        fixes.append(
            Fix("low", f"{len(items)} image(s) {what} for their river, polarization and class", action, items)
        )
    return fixes


def _sizes(findings: Findings) -> list[Fix]:
    sizes = findings.sizes
    fixes = []
    if mismatched := findings.problems_of("size_mismatch"):
        fixes.append(
            Fix(
                "low",
                f"{len(mismatched)} pair(s) whose PPL and XPL images differ in size",
                "the two views may not be registered (cropped differently): check them",
                tuple(f"{p.path}: {p.message}" for p in mismatched),
            )
        )
    if sizes.mixed:
        fixes.append(
            Fix(
                "info",
                f"{sizes.distinct_sizes} distinct image sizes ({sizes.non_square} images lose over 10% "
                "to a centre square crop)",
                "expected for grain crops; scripts/preprocess.py makes a uniform training-ready copy",
                (),
            )
        )
    if not sizes.small.empty:
        fixes.append(
            Fix(
                "info",
                f"{len(sizes.small)} image(s) with a short side under {sizes.small_side} px",
                "they are upsampled for training and look blurred: check they are usable",
                tuple(f"{r.path}: {r.width}x{r.height}" for r in sizes.small.itertuples()),
            )
        )
    if not sizes.large.empty:
        fixes.append(
            Fix(
                "info",
                f"{len(sizes.large)} file(s) over {sizes.large_file_mb:g} MB",
                "decoding them slows every epoch: convert with scripts/preprocess.py",
                tuple(f"{r.path}: {r.file_mb} MB, {r.width}x{r.height}" for r in sizes.large.itertuples()),
            )
        )
    return fixes


def what_to_fix(findings: Findings) -> list[Fix]:
    """Every defect found, worst first (see the module docstring for the order)."""
    fixes: list[Fix] = []
    for step in (_leakage, _tree_errors, _duplicates, _composition, _outliers, _sizes):
        fixes += step(findings)
    return fixes
