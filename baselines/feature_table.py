"""Feature tables: read and validate one, write one, and convert the published feature release.

A feature table is a CSV with one row per sample: ``sample_id``, ``domain``, ``label``, an
optional ``split``, then numeric feature columns. The classical methods train on such a table
whether it was extracted here (baselines.features) or computed elsewhere.

The published release (Hao et al.) holds one tab-separated file per river x {train, val} x
{cross, plane}, named ``<River>_<part>_<pol>.txt``, with lines
``filename<TAB>label-index<TAB>space-separated values`` (label index in the order Amp..Zrn).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath

import numpy as np
import pandas as pd

from data_tools.atomic import atomic_write
from data_tools.manifest import make_sample_id, sort_manifest
from data_tools.names import (
    CANONICAL_CLASSES,
    canonical_class,
    canonical_domain,
    canonical_split,
    merged_names,
)
from data_tools.splits import SPLIT_NAMES
from san.evaluation.protocols import UsageError

REQUIRED_COLUMNS: tuple[str, ...] = ("sample_id", "domain", "label")
META_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, "split")
RELEASE_FILE = re.compile(
    r"^(?P<river>[A-Za-z]+)_(?P<part>train|val)_(?P<pol>cross|plane)\.txt$", re.IGNORECASE
)
RELEASE_SPLITS = {"train": "train", "val": "test"}  # the authors' 7:3 "val" part is their test set


class FeatureTableError(UsageError):
    """A feature table or release is malformed; the message names the file and what was expected.

    A usage error: the command-line tools exit with code 2 on it.
    """


def feature_columns(table: pd.DataFrame) -> list[str]:
    """The feature columns of a feature table: every column that is not sample_id/domain/label/split."""
    return [c for c in table.columns if c not in META_COLUMNS]


def _describe(values: Iterable[object], limit: int = 5) -> str:
    values = list(values)
    shown = ", ".join(map(str, values[:limit]))
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def validate_feature_table(table: pd.DataFrame, source: str = "feature table") -> pd.DataFrame:
    """Check a feature table and return it with canonical domain, label and split names.

    Raises:
        FeatureTableError: naming ``source``, the column and what was expected, when a required column
            is missing or empty, no feature column exists, a feature column is not numeric or
            holds NaN/inf, a sample_id repeats, a split value is unknown, or two distinct labels
            (``Spl`` and ``Spn``) would become one class.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise FeatureTableError(
            f"{source}: missing column(s) {', '.join(missing)}; a feature table "
            f"needs {', '.join(REQUIRED_COLUMNS)}, an optional split, then numeric "
            "feature columns"
        )
    table = table.copy()
    for column in (c for c in META_COLUMNS if c in table.columns):
        empty = table[column].isna() | (table[column].astype(str).str.strip() == "")
        if empty.any():
            raise FeatureTableError(
                f"{source}: column {column!r} is empty in {int(empty.sum())} row(s) "
                f"(first at row {int(np.flatnonzero(empty)[0]) + 1})"
            )
        table[column] = table[column].astype(str).str.strip()
    features = feature_columns(table)
    if not features:
        raise FeatureTableError(
            f"{source}: no feature columns; expected numeric columns after "
            f"{', '.join(c for c in META_COLUMNS if c in table.columns)}"
        )
    for column in features:
        values = pd.to_numeric(table[column], errors="coerce")
        text = table[column].notna() & values.isna()
        if text.any():
            row = int(np.flatnonzero(text)[0])
            raise FeatureTableError(
                f"{source}: feature column {column!r} is not numeric "
                f"(value {table[column].iloc[row]!r} in row {row + 1})"
            )
        bad = ~np.isfinite(values.to_numpy(dtype=np.float64))
        if bad.any():
            example = table["sample_id"].iloc[np.flatnonzero(bad)[0]]
            raise FeatureTableError(
                f"{source}: feature column {column!r} has {int(bad.sum())} missing or "
                f"infinite value(s), e.g. sample {example}; expected a finite number "
                "in every row"
            )
        table[column] = values.astype(np.float64)
    repeated = table["sample_id"][table["sample_id"].duplicated()].unique()
    if len(repeated):
        raise FeatureTableError(f"{source}: sample_id values repeat: {_describe(repeated)}")
    table["domain"] = table["domain"].map(canonical_domain)
    labels = table["label"].map(canonical_class)
    if merged := merged_names(zip(table["label"], labels, strict=True)):
        described = "; ".join(f"{', '.join(names)} -> {name}" for name, names in merged.items())
        raise FeatureTableError(
            f"{source}: distinct labels would become one class: {described}; distinct names are never "
            "merged silently (Spn is spinel in the published dataset, titanite elsewhere): rename them "
            "in the table to the classes you mean"
        )
    table["label"] = labels
    if "split" in table.columns:
        table["split"] = table["split"].map(lambda s: canonical_split(s) or s.lower())
        unknown = sorted(set(table["split"]) - set(SPLIT_NAMES))
        if unknown:
            raise FeatureTableError(
                f"{source}: column 'split' has unknown value(s) {_describe(unknown)}; "
                f"expected {', '.join(SPLIT_NAMES)}"
            )
    return table


