"""Which rivers train and which are held out: the mixed and cross-domain protocols."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from data_tools.names import (
    canonical_class,
    canonical_domain,
    match_names,
    ordered_classes,
    ordered_domains,
)
from data_tools.splits import split_cross, split_from_given, split_held_out_source, split_mixed

# loso: a leave-one-source-out validation run of the tables' selection rule (san.benchmark.selection):
# trained on some sources, scored on a held-out source river without the part its test split holds.
PROTOCOLS = ("mixed", "cross", "loso")


class UsageError(ValueError):
    """The command line asks for something the data or the code do not have (exit code 2)."""


@dataclass(frozen=True)
class Protocol:
    """A protocol and its rivers; ``domains`` lists sources first, so source index = domain index."""

    name: str
    sources: tuple[str, ...]
    targets: tuple[str, ...]

    @property
    def domains(self) -> tuple[str, ...]:
        return self.sources + self.targets

    @property
    def label(self) -> str:
        """Short name for run directories and W&B groups, e.g. ``cross-to-yangtze``, ``mixed`` or
        ``loso-without-pengqu``."""
        if self.name == "loso":
            return f"loso-without-{'+'.join(self.targets)}"
        return f"cross-to-{'+'.join(self.targets)}" if self.name == "cross" else "mixed"


def _canonical_names(requested: Sequence[str], available: Sequence[str], kind: str, canonical) -> list[str]:
    names = match_names(requested, available, canonical)
    if unknown := [r for r, n in zip(requested, names, strict=True) if n is None]:
        raise UsageError(f"unknown {kind}(s) {', '.join(unknown)}; the data hold: {', '.join(available)}")
    if repeated := [n for n in dict.fromkeys(names) if names.count(n) > 1]:
        spelled = ", ".join(r for r, n in zip(requested, names, strict=True) if n == repeated[0])
        raise UsageError(f"{kind} {repeated[0]} is named more than once ({spelled}); name each {kind} once")
    return list(names)


def resolve_protocol(
    manifest: pd.DataFrame, domains: Sequence[str] | None, targets: Sequence[str] | None, protocol: str | None
) -> Protocol:
    """Sources default to every river in the data, targets to the rivers not among the sources;
    the protocol defaults to ``cross`` when there are targets, else ``mixed``.

    Raises:
        UsageError: an unknown river (the message lists the data's rivers), or an impossible request.
    """
    available = ordered_domains(manifest["domain"])
    sources = _canonical_names(domains, available, "river", canonical_domain) if domains else list(available)
    if targets:
        chosen_targets = _canonical_names(targets, available, "river", canonical_domain)
    else:
        chosen_targets = [d for d in available if d not in sources] if protocol != "mixed" else []
    if protocol not in (None, *PROTOCOLS):
        raise UsageError(f"--protocol must be one of {PROTOCOLS}, got {protocol!r}")
    name = protocol or ("cross" if chosen_targets else "mixed")
    if name in ("cross", "loso") and not chosen_targets:
        raise UsageError(
            f"the {name} protocol needs a target river: every river is a source "
            f"({', '.join(sources)}); name fewer --domains or give --targets"
        )
    if name == "mixed" and chosen_targets:
        raise UsageError("--targets makes no sense with --protocol mixed (no river is held out)")
    if overlap := sorted(set(sources) & set(chosen_targets)):
        raise UsageError(f"river(s) {', '.join(overlap)} cannot be both a source and a target")
    return Protocol(name, tuple(ordered_domains(sources)), tuple(ordered_domains(chosen_targets)))


def select_classes(manifest: pd.DataFrame, classes: Sequence[str] | None) -> pd.DataFrame:
    """Keep only the named classes (canonical or alias names).

    Raises:
        UsageError: an unknown class (the message lists the data's classes).
    """
    if not classes:
        return manifest
    available = ordered_classes(manifest["label"])
    chosen = _canonical_names(classes, available, "class", canonical_class)
    return manifest[manifest["label"].isin(chosen)].reset_index(drop=True)


def make_split(
    manifest: pd.DataFrame, protocol: Protocol, seed: int, data_config: Mapping[str, Any]
) -> pd.Series:
    """The split column of a run (train/val/test/target/unused per manifest row)."""
    fractions = {"test_fraction": data_config["test_fraction"], "val_fraction": data_config["val_fraction"]}
    if data_config.get("use_given_split"):
        if protocol.name == "loso":
            raise UsageError("the loso protocol draws its own split; it cannot use the data's given split")
        split = split_from_given(manifest, seed, val_fraction=fractions["val_fraction"])
        if protocol.name == "cross":
            split[manifest["domain"].isin(protocol.targets)] = "target"
        split[~manifest["domain"].isin(protocol.domains)] = "unused"
        return split
    if protocol.name == "mixed":
        return split_mixed(manifest, seed, domains=protocol.sources, **fractions)
    if protocol.name == "loso":
        return split_held_out_source(manifest, protocol.sources, protocol.targets, seed, **fractions)
    return split_cross(manifest, protocol.sources, protocol.targets, seed, **fractions)
