"""Build and validate the manifest: one row per PPL/XPL pair of an image tree.

Every problem is reported with its file and reason; rows with errors are left out of the
manifest but never silently: they are listed in ``ManifestResult.problems``.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import defaultdict
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from data_tools.class_map import CLASS_MAP_FORMAT, class_for_folder
from data_tools.images import ImageDecodeError, decode_rgb, is_image_file
from data_tools.layout import Layout, LayoutError, compile_layout, detect_layout
from data_tools.names import (
    CANONICAL_CLASSES,
    CANONICAL_RIVERS,
    canonical_class,
    canonical_domain,
    canonical_polarization,
    canonical_split,
    fold_name,
    merged_names,
    ordered_classes,
    ordered_domains,
)

Severity = Literal["error", "warning"]
DOMAIN_OPTION = "(--domain)"  # the domain folder of a tree without a domain level


class ManifestError(ValueError):
    """A manifest is missing columns, has duplicate ids or bad cells, or its tree has problems."""


class FolderMergeError(ManifestError):
    """Distinct label folder names would become one class without a class map saying so."""


MANIFEST_COLUMNS: tuple[str, ...] = (
    "sample_id",
    "domain",
    "label",
    "plane_path",
    "cross_path",
    "plane_sha1",
    "cross_sha1",
    "plane_width",
    "plane_height",
    "cross_width",
    "cross_height",
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a tree: the file (relative to the root), a kind and a readable reason."""

    severity: Severity
    kind: str
    path: str
    message: str
    sample_id: str = ""


@dataclass
class ManifestResult:
    """The manifest of the readable pairs, the problems found, and what was skipped."""

    root: Path
    layout: str
    manifest: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)
    skipped_non_images: int = 0
    folder_names: pd.DataFrame = field(default_factory=pd.DataFrame)  # see folder_table

    @property
    def errors(self) -> list[Problem]:
        """Problems that drop a pair from the manifest."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems that are reported but keep the pair."""
        return [p for p in self.problems if p.severity == "warning"]

    def problems_frame(self) -> pd.DataFrame:
        """The problems as a DataFrame (columns severity, kind, path, sample_id, message)."""
        columns = ["severity", "kind", "path", "sample_id", "message"]
        return pd.DataFrame([[getattr(p, c) for c in columns] for p in self.problems], columns=columns)


@dataclass(frozen=True)
class _ImageFile:
    relative_path: str
    domain: str
    split: str | None
    pol: str
    label: str
    stem: str
    domain_folder: str  # the folder names as found, for the mapping table
    label_folder: str


@dataclass(frozen=True)
class _ImageCheck:
    sha1: str = ""
    width: int = 0
    height: int = 0
    error: str = ""