def read_feature_table(path: str | Path) -> pd.DataFrame:
    """Read and validate a feature table CSV (see validate_feature_table).

    Raises:
        FileNotFoundError: the file does not exist.
        FeatureTableError: the table is malformed (the message names the file and the column).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature table {str(path)!r} does not exist")
    table = pd.read_csv(path, dtype={c: str for c in META_COLUMNS})
    return validate_feature_table(table, source=str(path))


def write_feature_table(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a feature table CSV atomically (floats round-trip exactly); returns the path."""
    return atomic_write(path, lambda tmp: table.to_csv(tmp, index=False))


@dataclass(frozen=True)
class _ReleaseRow:
    filename: str
    label: str
    values: np.ndarray
    line: int


def _feature_column(pol: str, index: int) -> str:
    """Name of a release value's column in the feature table: ``cross_f000``, ``plane_f012``..."""
    return f"{pol}_f{index:03d}"


def _parse_release_file(path: Path, pol: str) -> list[_ReleaseRow]:
    """Rows of one release file; FeatureTableError naming the file and line (and the value's column)
    for a malformed one: not UTF-8, wrong field count, unreadable or non-finite values."""
    rows: list[_ReleaseRow] = []
    width = None
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        line = path.read_bytes()[: error.start].count(b"\n") + 1
        raise FeatureTableError(
            f"{path}, line {line}: not UTF-8 text (byte {error.object[error.start]:#04x} "
            f"at offset {error.start}); expected the release's UTF-8 text files"
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3:
            raise FeatureTableError(
                f"{path}, line {number}: expected filename<TAB>label-index<TAB>values, "
                f"got {len(fields)} tab-separated field(s)"
            )
        filename, label_text, value_text = (f.strip() for f in fields)
        try:
            label_index = int(label_text)
            values = np.array(value_text.split(), dtype=np.float64)
        except ValueError as error:
            raise FeatureTableError(
                f"{path}, line {number}: cannot read label index or values ({error})"
            ) from None
        if not np.isfinite(values).all():
            column = int(np.flatnonzero(~np.isfinite(values))[0])
            raise FeatureTableError(
                f"{path}, line {number} ({filename}): value {column + 1} "
                f"(column {_feature_column(pol, column)}) is {value_text.split()[column]!r}; "
                "expected a finite number"
            )
        if not 0 <= label_index < len(CANONICAL_CLASSES):
            raise FeatureTableError(
                f"{path}, line {number}: label index {label_index} is outside "
                f"0..{len(CANONICAL_CLASSES) - 1} (Amp..Zrn)"
            )
        if width is not None and len(values) != width:
            raise FeatureTableError(
                f"{path}, line {number}: {len(values)} values, but earlier lines have {width}"
            )
        width = len(values)
        rows.append(_ReleaseRow(filename, CANONICAL_CLASSES[label_index], values, number))
    return rows


def _keyed(path: Path, rows: list[_ReleaseRow]) -> dict[tuple[str, str], _ReleaseRow]:
    """Rows by (file name, class): names such as ``01-10x.jpg`` recur across class folders.

    Raises FeatureTableError if a (name, class) repeats within the file.
    """
    keyed: dict[tuple[str, str], _ReleaseRow] = {}
    for row in rows:
        key = (row.filename, row.label)
        if key in keyed:
            raise FeatureTableError(
                f"{path}: sample {row.filename!r} ({row.label}) appears on lines "
                f"{keyed[key].line} and {row.line}"
            )
        keyed[key] = row
    return keyed


def _check_same_samples(
    cross_path: Path,
    cross: dict[tuple[str, str], _ReleaseRow],
    plane_path: Path,
    plane: dict[tuple[str, str], _ReleaseRow],
) -> None:
    """FeatureTableError naming the sample when the files disagree on a label or on which samples exist."""
    only_cross = [key for key in cross if key not in plane]
    only_plane = [key for key in plane if key not in cross]
    unmatched_plane = {name: key for name, key in ((k[0], k) for k in only_plane)}
    for key in only_cross:
        if key[0] in unmatched_plane:
            other = plane[unmatched_plane[key[0]]]
            raise FeatureTableError(
                f"sample {key[0]!r}: label {key[1]} in {cross_path} "
                f"(line {cross[key].line}) but {other.label} in {plane_path} "
                f"(line {other.line})"
            )
    if only_cross or only_plane:
        where = [
            f"{_describe(k[0] for k in only_cross)} only in {cross_path.name}" if only_cross else "",
            f"{_describe(k[0] for k in only_plane)} only in {plane_path.name}" if only_plane else "",
        ]
        raise FeatureTableError(
            f"{cross_path.parent}: cross and plane files disagree on their samples: "
            f"{'; '.join(w for w in where if w)}"
        )


@dataclass(frozen=True)
class _ReleaseSample:
    sample_id: str
    domain: str
    label: str
    part: str
    stem: str
    cross: _ReleaseRow
    plane: _ReleaseRow
    where: str  # "<cross file>, line N", for messages


def _join_pair(cross_path: Path, plane_path: Path, river: str, part: str) -> list[_ReleaseSample]:
    """One sample per line of a (river, part), its cross and plane rows side by side."""
    cross = _keyed(cross_path, _parse_release_file(cross_path, "cross"))
    plane = _keyed(plane_path, _parse_release_file(plane_path, "plane"))
    _check_same_samples(cross_path, cross, plane_path, plane)
    domain = canonical_domain(river)
    samples = []
    for key, cross_row in cross.items():
        stem = PureWindowsPath(cross_row.filename).stem  # a name may carry a Windows or POSIX folder
        # The part is part of the identity: different grains of one river share file names across
        # the release's train and val files.
        samples.append(
            _ReleaseSample(
                make_sample_id(domain, part, cross_row.label, stem),
                domain,
                cross_row.label,
                part,
                stem,
                cross_row,
                plane[key],
                f"{cross_path.name}, line {cross_row.line}",
            )
        )
    return samples


def _check_no_copies(directory: Path, samples: list[_ReleaseSample]) -> None:
    """FeatureTableError when a file name of a river and class is in both parts with the same values
    (one grain on both sides of the split); same names with different values are different grains."""
    by_name: dict[tuple[str, str, str], list[_ReleaseSample]] = {}
    for sample in samples:
        by_name.setdefault((sample.domain, sample.label, sample.stem), []).append(sample)
    copies = [
        f"{first.stem!r} ({first.domain}, {first.label}: {first.where} and {second.where})"
        for first, *others in by_name.values()
        for second in others
        if np.array_equal(first.cross.values, second.cross.values)
        and np.array_equal(first.plane.values, second.plane.values)
    ]
    if copies:
        raise FeatureTableError(
            f"{directory}: sample(s) in both the train and val files with identical "
            f"feature values (leakage): {_describe(copies)}"
        )


def import_published_release(directory: str | Path) -> pd.DataFrame:
    """Convert the published feature release into a feature table.

    Returns:
        Rows ``sample_id`` (``<domain>/<part>/<label>/<file stem>``, part = train or val, as
        ``build_manifest`` names a ``{domain}/{split}/...`` tree), ``domain`` (canonical river),
        ``label`` (canonical class), ``split`` (train -> train, val -> test), then
        ``cross_f000...`` and ``plane_f000...``; ordered by domain, class and sample_id.

    Raises:
        FileNotFoundError: the folder does not exist.
        FeatureTableError: unknown ``.txt`` file names (listed), a river/part with only one
            polarization, malformed lines (not UTF-8, NaN or infinite values: file, line and
            column named), cross and plane files that disagree on a sample's presence or label,
            inconsistent value counts, or a file name in both parts of a river with identical values.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"feature release folder {str(directory)!r} does not exist")
    found: dict[tuple[str, str], dict[str, Path]] = {}
    unknown = []
    for path in sorted(directory.glob("*.txt")):
        match = RELEASE_FILE.match(path.name)
        if match is None:
            unknown.append(path.name)
            continue
        key = (match["river"], match["part"].lower())
        found.setdefault(key, {})[match["pol"].lower()] = path
    if unknown:
        raise FeatureTableError(
            f"{directory}: file name(s) not of the form "
            f"<River>_<train|val>_<cross|plane>.txt: "
            f"{_describe(unknown, limit=20)}"
        )
    if not found:
        raise FeatureTableError(f"{directory}: no <River>_<train|val>_<cross|plane>.txt files")
    samples: list[_ReleaseSample] = []
    for (river, part), by_pol in sorted(found.items()):
        if set(by_pol) != {"cross", "plane"}:
            (present,) = by_pol
            absent = "plane" if present == "cross" else "cross"
            raise FeatureTableError(
                f"{directory}: {by_pol[present].name} has no {river}_{part}_{absent}.txt partner"
            )
        samples += _join_pair(by_pol["cross"], by_pol["plane"], river, part)

    for pol in ("cross", "plane"):
        widths = {len(getattr(s, pol).values) for s in samples}
        if len(widths) > 1:
            raise FeatureTableError(
                f"{directory}: the {pol} files hold different numbers of values per line: {sorted(widths)}"
            )
    _check_no_copies(directory, samples)
    meta = pd.DataFrame(
        {
            "sample_id": [s.sample_id for s in samples],
            "domain": [s.domain for s in samples],
            "label": [s.label for s in samples],
            "split": [RELEASE_SPLITS[s.part] for s in samples],
        }
    )
    repeated = meta["sample_id"][meta["sample_id"].duplicated()].unique()
    if len(repeated):  # two river spellings (ChangJiang_train and Yangtze_train) name one river
        raise FeatureTableError(f"{directory}: sample(s) listed twice: {_describe(repeated)}")
    blocks = [meta]
    for pol in ("cross", "plane"):
        matrix = np.stack([getattr(s, pol).values for s in samples])
        columns = [_feature_column(pol, i) for i in range(matrix.shape[1])]
        blocks.append(pd.DataFrame(matrix, columns=columns))
    return sort_manifest(pd.concat(blocks, axis=1))
