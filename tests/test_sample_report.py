"""The HTML sample report: one page, embedded chart and thumbnails, not-computable indices shown as such."""

from __future__ import annotations

import numpy as np
import pandas as pd

from san.inference.sample_report import SampleSection, least_certain, render_report


def _section(grains: list) -> SampleSection:
    table = pd.DataFrame(
        {
            "mineral": ["Grt", "Zrn"],
            "count": [30, 70],
            "percent": [30.0, 70.0],
            "percent_low": [22.0, 60.0],
            "percent_high": [40.0, 78.0],
            "corrected_percent": [35.0, 65.0],
            "corrected_low": [25.0, 52.0],
            "corrected_high": [46.0, 75.0],
        }
    )
    indices = pd.DataFrame(
        [
            ("GZi", 35.0, 25.0, 46.0, ""),
            ("ATi", None, None, None, "not computable: the run does not know Ap"),
        ],
        columns=["index", "value", "low", "high", "note"],
    )
    return SampleSection("S<1>", table, indices, 100, len(grains), grains, truth={"Grt": 33.0, "Zrn": 67.0})


def test_the_page_embeds_chart_and_thumbnails_and_names_what_is_not_computable():
    rng = np.random.default_rng(0)
    predictions = pd.DataFrame(
        {
            "sample_id": ["a", "b", "c"],
            "plane_path": ["a.p", "b.p", "missing.p"],
            "cross_path": ["a.x", "b.x", "c.x"],
            "class_1": ["Grt", "Zrn", "Grt"],
            "probability_1": [0.41, 0.33, 0.2],
            "uncertain": [True, True, True],
        }
    )

    def load(path: str) -> np.ndarray:
        if path.startswith("missing"):
            raise OSError(path)
        return rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)

    grains = least_certain(predictions, load, limit=2)
    assert [g.sample_id for g in grains] == ["b"]  # the least certain is unreadable, the limit cuts "a"
    page = render_report([_section(grains)], "pacc", ["model: test"])
    assert page.startswith("<!doctype html>") and page.count("data:image/png;base64,") == 1
    assert page.count("data:image/jpeg;base64,") == 2  # PPL and XPL of the one grain
    assert "not computable: the run does not know Ap" in page
    assert "S&lt;1&gt;" in page and "<1>" not in page  # names are escaped
