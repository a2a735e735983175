"""Build the dataset report: findings -> figures, report.md, report.json, image_statistics.csv."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from data_tools.atomic import atomic_write, atomic_write_text
from data_tools.report import figures
from data_tools.report.findings import Findings, ReportSettings, collect_findings
from data_tools.report.fixes import Fix, what_to_fix
from data_tools.report.inputs import DataSource, ReportInputError, open_data, read_split
from data_tools.report.markdown import render_markdown
from data_tools.report.statistics import STATISTICS

FIGURE_KEYS: tuple[str, ...] = (
    "counts",
    "statistics",
    "sizes",
    "nearest_distances",
    "duplicates",
    "outliers",
)
GALLERY_PAIRS = 8  # duplicate pairs shown as thumbnails at most
GALLERY_OUTLIERS = 16  # outlying images shown as thumbnails at most (worst rules first)


@dataclass(frozen=True)
class Report:
    """Where the report was written, and what it found."""

    directory: Path
    markdown: Path
    json: Path
    findings: Findings
    fixes: list[Fix]


def default_out(source: DataSource) -> Path:
    """``reports/<name>`` under the current folder: never inside (or beside) the data, which may be
    read-only or shared, and where a report inside a tree would be scanned as images next time."""
    return Path("reports") / source.name


def _check_out(out: Path, source: DataSource) -> None:
    if source.kind != "tree":
        return
    root, target = source.location.resolve(), out.resolve()
    if target == root or root in target.parents:
        raise ReportInputError(
            f"--out {out} is inside the image tree {source.location}: its PNG figures would be read as "
            "images by the next scan; choose a folder outside the tree"
        )


def _records(frame: pd.DataFrame) -> list[dict]:
    return json.loads(frame.to_json(orient="records")) if not frame.empty else []


def _write_figures(findings: Findings, directory: Path) -> dict[str, str]:
    """Every figure that has something to show; returns {key: path relative to the report}."""
    directory.mkdir(parents=True, exist_ok=True)
    for key in FIGURE_KEYS:  # a figure of an earlier run with nothing to show now must not linger
        (directory / f"{key}.png").unlink(missing_ok=True)
    images, root = findings.images, findings.source.dataset.root
    written: dict[str, Path] = {}
    if not findings.counts.empty:
        written["counts"] = figures.plot_counts(findings.counts, directory / "counts.png")
    if not images.empty:
        written["statistics"] = figures.plot_statistics(
            images, findings.outliers, directory / "statistics.png", whisker=findings.settings.iqr_k
        )
        written["sizes"] = figures.plot_sizes(images, directory / "sizes.png")
        written["nearest_distances"] = figures.plot_nearest_distances(
            images, findings.settings.near_distance, directory / "nearest_distances.png"
        )
    if not findings.duplicates.empty:
        rows = [
            [
                (r.path_a, f"{r.label_a} {Path(r.path_a).name}"),
                (
                    r.path_b,
                    f"{r.label_b} {Path(r.path_b).name}\n{r.kind}, {r.distance} bits {r.crosses}".rstrip(),
                ),
            ]
            for r in findings.duplicates.head(GALLERY_PAIRS).itertuples()
        ]
        written["duplicates"] = figures.plot_gallery(
            root, rows, directory / "duplicates.png", "Duplicate pairs"
        )
    if not findings.outliers.empty:
        first = findings.outliers.drop_duplicates("path").head(GALLERY_OUTLIERS)
        cells = [
            (
                r.path,
                f"{r.domain} {figures.POL_NAMES[r.pol]}: {r.statistic} {r.direction}\n{Path(r.path).name}",
            )
            for r in first.itertuples()
        ]
        rows = [cells[i : i + 4] for i in range(0, len(cells), 4)]
        written["outliers"] = figures.plot_gallery(root, rows, directory / "outliers.png", "Outlying images")
    return {key: path.relative_to(directory.parent).as_posix() for key, path in written.items()}


def _json_document(findings: Findings, fixes: list[Fix], figure_paths: dict[str, str]) -> dict:
    source, sizes = findings.source, findings.sizes
    return {
        "data": {
            "location": str(source.location),
            "kind": source.kind,
            "layout": source.layout,
            "pairs": len(source.dataset.manifest),
            "images_measured": len(findings.images),
            "non_image_files_skipped": source.skipped_non_images,
        },
        "settings": asdict(findings.settings),
        "split": asdict(findings.split) if findings.split else None,
        "counts": {d: {c: int(n) for c, n in row.items()} for d, row in findings.counts.iterrows()},
        "composition": _records(findings.composition),
        "sizes": {
            "formats": _records(sizes.formats),
            "distinct_sizes": sizes.distinct_sizes,
            "width_min_median_max": list(sizes.width),
            "height_min_median_max": list(sizes.height),
            "non_square": sizes.non_square,
            "large_files": _records(sizes.large),
            "small_images": _records(sizes.small),
        },
        "statistics": _records(findings.statistics),
        "outliers": _records(findings.outliers),
        "unjudged_groups": findings.unjudged_groups,
        "duplicates": _records(findings.duplicates),
        "problems": [asdict(p) for p in findings.problems],
        "what_to_fix": [asdict(f) for f in fixes],
        "files": {"report": "report.md", "image_statistics": "image_statistics.csv", "figures": figure_paths},
    }


def build_report(
    data: str | Path,
    out: str | Path | None = None,
    *,
    layout: str | None = None,
    domain: str | None = None,
    split: str | Path | None = None,
    settings: ReportSettings | None = None,
) -> Report:
    """Report on an image tree or manifest CSV: write ``report.md``, ``report.json``,
    ``image_statistics.csv`` and ``figures/*.png`` in ``out`` (default :func:`default_out`).

    Raises:
        FileNotFoundError: ``data`` or ``split`` does not exist.
        LayoutError, ManifestError: the tree's layout or the manifest CSV is not usable.
        ReportInputError: bad split file, ``--layout`` with a CSV, or ``out`` inside the tree.
    """
    settings = settings or ReportSettings()
    source = open_data(
        data, layout=layout, domain=domain, workers=settings.workers, progress=settings.progress
    )
    directory = Path(out) if out is not None else default_out(source)
    _check_out(directory, source)
    split_table = read_split(split) if split is not None else None
    findings = collect_findings(source, settings, split=split_table, split_path=str(split or ""))
    fixes = what_to_fix(findings)
    directory.mkdir(parents=True, exist_ok=True)
    figure_paths = _write_figures(findings, directory / "figures")
    statistics_columns = [c for c in findings.images.columns if c not in STATISTICS] + list(STATISTICS)
    atomic_write(
        directory / "image_statistics.csv",
        lambda tmp: findings.images[statistics_columns].to_csv(tmp, index=False),
    )
    document = _json_document(findings, fixes, figure_paths)
    json_path = atomic_write_text(directory / "report.json", json.dumps(document, indent=2) + "\n")
    markdown_path = atomic_write_text(directory / "report.md", render_markdown(findings, fixes, figure_paths))
    return Report(directory=directory, markdown=markdown_path, json=json_path, findings=findings, fixes=fixes)


def summary_lines(report: Report, top: int = 5) -> list[str]:
    """A few lines for the terminal, ending with the first ``top`` entries of the what-to-fix list."""
    findings = report.findings
    manifest = findings.source.dataset.manifest
    duplicates = findings.duplicates
    lines = [
        f"report: {report.markdown}  (raw findings: {report.json.name})",
        f"{len(manifest)} pairs, {manifest['domain'].nunique()} river(s), "
        f"{manifest['label'].nunique()} classes; "
        f"{len(findings.images)} images measured; "
        f"{sum(p.severity == 'error' for p in findings.problems)} file error(s)",
        f"duplicates: {(duplicates['kind'] == 'exact').sum()} exact, "
        f"{(duplicates['kind'] == 'near').sum()} near "
        f"image pairs, {(duplicates['crosses'] != '').sum()} across labels/rivers/splits; "
        f"outliers: {findings.outliers['path'].nunique()} images",
    ]
    if not report.fixes:
        return lines + ["what to fix: nothing found"]
    lines.append(f"what to fix (top {min(top, len(report.fixes))} of {len(report.fixes)}):")
    lines += [f"  {i}. [{fix.severity}] {fix.title}" for i, fix in enumerate(report.fixes[:top], start=1)]
    return lines