def _check_image(path: Path) -> _ImageCheck:
    """Read the bytes once: hash them and decode them exactly as training will (catches truncated
    files and float images with NaN or infinite pixels)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return _ImageCheck(error=f"cannot read file ({error.strerror or error})")
    try:
        decode_rgb(data)
        with Image.open(io.BytesIO(data)) as image:  # the stored size is the file's, before EXIF rotation
            width, height = image.size
    except ImageDecodeError as error:
        return _ImageCheck(error=str(error))
    return _ImageCheck(sha1=hashlib.sha1(data).hexdigest(), width=width, height=height)


def list_image_files(root: Path) -> tuple[list[str], int, list[Problem]]:
    """Image paths under root (relative, POSIX, sorted), the number of non-image files skipped, and a
    warning for every folder symlink not followed because it leads back into its own path (a loop).

    Hidden files and folders are skipped; folder symlinks are followed (a river folder may be a link).
    """
    images: list[str] = []
    skipped = 0
    loops: list[Problem] = []
    # Real paths of the folders on the walk path down to each folder still to visit.
    chains: dict[str, frozenset[str]] = {str(root): frozenset({os.path.realpath(root)})}
    for directory, folders, files in os.walk(str(root), followlinks=True):
        chain = chains.pop(directory)
        kept = []
        for folder in sorted(f for f in folders if not f.startswith(".")):
            path = os.path.join(directory, folder)
            real = os.path.realpath(path)
            if real in chain:
                relative = Path(path).relative_to(root).as_posix()
                loops.append(
                    Problem(
                        "warning",
                        "symlink_loop",
                        relative,
                        f"folder link to {real}, which contains it: not followed (its files are listed once)",
                    )
                )
                continue
            chains[path] = chain | {real}
            kept.append(folder)
        folders[:] = kept
        for name in files:
            if name.startswith("."):
                continue
            relative = Path(directory, name).relative_to(root).as_posix()
            if is_image_file(name):
                images.append(relative)
            else:
                skipped += 1
    return sorted(images), skipped, loops


def _parse_paths(
    paths: list[str], layout: Layout, domain: str | None, class_map: Mapping[str, str] | None
) -> tuple[list[_ImageFile], list[Problem]]:
    """Files that fit the layout, with canonical names; ``class_map`` None keeps label folder names."""
    files: list[_ImageFile] = []
    problems: list[Problem] = []
    for relative in paths:
        fields = layout.match(relative)
        if fields is None:
            problems.append(
                Problem(
                    "error", "layout_mismatch", relative, f"path does not fit the layout {layout.template!r}"
                )
            )
            continue
        pol = canonical_polarization(fields["pol"])
        if pol is None:
            problems.append(
                Problem(
                    "error",
                    "unknown_polarization",
                    relative,
                    f"unknown polarization folder {fields['pol']!r}; expected a plane "
                    "alias (plane, ppl, single, parallel, paralelos) or a cross alias "
                    "(cross, xpl, crossed, cross_1, cruzados)",
                )
            )
            continue
        split = None
        if "split" in fields:
            split = canonical_split(fields["split"])
            if split is None:
                problems.append(
                    Problem(
                        "error",
                        "unknown_split",
                        relative,
                        f"unknown split folder {fields['split']!r}; expected train, val or test",
                    )
                )
                continue
        label_folder = fields.get("label", "unlabelled")
        files.append(
            _ImageFile(
                relative_path=relative,
                domain=canonical_domain(fields["domain"]) if "domain" in fields else str(domain),
                split=split,
                pol=pol,
                label=label_folder.strip()
                if class_map is None
                else class_for_folder(label_folder, class_map) or canonical_class(label_folder),
                stem=Path(fields["name"]).stem,
                domain_folder=fields.get("domain", DOMAIN_OPTION),
                label_folder=label_folder,
            )
        )
    return files, problems


def make_sample_id(domain: str, split: str | None, label: str, stem: str) -> str:
    """The id of a pair: ``domain/split/label/stem``, without the split when there is none."""
    return "/".join(part for part in (domain, split, label, stem) if part)


def _pair_files(files: list[_ImageFile]) -> tuple[dict[str, dict[str, _ImageFile]], list[Problem]]:
    """Group files into pairs by (domain, split, label, file stem)."""
    groups: dict[str, dict[str, list[_ImageFile]]] = defaultdict(lambda: defaultdict(list))
    for item in files:
        groups[make_sample_id(item.domain, item.split, item.label, item.stem)][item.pol].append(item)
    pairs: dict[str, dict[str, _ImageFile]] = {}
    problems: list[Problem] = []
    for sample_id, by_pol in groups.items():
        ambiguous = [items for items in by_pol.values() if len(items) > 1]
        if ambiguous:
            for items in ambiguous:
                names = ", ".join(i.relative_path for i in items)
                for item in items:
                    problems.append(
                        Problem(
                            "error",
                            "ambiguous_pair",
                            item.relative_path,
                            f"several {item.pol} images share the name stem {item.stem!r}: {names}",
                            sample_id,
                        )
                    )
            continue
        if set(by_pol) != {"plane", "cross"}:
            (present,) = by_pol
            (item,) = by_pol[present]
            missing = "cross (XPL)" if present == "plane" else "plane (PPL)"
            problems.append(
                Problem(
                    "error",
                    "unpaired",
                    item.relative_path,
                    f"no {missing} partner with the same name",
                    sample_id,
                )
            )
            continue
        pairs[sample_id] = {pol: items[0] for pol, items in by_pol.items()}
    return pairs, problems


def _leakage_problems(rows: pd.DataFrame) -> tuple[set[str], list[Problem]]:
    """Byte-identical images under different labels or domains (errors) or within one (warnings)."""
    long = pd.concat(
        [
            rows[["sample_id", "domain", "label", f"{pol}_sha1", f"{pol}_path"]].set_axis(
                ["sample_id", "domain", "label", "sha1", "path"], axis=1
            )
            for pol in ("plane", "cross")
        ]
    )
    bad: set[str] = set()
    problems: list[Problem] = []
    for _, group in long[long.duplicated("sha1", keep=False)].groupby("sha1", sort=True):
        crosses = group["label"].nunique() > 1 or group["domain"].nunique() > 1
        others = ", ".join(group["path"])
        for record in group.itertuples():
            if crosses:
                bad.add(record.sample_id)
                problems.append(
                    Problem(
                        "error",
                        "leakage",
                        record.path,
                        f"byte-identical to an image under another label or domain: {others}",
                        record.sample_id,
                    )
                )
            else:
                problems.append(
                    Problem(
                        "warning",
                        "duplicate",
                        record.path,
                        f"byte-identical images: {others}",
                        record.sample_id,
                    )
                )
    return bad, problems


def _how(folder: str, name: str, canonical: tuple[str, ...], mapped: bool) -> str:
    """How a folder name became its name: class map, canonical spelling, alias, or kept as given."""
    if mapped:
        return "class map"
    if fold_name(folder) == fold_name(name):
        return "canonical" if name in canonical else "kept as given"
    return "alias"


def folder_table(files: list[_ImageFile], class_map: Mapping[str, str]) -> pd.DataFrame:
    """Every domain and label folder name found, what it became and how, and its image count.

    Columns: kind (``domain`` or ``class``), folder, name, how (``canonical``, ``alias``,
    ``kept as given``, ``class map``, or ``--domain`` for a tree without a domain level), images.
    """
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for item in files:
        counts[("domain", item.domain_folder, item.domain)] += 1
        counts[("class", item.label_folder, item.label)] += 1
    rows = []
    for (kind, folder, name), images in counts.items():
        if folder == DOMAIN_OPTION:
            how = "--domain"
        elif kind == "domain":
            how = _how(folder, name, CANONICAL_RIVERS, False)
        else:
            how = _how(folder, name, CANONICAL_CLASSES, class_for_folder(folder, class_map) is not None)
        rows.append({"kind": kind, "folder": folder, "name": name, "how": how, "images": images})
    table = pd.DataFrame(rows, columns=["kind", "folder", "name", "how", "images"])
    if table.empty:
        return table
    rank = {
        **{n: i for i, n in enumerate(ordered_domains(table.loc[table["kind"] == "domain", "name"]))},
        **{n: i for i, n in enumerate(ordered_classes(table.loc[table["kind"] == "class", "name"]))},
    }
    order = table.assign(k=table["kind"] == "class", r=table["name"].map(rank)).sort_values(
        ["k", "r", "folder"]
    )
    return order[table.columns].reset_index(drop=True)


def _merged(table: pd.DataFrame, kind: str) -> dict[str, list[str]]:
    """Names that two or more distinct folder names become, unless the class map names them all."""
    rows = table[table["kind"] == kind]
    mapped = set(rows.loc[rows["how"] == "class map", "folder"])
    merged = merged_names(zip(rows["folder"], rows["name"], strict=True))
    return {name: folders for name, folders in merged.items() if not set(folders) <= mapped}


def _check_merges(root: Path, table: pd.DataFrame) -> list[Problem]:
    """FolderMergeError for label folders merged without a class map; warnings for merged river folders."""
    if merged := _merged(table, "class"):
        described = "; ".join(f"{', '.join(folders)} -> {name}" for name, folders in merged.items())
        example = "\n".join(f"  {folder}: {folder}" for folders in merged.values() for folder in folders)
        raise FolderMergeError(
            f"{root}: distinct label folders would become one class: {described}. They are never "
            "merged without being told (Spn is spinel in the published dataset but sphene/titanite in "
            "other lists; Cpx and Opx are different pyroxenes). Pass build_manifest.py --class-map FILE "
            "(then use the manifest CSV it writes) saying what each "
            f"folder is ({CLASS_MAP_FORMAT}); e.g. to keep them apart:\n{example}"
        )
    return [
        Problem(
            "warning",
            "merged_folders",
            ", ".join(folders),
            f"river folders {', '.join(folders)} are all taken as domain {name!r}",
        )
        for name, folders in _merged(table, "domain").items()
    ]


def _resolve_layout(paths: list[str], layout: str | None, domain: str | None) -> Layout:
    if layout:
        compiled = compile_layout(layout)
        if "domain" in compiled.fields and domain:
            raise LayoutError(
                f"layout {layout!r} has a {{domain}} field; --domain is only for trees without one"
            )
        if "domain" not in compiled.fields and not domain:
            raise LayoutError(
                f"layout {layout!r} has no {{domain}} field: name the domain with --domain NAME"
            )
        return compiled
    return detect_layout(paths, has_domain_level=domain is None)


def build_manifest(
    root: str | Path,
    layout: str | None = None,
    domain: str | None = None,
    *,
    class_map: Mapping[str, str] | None = None,
    keep_folder_names: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ManifestResult:
    """Scan an image tree, pair PPL with XPL images, and validate every file.

    Args:
        root: the tree's top folder.
        layout: a template such as ``{label}Data/{pol}/{name}``, or ``lithos`` / ``lithos:2`` for the
            LITHOS dataset (:mod:`data_tools.lithos`); None detects LITHOS's fold CSVs, then
            ``{domain}/{pol}/{label}/{name}`` or ``{domain}/{split}/{pol}/{label}/{name}``.
        domain: the domain name of a tree with no domain level.
        class_map: folder name -> class for label folders (see :mod:`data_tools.class_map`), over the
            built-in aliases; the only way two distinct folder names may become one class.
        keep_folder_names: labels are the label folder names as written (no aliases, no merges), for
            tools that only copy files.
        workers: threads used to decode and hash the images (default: CPU count).
        progress: show a progress bar.

    Returns:
        ManifestResult whose ``manifest`` holds the valid pairs (paths relative to root), sorted by
        domain, label and sample_id, and whose ``problems`` name every bad file.

    Raises:
        FileNotFoundError: root is not a folder.
        LayoutError: the template is malformed or no default layout fits the tree.
        FolderMergeError: two distinct label folder names (``Spl`` and ``Spn``, ``Cpx`` and ``Opx``)
            would become one class and ``class_map`` does not say so for each of them.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {str(root)!r} is not a folder")
    from data_tools import lithos  # imports this module

    if lithos.is_lithos_layout(layout) or (layout is None and lithos.is_lithos_tree(root)):
        return lithos.build_lithos_manifest(
            root, layout or lithos.LITHOS_LAYOUT, domain, workers=workers, progress=progress
        )
    paths, skipped, problems = list_image_files(root)
    compiled = _resolve_layout(paths, layout, domain)
    class_map = dict(class_map or {})
    files, path_problems = _parse_paths(paths, compiled, domain, None if keep_folder_names else class_map)
    folders = folder_table(files, class_map)
    problems += path_problems + _check_merges(root, folders)
    pairs, pair_problems = _pair_files(files)
    result = validate_pairs(
        root, compiled.template, pairs, problems + pair_problems, skipped, workers=workers, progress=progress
    )
    result.folder_names = folders
    return result


