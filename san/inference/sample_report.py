"""One HTML page per prediction run: per sample the assemblage chart (raw count beside the chosen
quantifier, both with 95% intervals), the provenance indices, and the uncertain grains as thumbnails
(PPL above XPL). Figures and thumbnails are embedded (base64 PNG/JPEG), so the page is one file.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from PIL import Image

from data_tools.inputs import UNLABELLED
from data_tools.plotting import subplots

THUMBNAIL_SIDE = 88
MAX_THUMBNAILS = 24


@dataclass(frozen=True)
class UncertainGrain:
    """A grain shown in the report: its id, top-1 class and probability, and both images."""

    sample_id: str
    predicted: str
    probability: float
    plane: np.ndarray
    cross: np.ndarray
    label: str = ""


@dataclass
class SampleSection:
    """What the page shows for one sample.

    ``table`` has the assemblage columns (``mineral, count, percent, percent_low, percent_high,
    corrected_percent, corrected_low, corrected_high``); ``indices`` rows ``index, value, low, high,
    note``; ``truth`` the known percentages of a labelled sample (or None)."""

    name: str
    table: pd.DataFrame
    indices: pd.DataFrame
    n_grains: int
    n_uncertain: int
    grains: list[UncertainGrain] = field(default_factory=list)
    truth: Mapping[str, float] | None = None
    error_note: str = ""


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=100)  # untracked figure: nothing to close
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def assemblage_figure(section: SampleSection, quantifier: str) -> str:
    """Base64 PNG: per mineral the raw count % and the ``quantifier`` estimate, with 95% intervals
    (and the known composition as a marker when there is one)."""
    table = section.table
    positions = np.arange(len(table))
    figure, axis = subplots(figsize=(max(6.0, 0.62 * len(table)), 3.4))
    series = [
        ("raw count (Wilson)", "percent", "percent_low", "percent_high", "tab:grey"),
        (f"{quantifier} (bootstrap)", "corrected_percent", "corrected_low", "corrected_high", "tab:blue"),
    ]
    for offset, (label, value, low, high, colour) in zip((-0.2, 0.2), series, strict=True):
        values = table[value].to_numpy(dtype=float)
        if np.isnan(values).all():
            continue
        axis.bar(positions + offset, values, width=0.4, color=colour, label=label)
        # Lines, not yerr: a bootstrap interval need not contain its point estimate.
        axis.vlines(positions + offset, table[low], table[high], color="black", linewidth=0.9)
    if section.truth is not None:
        truth = [section.truth.get(m, 0.0) for m in table["mineral"]]
        axis.scatter(positions, truth, marker="_", s=260, color="tab:red", zorder=3, label="labels")
    axis.set_xticks(positions, table["mineral"], rotation=45)
    axis.set(ylabel="% of grains", title=f"sample {section.name} ({section.n_grains} grains)")
    axis.legend(fontsize=8)
    axis.grid(axis="y", alpha=0.3)
    return _png(figure)


def _thumbnail(image: np.ndarray) -> str:
    picture = Image.fromarray(np.asarray(image, dtype=np.uint8))
    picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=85)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: object) -> str:
    return "" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.1f}"


def _indices_html(indices: pd.DataFrame) -> str:
    rows = []
    for row in indices.itertuples():
        if row.value is None or (isinstance(row.value, float) and np.isnan(row.value)):
            cells = f"<td colspan=2 class=na>{html.escape(row.note or 'not computable')}</td>"
        else:
            cells = f"<td>{row.value:.1f}</td><td>{_number(row.low)}–{_number(row.high)}</td>"
        rows.append(f"<tr><th>{html.escape(row.index)}</th>{cells}</tr>")
    return "<table><tr><th>index</th><th>value</th><th>95% interval</th></tr>" + "".join(rows) + "</table>"


def _assemblage_html(table: pd.DataFrame, quantifier: str) -> str:
    head = (
        "<tr><th>mineral</th><th>count</th><th>raw %</th><th>95%</th>"
        f"<th>{html.escape(quantifier)} %</th><th>95%</th></tr>"
    )
    rows = [
        f"<tr><th>{html.escape(str(r.mineral))}</th><td>{r.count}</td><td>{r.percent:.1f}</td>"
        f"<td>{r.percent_low:.1f}–{r.percent_high:.1f}</td><td>{_number(r.corrected_percent)}</td>"
        f"<td>{_number(r.corrected_low)}–{_number(r.corrected_high)}</td></tr>"
        for r in table.itertuples()
    ]
    return "<table>" + head + "".join(rows) + "</table>"


def _grains_html(grains: Sequence[UncertainGrain], n_uncertain: int) -> str:
    if not grains:
        return "<p>No grain below the uncertainty threshold.</p>"
    tiles = [
        f"<figure><img src='data:image/jpeg;base64,{_thumbnail(g.plane)}' alt='PPL'>"
        f"<img src='data:image/jpeg;base64,{_thumbnail(g.cross)}' alt='XPL'>"
        f"<figcaption title='{html.escape(g.sample_id)}'>{html.escape(g.sample_id.rsplit('/', 1)[-1])}<br>"
        f"{html.escape(g.predicted)} {g.probability:.2f}"
        + (f"<br>label {html.escape(g.label)}" if g.label else "")
        + "</figcaption></figure>"
        for g in grains
    ]
    shown = f"the {len(grains)} least certain of {n_uncertain}" if len(grains) < n_uncertain else "all"
    return f"<p>Uncertain grains ({shown}; PPL above XPL, top-1 class and probability):</p>" + (
        "<div class=grains>" + "".join(tiles) + "</div>"
    )


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.4em 0 1em;font-size:.9em}
td,th{border:1px solid #ccc;padding:2px 7px;text-align:right}
th{background:#f4f4f4;text-align:left}
td.na{color:#777;text-align:left;font-style:italic}
.grains{display:flex;flex-wrap:wrap;gap:6px}
figure{margin:0;width:92px;text-align:center;font-size:.72em;overflow-wrap:anywhere}
figure img{display:block;width:88px;height:88px;object-fit:cover;border:1px solid #999}
.row{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
section{border-top:2px solid #ddd;margin-top:1.5em}
"""


