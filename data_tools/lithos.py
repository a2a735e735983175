"""Reader of the LITHOS dataset (Chacon et al., "Towards Automated Petrography"; BCV-Uniandes/LITHOS).

Layout, as LITHOS's own loader reads it:

- two fold CSVs, ``Fold1_complete_info_allclasses.csv`` and ``Fold2_complete_info_allclasses.csv``,
  whose ``Sec_patch`` column holds the path of a PPL patch relative to the dataset root;
- the XPL twin of a patch is the same path with ``ppl-0`` replaced by ``xpl-0``;
- the labels of a patch are row 0 of ``center_component.csv`` in the patch's folder, columns
  ``Binary_label`` and ``Multiclass_label``.

Classes: raw ``Multiclass_label`` ids 0-28, with 4, 21, 25 and 26 merged into 24 (:data:`MERGED_IDS`),
give 25 classes, named ``L00`` ... ``L28`` after the raw id (``L24`` holds the merged ones); the raw
id and the binary label are kept in the ``raw_label`` and ``binary_label`` columns. (LITHOS's own
loader re-indexes the kept ids to 0..24 and then maps 4, 21, 25, 26 to the *new* index 24, which is
where raw id 28 lands: there the merged ids share a class with 28, and raw 24 stays alone. Both give
25 classes; this reader reads the remap table {4: 24, 21: 24, 25: 24, 26: 24} as raw ids. Map them to
28 in :data:`MERGED_IDS` to reproduce LITHOS's code.) The two folds are
the split: one trains (``split`` = train, ``val`` is carved from it by the run), the other is the
test split; train on the other one with the layout ``lithos:2``. Use it with
``--set data.use_given_split=true`` (otherwise the run draws its own 7:3 split of all patches).

Put the fold CSVs in the folder given as ``--data``; ``Sec_patch`` is resolved against that folder or,
as in LITHOS's default ``--root_dataset``, its ``LITHOS_DATASET_P/LITHOS_DATASET`` (or
``LITHOS_DATASET``) sub-folder, whichever holds the listed patches. Every patch is one pair of the
single domain ``lithos`` (LITHOS has no rivers); problems are named per file as for any tree.
"""

from __future__ import annotations

import logging
from pathlib import Path, PurePosixPath

import pandas as pd

from data_tools.layout import LayoutError
from data_tools.manifest import ManifestResult, Problem, _ImageFile, validate_pairs

log = logging.getLogger(__name__)

LITHOS_LAYOUT = "lithos"
FOLD_FILE = "Fold{fold}_complete_info_allclasses.csv"
FOLDS = (1, 2)
PATH_COLUMN = "Sec_patch"
LABEL_FILE = "center_component.csv"
LABEL_COLUMNS = ("Binary_label", "Multiclass_label")
PLANE_MARK, CROSS_MARK = "ppl-0", "xpl-0"
RAW_IDS = range(29)
MERGED_IDS = {4: 24, 21: 24, 25: 24, 26: 24}
IMAGE_BASES = (".", "LITHOS_DATASET_P/LITHOS_DATASET", "LITHOS_DATASET")
DOMAIN = "lithos"


def class_name(raw_id: int) -> str:
    """The class of a raw ``Multiclass_label`` id after the merge: 4 -> 'L24', 7 -> 'L07'."""
    return f"L{MERGED_IDS.get(raw_id, raw_id):02d}"


CLASSES: tuple[str, ...] = tuple(sorted({class_name(i) for i in RAW_IDS}))  # 25 names


def is_lithos_layout(layout: str | None) -> bool:
    """True for ``lithos`` and ``lithos:<training fold>``."""
    return layout is not None and layout.split(":")[0].strip().lower() == LITHOS_LAYOUT


def is_lithos_tree(root: Path) -> bool:
    """True when ``root`` holds a LITHOS fold CSV."""
    return any((Path(root) / FOLD_FILE.format(fold=fold)).is_file() for fold in FOLDS)


def training_fold(layout: str) -> int:
    """The fold that trains: 1 for ``lithos``, n for ``lithos:n``.

    Raises:
        LayoutError: a fold other than 1 or 2.
    """
    _, _, fold = layout.partition(":")
    if not fold.strip():
        return FOLDS[0]
    if fold.strip() not in {str(f) for f in FOLDS}:
        raise LayoutError(f"layout {layout!r}: the training fold must be 1 or 2 (lithos:1 or lithos:2)")
    return int(fold)


def _read_fold(path: Path) -> list[str]:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise LayoutError(f"{path}: cannot read the LITHOS fold CSV ({error})") from error
    if PATH_COLUMN not in table.columns:
        raise LayoutError(
            f"{path}: no {PATH_COLUMN!r} column (has {', '.join(table.columns)}); a LITHOS fold CSV lists "
            f"the PPL patch of every row in {PATH_COLUMN!r}"
        )
    return [p.strip().replace("\\", "/") for p in table[PATH_COLUMN] if p.strip()]


def _image_base(root: Path, paths: list[str]) -> str:
    """The folder (relative to root) under which most of the first listed patches exist."""
    sample = paths[:50]
    found = {base: sum((root / base / p).is_file() for p in sample) for base in IMAGE_BASES}
    best = max(IMAGE_BASES, key=lambda base: found[base])  # ties: the first, the root itself
    return best if found[best] else IMAGE_BASES[0]