def validate_pairs(
    root: Path,
    layout: str,
    pairs: dict[str, dict[str, _ImageFile]],
    problems: list[Problem],
    skipped: int = 0,
    *,
    workers: int | None = None,
    progress: bool = True,
) -> ManifestResult:
    """Decode and hash every image of ``pairs`` (sample id -> {'plane': file, 'cross': file}), report
    unreadable files, size mismatches and leakage, and return the sorted manifest of the good pairs
    after ``problems`` found so far (a tree reader's pairing problems)."""
    to_check = sorted({item.relative_path for pair in pairs.values() for item in pair.values()})
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        results = pool.map(lambda p: _check_image(root / p), to_check)
        bar = tqdm(results, total=len(to_check), desc="checking images", unit="img", disable=not progress)
        checks = dict(zip(to_check, bar, strict=True))

    records = []
    for sample_id, pair in pairs.items():
        plane, cross = pair["plane"], pair["cross"]
        failed = False
        for item in (plane, cross):
            check = checks[item.relative_path]
            if check.error:
                problems.append(Problem("error", "unreadable", item.relative_path, check.error, sample_id))
                failed = True
        if failed:
            continue
        plane_check, cross_check = checks[plane.relative_path], checks[cross.relative_path]
        if (plane_check.width, plane_check.height) != (cross_check.width, cross_check.height):
            problems.append(
                Problem(
                    "warning",
                    "size_mismatch",
                    plane.relative_path,
                    f"PPL is {plane_check.width}x{plane_check.height} but its XPL partner "
                    f"{cross.relative_path} is {cross_check.width}x{cross_check.height}",
                    sample_id,
                )
            )
        record = {
            "sample_id": sample_id,
            "domain": plane.domain,
            "label": plane.label,
            "plane_path": plane.relative_path,
            "cross_path": cross.relative_path,
            "plane_sha1": plane_check.sha1,
            "cross_sha1": cross_check.sha1,
            "plane_width": plane_check.width,
            "plane_height": plane_check.height,
            "cross_width": cross_check.width,
            "cross_height": cross_check.height,
        }
        if plane.split is not None:
            record["split"] = plane.split
        records.append(record)

    columns = list(MANIFEST_COLUMNS) + (["split"] if any("split" in r for r in records) else [])
    manifest = pd.DataFrame.from_records(records, columns=columns)
    leaked, leak_problems = _leakage_problems(manifest)
    problems += leak_problems
    manifest = sort_manifest(manifest[~manifest["sample_id"].isin(leaked)])
    return ManifestResult(
        root=root, layout=layout, manifest=manifest, problems=problems, skipped_non_images=skipped
    )


