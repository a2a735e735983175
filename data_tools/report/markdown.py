"""Render the findings as a Markdown report (figures linked relatively)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from data_tools.report.duplicates import HASH_BITS
from data_tools.report.findings import Findings
from data_tools.report.fixes import Fix
from data_tools.report.statistics import STATISTICS

TABLE_ROWS = 50  # longer tables are cut here; report.json holds them whole
FIX_ITEMS = 10


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(frame: pd.DataFrame, *, index: bool = False, limit: int | None = TABLE_ROWS) -> str:
    """A pipe table of the frame (numbers right-aligned); rows past ``limit`` are counted, not shown."""
    if index:
        frame = frame.reset_index()
    if frame.empty:
        return "_(none)_"
    shown = frame if limit is None else frame.head(limit)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = [
        "| " + " | ".join(str(c) for c in frame.columns) + " |",
        "|" + "|".join("---:" if n else ":---" for n in numeric) + "|",
    ]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in shown.itertuples(index=False)]
    if len(frame) > len(shown):
        lines.append(f"\n_... and {len(frame) - len(shown)} more rows in report.json._")
    return "\n".join(lines)


def _header(findings: Findings) -> list[str]:
    source, settings, manifest = findings.source, findings.settings, findings.source.dataset.manifest
    errors = sum(p.severity == "error" for p in findings.problems)
    warnings = len(findings.problems) - errors
    kind = f"image tree, layout `{source.layout}`" if source.kind == "tree" else "manifest CSV"
    lines = [
        f"# Dataset report: {source.name}",
        "",
        f"- data: `{source.location}` ({kind})",
        f"- {len(manifest)} pairs ({len(findings.images)} images measured), "
        f"{manifest['domain'].nunique()} river(s), {manifest['label'].nunique()} classes; "
        f"{errors} error(s) and {warnings} warning(s) about files; "
        f"{source.skipped_non_images} non-image file(s) skipped",
    ]
    if findings.split is not None:
        lines.append(
            f"- split: `{findings.split.path}` ({findings.split.not_in_split} pairs of the data are not in "
            "it, "
            f"{findings.split.not_in_data} of its ids are not in the data)"
        )
    lines += [
        f"- settings: statistics and hashes at {settings.size} px ({settings.crop} crop); near duplicates "
        f"when both images are within {settings.near_distance} of {HASH_BITS} pHash bits"
        + (", rotated and mirrored copies included" if settings.dihedral else "")
        + f"; outliers by the IQR rule (k = {settings.iqr_k:g}) within each river x polarization x class "
        f"(a class with under {settings.min_group} images there is judged against the whole river x "
        "polarization)",
        "- raw findings: [report.json](report.json); per-image statistics: "
        "[image_statistics.csv](image_statistics.csv)",
        "- the report closes with [what to fix](#what-to-fix), worst first",
    ]
    return lines


def _figure(figures: Mapping[str, str], key: str, alt: str) -> list[str]:
    return ["", f"![{alt}]({figures[key]})", ""] if key in figures else []


def _composition(findings: Findings, figures: Mapping[str, str]) -> list[str]:
    counts = findings.counts.copy()
    if not counts.empty:
        counts["total"] = counts.sum(axis=1)
    return [
        "## 1. Pairs per river and class",
        *_figure(figures, "counts", "pairs per river and class"),
        markdown_table(counts.rename_axis("river"), index=True),
        "",
        "Imbalance ratio = largest / smallest class present in the river; missing = classes found in "
        f"another river but not in this one; tiny = fewer than {findings.settings.tiny_class} pairs.",
        "",
        markdown_table(findings.composition),
    ]


def _sizes(findings: Findings, figures: Mapping[str, str]) -> list[str]:
    sizes = findings.sizes
    return [
        "## 2. Image sizes and formats",
        "",
        markdown_table(sizes.formats),
        "",
        f"- {sizes.distinct_sizes} distinct sizes; "
        f"width {sizes.width[0]} / {sizes.width[1]} / {sizes.width[2]} px "
        f"and height {sizes.height[0]} / {sizes.height[1]} / {sizes.height[2]} px (min / median / max)",
        f"- {sizes.non_square} images lose over 10% of their pixels to a centre square crop",
        f"- files over {sizes.large_file_mb:g} MB: {len(sizes.large)}; images with a short side under "
        f"{sizes.small_side} px: {len(sizes.small)}",
        *_figure(figures, "sizes", "image sizes"),
        *(["### Large files", "", markdown_table(sizes.large), ""] if not sizes.large.empty else []),
        *(["### Small images", "", markdown_table(sizes.small), ""] if not sizes.small.empty else []),
    ]


def _statistics(findings: Findings, figures: Mapping[str, str]) -> list[str]:
    summary = findings.statistics
    if summary.empty:
        return ["## 3. Acquisition statistics per river and polarization", "", "_(no readable images)_"]
    summary = summary.assign(
        text=[
            f"{_cell(m)} [{_cell(a)}, {_cell(b)}]" for m, a, b in summary[["median", "q1", "q3"]].to_numpy()
        ]
    )
    wide = summary.pivot(index=["domain", "pol"], columns="statistic", values="text")[list(STATISTICS)]
    lines = [
        "## 3. Acquisition statistics per river and polarization",
        "",
        "Measured on the prepared image; a shift between rivers (or between operators) in one of these is an "
        "acquisition shift the model may learn instead of the minerals. Median [Q1, Q3]:",
        "",
        markdown_table(wide, index=True),
        *_figure(figures, "statistics", "statistics per river and polarization"),
        "### Outliers (IQR rule)",
        "",
        markdown_table(findings.outliers[["statistic", "direction", "value", "fence", "group", "path"]]),
    ]
    if findings.unjudged_groups:
        lines += ["", "Too few images to judge: " + ", ".join(findings.unjudged_groups) + "."]
    return lines + _figure(figures, "outliers", "outlier thumbnails")


def _duplicates(findings: Findings, figures: Mapping[str, str]) -> list[str]:
    table = findings.duplicates.drop(columns=[] if findings.split else ["split_a", "split_b"])
    leaked = findings.problems_of("leakage")
    return [
        "## 4. Duplicates and leakage",
        "",
        "exact = byte-identical files; near = two pairs whose PPL images and whose XPL images both have "
        "perceptual hashes within the threshold (re-saved, resized, slightly edited, rotated or mirrored "
        "copies of a pair): one row per polarization. PPL is only compared with PPL, XPL with XPL. "
        "`crosses` names what differs between the two samples: a duplicate across labels, rivers or splits "
        "is leakage.",
        *_figure(figures, "nearest_distances", "nearest-neighbour distances"),
        markdown_table(table),
        *_figure(figures, "duplicates", "duplicate thumbnails"),
        *(
            [
                "",
                "Byte-identical across labels or rivers (left out of the manifest):",
                "",
                *(f"- `{p.path}`: {p.message}" for p in leaked),
            ]
            if leaked
            else []
        ),
    ]


def _problems(findings: Findings) -> list[str]:
    frame = pd.DataFrame(
        [(p.severity, p.kind, p.path, p.message) for p in findings.problems],
        columns=["severity", "kind", "path", "message"],
    )
    return ["## 5. Unreadable, unpaired and other file problems", "", markdown_table(frame, limit=100)]


def _fixes(fixes: list[Fix]) -> list[str]:
    lines = ["## What to fix", ""]
    if not fixes:
        return lines + ["Nothing found."]
    for number, fix in enumerate(fixes, start=1):
        lines.append(f"{number}. **[{fix.severity}] {fix.title}.** {fix.action}.")
        lines += [f"   - {item}" for item in fix.items[:FIX_ITEMS]]
        if len(fix.items) > FIX_ITEMS:
            lines.append(f"   - ... and {len(fix.items) - FIX_ITEMS} more (report.json)")
    return lines


def render_markdown(findings: Findings, fixes: list[Fix], figures: Mapping[str, str]) -> str:
    """The whole report; ``figures`` maps a figure key (counts, statistics, sizes, nearest_distances,
    duplicates, outliers) to its path relative to the report."""
    sections = [
        _header(findings),
        _composition(findings, figures),
        _sizes(findings, figures),
        _statistics(findings, figures),
        _duplicates(findings, figures),
        _problems(findings),
        _fixes(fixes),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"
