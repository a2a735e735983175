"""Explicit folder -> class maps (``build_manifest.py --class-map FILE``).

A class map names the class of some label folders, overriding the built-in aliases of
:mod:`data_tools.names`; it is also how two distinct folder names are allowed to become one class
(``build_manifest`` refuses such a merge otherwise). Two formats, chosen by the file's suffix:

- YAML (``.yaml``/``.yml``): a mapping ``folder: class``, one per line, e.g. ``Cpx: Px``. Every
  value is read as text (``No`` stays ``No``).
- CSV (``.csv``): a header ``folder,class`` then one row per folder.

Folder names are matched as the aliases are: any case, ignoring spaces, ``_``, ``-`` and ``.``.
Class names are used as written.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from data_tools.names import fold_name

CLASS_MAP_FORMAT = (
    "a YAML mapping 'folder: class' (.yaml/.yml) or a CSV with the header 'folder,class' (.csv)"
)


class ClassMapError(ValueError):
    """A class map file is missing or malformed; the message names the file and what was expected."""


def _pairs_from_yaml(path: Path, text: str) -> list[tuple[str, str]]:
    try:
        loaded = yaml.load(text, Loader=yaml.BaseLoader)  # BaseLoader: every scalar stays a string
    except yaml.YAMLError as error:
        raise ClassMapError(f"{path}: not valid YAML ({error}); expected {CLASS_MAP_FORMAT}") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
        raise ClassMapError(f"{path}: expected {CLASS_MAP_FORMAT}, e.g. 'Cpx: Px' on each line")
    return list(loaded.items())


def _pairs_from_csv(path: Path) -> list[tuple[str, str]]:
    import pandas as pd  # here, not at the top: build_manifest.py --help prints this module's format

    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ClassMapError(f"{path}: not a readable CSV ({error}); expected {CLASS_MAP_FORMAT}") from None
    if list(table.columns) != ["folder", "class"]:
        raise ClassMapError(
            f"{path}: columns {', '.join(map(str, table.columns))}; expected exactly folder,class"
        )
    return list(zip(table["folder"], table["class"], strict=True))


def read_class_map(path: str | Path) -> dict[str, str]:
    """The folder -> class map of a YAML or CSV file, keys as written.

    Raises:
        ClassMapError: the file is missing, not UTF-8, of another suffix or malformed, a folder or a
            class is empty, or a folder is listed twice (also in two spellings: 'Cpx' and 'cpx').
    """
    path = Path(path)
    if not path.is_file():
        raise ClassMapError(f"class map {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            pairs = _pairs_from_yaml(path, path.read_text(encoding="utf-8"))
        elif suffix == ".csv":
            pairs = _pairs_from_csv(path)
        else:
            raise ClassMapError(f"{path}: unknown suffix {path.suffix!r}; expected {CLASS_MAP_FORMAT}")
    except UnicodeDecodeError as error:
        raise ClassMapError(f"{path}: not UTF-8 text ({error})") from None
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for folder, label in pairs:
        folder, label = folder.strip(), label.strip()
        if not folder or not label:
            raise ClassMapError(f"{path}: entry {folder!r}: {label!r} has an empty folder or class")
        if (key := fold_name(folder)) in seen:
            raise ClassMapError(f"{path}: folder {folder!r} is listed twice ({seen[key]!r} and {folder!r})")
        seen[key] = folder
        mapping[folder] = label
    return mapping


def class_for_folder(folder: str, class_map: dict[str, str]) -> str | None:
    """The class ``class_map`` gives a folder name (matched in any case and punctuation), or None."""
    key = fold_name(folder)
    return next((label for name, label in class_map.items() if fold_name(name) == key), None)
