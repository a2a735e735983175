"""Figures without pyplot: importing or plotting never chooses or changes matplotlib's backend.

Figures are ``matplotlib.figure.Figure`` objects that pyplot does not track (nothing to close, no
global state); ``savefig`` renders them with the file format's own canvas (Agg for PNG). A Jupyter
user's inline backend, or any other, stays as it was.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure


def subplots(
    nrows: int = 1,
    ncols: int = 1,
    *,
    figsize: tuple[float, float],
    layout: str | None = None,
    **kwargs: Any,
) -> tuple[Figure, Any]:
    """A new untracked figure and its axes, as ``pyplot.subplots`` returns them (``layout``, e.g.
    ``"constrained"``, as for ``Figure``; such figures are saved with ``tight=False``)."""
    figure = Figure(figsize=figsize, layout=layout)
    return figure, figure.subplots(nrows, ncols, **kwargs)


def save_figure(
    figure: Figure, path: str | Path, *, dpi: int = 110, tight: bool = True, **kwargs: Any
) -> Path:
    """Write ``figure`` to ``path`` (format from the suffix), after ``tight_layout`` unless told not to."""
    if tight:
        figure.tight_layout()
    figure.savefig(path, dpi=dpi, **kwargs)
    return Path(path)
