"""Which rivers train and which are held out: the mixed and leave-one-river-out (``loro``) protocols.

``loro`` trains on the source rivers and tests on held-out target rivers (one, or several when asked
for); ``cross`` is its former name, still accepted, and old records that say ``cross`` mean the same.
``loso`` runs are the leave-one-source-out validation runs of the tables' selection rule.
Only the names are needed to build a command line, so the data libraries load when a split is drawn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from data_tools.names import (
    canonical_class,
    canonical_domain,
    match_names,
    ordered_classes,
    ordered_domains,
)

if TYPE_CHECKING:
    import pandas as pd

PROTOCOLS = ("mixed", "loro")
# loso: a leave-one-source-out validation run of the tables' selection rule (san.benchmark.selection):
# trained on some sources, scored on a held-out source river without the part its test split holds.
# Not an evaluation protocol of its own (the benchmark adds these runs with --loso).
AUXILIARY_PROTOCOLS = ("loso",)
PROTOCOL_ALIASES = {"cross": "loro"}
PROTOCOL_CHOICES = (*PROTOCOLS, *AUXILIARY_PROTOCOLS, *PROTOCOL_ALIASES)


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
        """Short name for run directories and W&B groups, e.g. ``loro-yangtze``, ``mixed`` (as the
        benchmark's job folders) or ``loso-without-pengqu``; runs made before the rename say
        ``cross-to-yangtze``."""
        if self.name == "loso":
            return f"loso-without-{'+'.join(self.targets)}"
        return f"loro-{'+'.join(self.targets)}" if self.name == "loro" else "mixed"


def canonical_protocol(name: str | None) -> str | None:
    """``loro`` for its alias ``cross`` (any case); other names unchanged; None stays None."""
    if name is None:
        return None
    name = str(name).lower()
    return PROTOCOL_ALIASES.get(name, name)


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
    the protocol defaults to ``loro`` when there are targets, else ``mixed`` (``cross`` is ``loro``).

    Raises:
        UsageError: an unknown river (the message lists the data's rivers), or an impossible request.
    """
    protocol = canonical_protocol(protocol)
    available = ordered_domains(manifest["domain"])
    sources = _canonical_names(domains, available, "river", canonical_domain) if domains else list(available)
    if targets:
        chosen_targets = _canonical_names(targets, available, "river", canonical_domain)
    else:
        chosen_targets = [d for d in available if d not in sources] if protocol != "mixed" else []
    if protocol not in (None, *PROTOCOLS, *AUXILIARY_PROTOCOLS):
        raise UsageError(f"--protocol must be one of {', '.join(PROTOCOL_CHOICES)}, got {protocol!r}")
    name = protocol or ("loro" if chosen_targets else "mixed")
    if name in ("loro", "loso") and not chosen_targets:
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
    from data_tools.splits import split_cross, split_from_given, split_held_out_source, split_mixed

    fractions = {"test_fraction": data_config["test_fraction"], "val_fraction": data_config["val_fraction"]}
    if data_config.get("use_given_split"):
        if protocol.name == "loso":
            raise UsageError("the loso protocol draws its own split; it cannot use the data's given split")
        split = split_from_given(manifest, seed, val_fraction=fractions["val_fraction"])
        if protocol.name == "loro":
            split[manifest["domain"].isin(protocol.targets)] = "target"
        split[~manifest["domain"].isin(protocol.domains)] = "unused"
        return split
    if protocol.name == "mixed":
        return split_mixed(manifest, seed, domains=protocol.sources, **fractions)
    if protocol.name == "loso":
        return split_held_out_source(manifest, protocol.sources, protocol.targets, seed, **fractions)
    return split_cross(manifest, protocol.sources, protocol.targets, seed, **fractions)