def sort_manifest(manifest: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered by domain and class (canonical order first), then sample_id; index reset."""
    domain_rank = {d: i for i, d in enumerate(ordered_domains(manifest["domain"]))}
    label_rank = {c: i for i, c in enumerate(ordered_classes(manifest["label"]))}
    key = pd.DataFrame(
        {
            "d": manifest["domain"].map(domain_rank),
            "l": manifest["label"].map(label_rank),
            "s": manifest["sample_id"],
        }
    )
    order = key.sort_values(["d", "l", "s"], kind="stable").index
    return manifest.loc[order].reset_index(drop=True)


def count_table(manifest: pd.DataFrame) -> pd.DataFrame:
    """Pairs per domain (rows) x class (columns), canonical order, with totals."""
    table = pd.crosstab(manifest["domain"], manifest["label"], margins=True, margins_name="total")
    rows = ordered_domains(manifest["domain"]) + ["total"]
    columns = ordered_classes(manifest["label"]) + ["total"]
    return table.reindex(index=rows, columns=columns, fill_value=0)


def manifest_hash(manifest: pd.DataFrame) -> str:
    """A short content hash of the manifest's pairs (ids, labels, domains and, when present, file hashes)."""
    key_columns = [
        c for c in ("sample_id", "domain", "label", "plane_sha1", "cross_sha1") if c in manifest.columns
    ]
    text = manifest[key_columns].sort_values("sample_id").to_csv(index=False)
    return hashlib.sha1(text.encode()).hexdigest()[:16]
