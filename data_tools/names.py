"""Canonical names of classes, rivers (domains), polarizations and split folders.

Folder names found in the wild are mapped to one canonical spelling. Names that match no
alias are kept exactly as given, so other datasets (other minerals, other domains) work.

Class names are the published dataset's (Hao et al. 2022), which labels spinel ``Spn``. Beware:
in the standard abbreviations (Whitney and Evans 2010, Am. Mineral. 95:185) spinel is ``Spl`` and
``Spn`` is sphene (titanite, ``Ttn`` in some lists), and many mineralogists read ``Spn`` so. Here
``Spn`` stays the dataset's spinel and ``Spl``/``spinel`` are its aliases; ``build_manifest`` prints
how every folder name was mapped and refuses a tree in which two distinct folder names (``Spl`` and
``Spn``, ``Cpx`` and ``Opx``) would become one class unless a class map (data_tools.class_map)
says so, so a titanite folder named ``Spn`` can be given its own class.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

CANONICAL_CLASSES: tuple[str, ...] = (
    "Amp",
    "Ap",
    "Bt",
    "Ep",
    "Grt",
    "Mnz",
    "Ms",
    "Px",
    "Rt",
    "Spn",
    "Tur",
    "Zrn",
)

MINERAL_NAMES: dict[str, str] = {
    "Amp": "hornblende (amphibole)",
    "Ap": "apatite",
    "Bt": "biotite",
    "Ep": "epidote",
    "Grt": "garnet",
    "Mnz": "monazite",
    "Ms": "muscovite",
    "Px": "pyroxene",
    "Rt": "rutile",
    "Spn": "spinel",  # the dataset's Spn; Spn is titanite (sphene) in Whitney and Evans (2010)
    "Tur": "tourmaline",
    "Zrn": "zircon",
}

_CLASS_ALIASES: dict[str, tuple[str, ...]] = {
    "Amp": ("amphibole", "hornblende", "hbl"),
    "Ap": ("apatite", "apa"),
    "Bt": ("biotite", "bio"),
    "Ep": ("epidote", "epi"),
    "Grt": ("garnet", "gt", "gar"),
    "Mnz": ("monazite", "mon"),
    "Ms": ("muscovite", "mus", "mu"),
    "Px": ("pyroxene", "pyx", "cpx", "opx"),
    "Rt": ("rutile", "rut"),
    "Spn": ("spinel", "spl"),  # Spl: Whitney and Evans' spinel; never sphene or titanite
    "Tur": ("tourmaline", "tour", "tou"),
    "Zrn": ("zircon", "zr", "zir"),
}

CANONICAL_RIVERS: tuple[str, ...] = ("yangtze", "yarlung", "pengqu")

RIVER_DISPLAY_NAMES: dict[str, str] = {
    "yangtze": "Yangtze (Changjiang)",
    "yarlung": "Yarlung Zangbo (Yajiang)",
    "pengqu": "Pengqu (Pum Qu)",
}

_RIVER_ALIASES: dict[str, tuple[str, ...]] = {
    "yangtze": ("yangtze", "changjiang", "yangtzeriver", "cj"),
    "yarlung": ("yarlung", "yarlungzangbo", "yarlungtsangpo", "yajiang", "yaluzangbu", "yj"),
    "pengqu": ("pengqu", "pumqu", "pq"),
}

POLARIZATIONS: tuple[str, ...] = ("plane", "cross")

_POLARIZATION_ALIASES: dict[str, tuple[str, ...]] = {
    "plane": ("plane", "ppl", "single", "parallel", "paralelos", "pp", "1n", "planepolarized"),
    "cross": ("cross", "xpl", "crossed", "cross1", "cruzados", "xp", "cp", "2n", "crosspolarized"),
}

SPLIT_FOLDERS: tuple[str, ...] = ("train", "val", "test")

_SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training", "trn"),
    "val": ("val", "valid", "validation", "dev"),
    "test": ("test", "testing", "tst"),
}


def fold_name(name: str) -> str:
    """Case- and punctuation-insensitive key: 'Cross_1' -> 'cross1', 'Yarlung Zangbo' -> 'yarlungzangbo'."""
    return re.sub(r"[\s_\-.]+", "", name.strip().lower())


def _invert(aliases: dict[str, tuple[str, ...]]) -> dict[str, str]:
    table: dict[str, str] = {}
    for canonical, names in aliases.items():
        for alias in (canonical, *names):
            table[fold_name(alias)] = canonical
    return table


_CLASS_LOOKUP = _invert(_CLASS_ALIASES)
_RIVER_LOOKUP = _invert(_RIVER_ALIASES)
_POL_LOOKUP = _invert(_POLARIZATION_ALIASES)
_SPLIT_LOOKUP = _invert(_SPLIT_ALIASES)


def canonical_class(name: str) -> str:
    """Return the canonical abbreviation for a class folder name ('zircon' -> 'Zrn').

    Unknown names are returned unchanged (stripped), so other label sets pass through.
    """
    return _CLASS_LOOKUP.get(fold_name(name), name.strip())


def canonical_domain(name: str) -> str:
    """Return the canonical river name for a domain folder ('ChangJiang' -> 'yangtze').

    Unknown names are returned unchanged (stripped).
    """
    return _RIVER_LOOKUP.get(fold_name(name), name.strip())


def canonical_polarization(name: str) -> str | None:
    """Return 'plane' or 'cross' for a polarization folder name, or None if it is unknown."""
    return _POL_LOOKUP.get(fold_name(name))


def canonical_split(name: str) -> str | None:
    """Return 'train', 'val' or 'test' for a split folder name, or None if it is unknown."""
    return _SPLIT_LOOKUP.get(fold_name(name))


def ordered(names: Iterable[str], canonical: Iterable[str]) -> list[str]:
    """Distinct names in canonical order first, then the remaining ones alphabetically."""
    present = set(names)
    known = [n for n in canonical if n in present]
    return known + sorted(present.difference(known))


def ordered_classes(names: Iterable[str]) -> list[str]:
    """Class names ordered Amp..Zrn first, then any other names alphabetically."""
    return ordered(names, CANONICAL_CLASSES)


def ordered_domains(names: Iterable[str]) -> list[str]:
    """Domain names ordered yangtze, yarlung, pengqu first, then others alphabetically."""
    return ordered(names, CANONICAL_RIVERS)


def match_names(
    requested: Iterable[str], available: Iterable[str], canonical: Callable[[str], str]
) -> list[str | None]:
    """Each requested name resolved to one of ``available``, or None when it matches none.

    A name matches through its canonical alias (``canonical``), else by :func:`fold_name` (any case
    and punctuation), which is how folder names are matched to canonical names; an available name
    that only differs from another in case cannot be chosen by fold, so it matches exactly or not at all.
    """
    available = list(available)
    by_key: dict[str, list[str]] = {}
    for name in available:
        by_key.setdefault(fold_name(name), []).append(name)
    matched: list[str | None] = []
    for name in requested:
        alias = canonical(name)
        if alias in available:
            matched.append(alias)
            continue
        candidates = by_key.get(fold_name(alias), [])
        matched.append(candidates[0] if len(candidates) == 1 else None)
    return matched


def merged_names(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Names that two or more distinct originals become, from (original, name) pairs: name -> originals.

    Originals that differ only in case and punctuation (``Zrn``, ``ZRN``) count as one.
    """
    groups: dict[str, dict[str, str]] = {}
    for original, name in pairs:
        groups.setdefault(name, {}).setdefault(fold_name(original), original)
    return {name: list(originals.values()) for name, originals in groups.items() if len(originals) > 1}


def parse_name_list(text: str | None) -> list[str]:
    """Split a comma-separated command-line list ('a, b,,c') into stripped non-empty names."""
    if not text:
        return []
    return [part.strip() for part in text.split(",") if part.strip()]
