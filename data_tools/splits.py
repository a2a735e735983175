"""Seeded, stratified splits by pair: mixed (per-domain 7:3), validation carve-out, cross-domain.

Each (domain, class) group is shuffled with its own generator derived from (seed, domain, class),
so a group's split does not depend on the row order or on which other domains are present, and
the per-class proportions hold within one sample (rounding), which scikit-learn's shuffle
splitters do not guarantee for tiny classes. Split names: ``train``, ``val``, ``test``,
``target`` and ``unused`` (rows of domains that take no part in a run).
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from data_tools.atomic import atomic_write

log = logging.getLogger(__name__)

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test", "target", "unused")


def _group_rng(seed: int, *keys: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(k.encode()) for k in keys)])


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")


def _carve(manifest: pd.DataFrame, rows: pd.Index, fraction: float, seed: int, purpose: str) -> pd.Index:
    """Pick round(fraction * n) rows of every (domain, label) group among ``rows``, seeded.

    A group of one sample cannot be split: it stays where it is, with a warning.
    """
    picked: list[pd.Index] = []
    subset = manifest.loc[rows]
    for (domain, label), group in subset.groupby(["domain", "label"], sort=True):
        ids = group.sort_values("sample_id").index
        if len(ids) < 2:
            if fraction > 0:
                log.warning(
                    "domain %r class %r has %d sample(s): none can go to %s; kept in the larger part",
                    domain,
                    label,
                    len(ids),
                    purpose,
                )
            continue
        count = min(int(np.floor(fraction * len(ids) + 0.5)), len(ids) - 1)
        order = _group_rng(seed, purpose, str(domain), str(label)).permutation(len(ids))
        picked.append(ids[order[:count]])
    return picked[0].append(picked[1:]) if picked else pd.Index([])


def _split_domains(
    manifest: pd.DataFrame, domains: Iterable[str], seed: int, test_fraction: float, val_fraction: float
) -> pd.Series:
    """train/val/test for the rows of the given domains; NaN elsewhere."""
    _check_fraction("test_fraction", test_fraction)
    _check_fraction("val_fraction", val_fraction)
    split = pd.Series(np.nan, index=manifest.index, dtype=object)
    rows = manifest.index[manifest["domain"].isin(list(domains))]
    test = _carve(manifest, rows, test_fraction, seed, "test")
    train = rows.difference(test)
    val = _carve(manifest, train, val_fraction, seed, "val")
    split[rows] = "train"
    split[test] = "test"
    split[val] = "val"
    return split


def _unknown(manifest: pd.DataFrame, names: Sequence[str]) -> list[str]:
    present = set(manifest["domain"])
    return [n for n in names if n not in present]


def split_mixed(
    manifest: pd.DataFrame,
    seed: int,
    *,
    domains: Sequence[str] | None = None,
    test_fraction: float = 0.3,
    val_fraction: float = 0.15,
) -> pd.Series:
    """Mixed protocol: each domain split stratified 7:3 into train/test; ``val`` carved from train.

    Args:
        manifest: one row per pair, with ``sample_id``, ``domain`` and ``label`` columns.
        seed: the split seed; the same seed gives the same split.
        domains: domains taking part (default all); the others are ``unused``.
        test_fraction: share of each (domain, class) group sent to ``test``.
        val_fraction: share of each group's training part sent to ``val``.

    Returns:
        A Series aligned with ``manifest.index`` holding train/val/test/unused.

    Raises:
        ValueError: a named domain is not in the manifest, or a fraction is outside [0, 1).
    """
    domains = list(domains) if domains is not None else list(manifest["domain"].unique())
    if missing := _unknown(manifest, domains):
        raise ValueError(f"unknown domain(s) {missing}; the data hold {sorted(manifest['domain'].unique())}")
    split = _split_domains(manifest, domains, seed, test_fraction, val_fraction)
    return split.fillna("unused").rename("split")


def split_cross(
    manifest: pd.DataFrame,
    sources: Sequence[str],
    targets: Sequence[str],
    seed: int,
    *,
    test_fraction: float = 0.3,
    val_fraction: float = 0.15,
) -> pd.Series:
    """Cross-domain protocol: sources split like the mixed protocol; every target row is ``target``.

    Leave-one-river-out is the case of one target and all other rivers as sources.

    Raises:
        ValueError: no source or target, a domain in both, or a domain not in the manifest.
    """
    sources, targets = list(sources), list(targets)
    if not sources or not targets:
        raise ValueError("the cross-domain protocol needs at least one source and one target domain")
    if overlap := sorted(set(sources) & set(targets)):
        raise ValueError(f"domain(s) {overlap} are both source and target")
    if missing := _unknown(manifest, sources + targets):
        raise ValueError(f"unknown domain(s) {missing}; the data hold {sorted(manifest['domain'].unique())}")
    split = _split_domains(manifest, sources, seed, test_fraction, val_fraction)
    split[manifest["domain"].isin(targets)] = "target"
    return split.fillna("unused").rename("split")


def split_held_out_source(
    manifest: pd.DataFrame,
    sources: Sequence[str],
    held_out: Sequence[str],
    seed: int,
    *,
    test_fraction: float = 0.3,
    val_fraction: float = 0.15,
) -> pd.Series:
    """A leave-one-source-out validation run: ``sources`` split like the mixed protocol; the rows of the
    ``held_out`` source rivers are ``target`` except those the same seed sends to ``test`` when that
    river is a source (they become ``unused``), so the runs that train on every source keep an
    in-domain test split that no selection has seen.

    Raises:
        ValueError: as :func:`split_cross`.
    """
    split = split_cross(
        manifest, sources, held_out, seed, test_fraction=test_fraction, val_fraction=val_fraction
    )
    held_rows = manifest.index[manifest["domain"].isin(list(held_out))]
    split[_carve(manifest, held_rows, test_fraction, seed, "test")] = "unused"
    return split


def oracle_rows(manifest: pd.DataFrame, rows: Sequence[int], seed: int, fraction: float = 0.2) -> np.ndarray:
    """DomainBed's test-domain validation part: a ``fraction`` of ``rows`` (positions into ``manifest``)
    per (domain, class), seeded. Only the oracle selection rule reads scores on it; the oracle then
    reports the other rows.
    """
    index = manifest.index[np.asarray(rows, dtype=int)]
    picked = _carve(manifest, index, fraction, seed, "oracle")
    return np.flatnonzero(manifest.index.isin(picked))


def split_from_given(manifest: pd.DataFrame, seed: int, *, val_fraction: float = 0.15) -> pd.Series:
    """Use the tree's own split column (train stays train; val and test become test), carving ``val``.

    Raises:
        ValueError: the manifest has no ``split`` column.
    """
    if "split" not in manifest.columns:
        raise ValueError("the data have no given split (no split level in the tree, no split column)")
    _check_fraction("val_fraction", val_fraction)
    split = manifest["split"].map({"train": "train", "val": "test", "test": "test"}).fillna("unused")
    val = _carve(manifest, split.index[split == "train"], val_fraction, seed, "val")
    split[val] = "val"
    return split.rename("split")


def save_split(manifest: pd.DataFrame, split: pd.Series, path: str) -> None:
    """Write ``sample_id,domain,label,split`` to a CSV (atomically)."""
    table = manifest[["sample_id", "domain", "label"]].assign(split=split.values)
    atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


def split_counts(manifest: pd.DataFrame, split: pd.Series) -> pd.DataFrame:
    """Pairs per domain (rows) x split (columns) for a log line or a report."""
    table = pd.crosstab(manifest["domain"], split)
    return table.reindex(columns=[s for s in SPLIT_NAMES if s in table.columns])