def render_report(
    sections: Sequence[SampleSection], quantifier: str, header: Sequence[str], title: str = "Assemblage"
) -> str:
    """The whole page as a string: header lines, then one section per sample."""
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1><ul>",
        *[f"<li>{html.escape(line)}</li>" for line in header],
        "</ul>",
    ]
    for section in sections:
        chart = assemblage_figure(section, quantifier)
        parts += [
            f"<section><h2>Sample {html.escape(section.name)}</h2>",
            f"<p>{section.n_grains} grains classified, {section.n_uncertain} uncertain."
            + (f" {html.escape(section.error_note)}" if section.error_note else "")
            + "</p>",
            f"<img alt='assemblage chart' src='data:image/png;base64,{chart}'>",
            "<div class=row><div><h3>Assemblage</h3>",
            _assemblage_html(section.table, quantifier),
            "</div><div><h3>Provenance indices (%)</h3>",
            _indices_html(section.indices),
            "</div></div>",
            _grains_html(section.grains, section.n_uncertain),
            "</section>",
        ]
    parts.append("</body></html>")
    return "\n".join(parts)


def least_certain(
    predictions: pd.DataFrame, load: Callable[[str], np.ndarray], limit: int = MAX_THUMBNAILS
) -> list[UncertainGrain]:
    """The ``limit`` uncertain rows of ``predictions`` with the lowest top-1 probability, their images
    read by ``load(path)`` (an unreadable file is skipped)."""
    rows = predictions[predictions["uncertain"]].sort_values("probability_1").head(limit)
    grains = []
    for row in rows.itertuples():
        try:
            plane, cross = load(row.plane_path), load(row.cross_path)
        except (OSError, ValueError):
            continue
        label = str(getattr(row, "label", "") or "")
        given = "" if label == UNLABELLED else label
        grains.append(
            UncertainGrain(
                str(row.sample_id), str(row.class_1), float(row.probability_1), plane, cross, given
            )
        )
    return grains