def _read_labels(folder: Path, where: str) -> tuple[int, int] | Problem:
    """(binary, raw multiclass id) from ``center_component.csv``, or the problem with it."""
    path = folder / LABEL_FILE
    if not path.is_file():
        return Problem(
            "error",
            "missing_label",
            where,
            f"no {LABEL_FILE} in the patch folder (expected columns {', '.join(LABEL_COLUMNS)})",
        )
    try:
        table = pd.read_csv(path)
        binary, raw = (int(table[column].iloc[0]) for column in LABEL_COLUMNS)
    except (
        OSError,
        KeyError,
        IndexError,
        ValueError,
        pd.errors.ParserError,
        pd.errors.EmptyDataError,
    ) as error:
        return Problem(
            "error",
            "bad_label",
            where,
            f"cannot read row 0 of columns {', '.join(LABEL_COLUMNS)} as integers ({type(error).__name__}: "
            f"{error})",
        )
    if raw not in RAW_IDS:
        return Problem(
            "error", "unknown_label", where, f"Multiclass_label {raw} is outside the LITHOS ids 0-28"
        )
    return binary, raw


def _patch_problem(root: Path, plane: str, fold: int, repeated: bool) -> Problem | None:
    """What is wrong with a listed PPL patch and its XPL twin, if anything (labels aside)."""
    if repeated:
        return Problem("error", "listed_twice", plane, f"patch listed more than once (again in fold {fold})")
    if PLANE_MARK not in plane:
        return Problem(
            "error",
            "no_ppl_mark",
            plane,
            f"the path has no {PLANE_MARK!r}, so its XPL twin ({CROSS_MARK!r}) cannot be named",
        )
    if not (root / plane).is_file():
        return Problem("error", "missing_file", plane, f"PPL patch listed in fold {fold} not found")
    cross = plane.replace(PLANE_MARK, CROSS_MARK)
    if not (root / cross).is_file():
        return Problem("error", "unpaired", plane, f"no XPL twin {cross} ({PLANE_MARK} -> {CROSS_MARK})")
    return None


def build_lithos_manifest(
    root: str | Path,
    layout: str = LITHOS_LAYOUT,
    domain: str | None = None,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> ManifestResult:
    """The manifest of a LITHOS tree: one row per patch listed in the fold CSVs.

    Besides the usual columns it has ``split`` (train for the training fold, test for the other),
    ``fold``, ``raw_label`` (the Multiclass_label id) and ``binary_label``. Patches whose PPL image,
    XPL twin or labels are missing, unreadable or listed twice are left out and named in
    ``problems`` (kinds ``missing_file``, ``unpaired``, ``no_ppl_mark``, ``missing_label``,
    ``bad_label``, ``unknown_label``, ``listed_twice`` and the image checks of any tree).

    Raises:
        LayoutError: a fold CSV is missing or has no ``Sec_patch`` column, or the layout names
            another fold than 1 or 2.
    """
    root = Path(root)
    train_fold = training_fold(layout)
    missing = [FOLD_FILE.format(fold=f) for f in FOLDS if not (root / FOLD_FILE.format(fold=f)).is_file()]
    if missing:
        raise LayoutError(
            f"{root}: LITHOS layout, but {', '.join(missing)} is missing; the dataset's two fold CSVs "
            f"({', '.join(FOLD_FILE.format(fold=f) for f in FOLDS)}) belong in the --data folder"
        )
    listed = {fold: _read_fold(root / FOLD_FILE.format(fold=fold)) for fold in FOLDS}
    base = _image_base(root, [p for paths in listed.values() for p in paths])
    domain = domain or DOMAIN
    pairs: dict[str, dict[str, _ImageFile]] = {}
    extras: dict[str, dict[str, int]] = {}
    problems: list[Problem] = []
    seen: set[str] = set()
    for fold, paths in listed.items():
        split = "train" if fold == train_fold else "test"
        for listed_path in paths:
            plane = (PurePosixPath(base) / listed_path).as_posix().removeprefix("./")
            sample_id = f"{domain}/{PurePosixPath(plane).with_suffix('')}"
            problem = _patch_problem(root, plane, fold, sample_id in seen)
            seen.add(sample_id)
            labels = _read_labels((root / plane).parent, plane) if problem is None else problem
            if isinstance(labels, Problem):
                problems.append(Problem(labels.severity, labels.kind, labels.path, labels.message, sample_id))
                if labels.kind == "listed_twice":  # in both folds or twice in one: leakage, drop both
                    pairs.pop(sample_id, None)
                continue
            binary, raw = labels
            label, stem = class_name(raw), PurePosixPath(plane).stem
            cross = plane.replace(PLANE_MARK, CROSS_MARK)
            pairs[sample_id] = {
                pol: _ImageFile(path, domain, split, pol, label, stem, domain, f"Multiclass_label {raw}")
                for pol, path in (("plane", plane), ("cross", cross))
            }
            extras[sample_id] = {"fold": fold, "raw_label": raw, "binary_label": binary}
    log.info(
        "LITHOS: raw Multiclass_label ids %s merged into %d, giving %d classes; fold %d trains, the "
        "other is the test split",
        ", ".join(map(str, MERGED_IDS)),
        next(iter(MERGED_IDS.values())),
        len(CLASSES),
        train_fold,
    )
    result = validate_pairs(root, layout, pairs, problems, workers=workers, progress=progress)
    extra = pd.DataFrame.from_dict(extras, orient="index").reindex(result.manifest["sample_id"])
    for column in ("fold", "raw_label", "binary_label"):
        result.manifest[column] = extra[column].to_numpy(dtype=int) if len(extra) else []
    return result
