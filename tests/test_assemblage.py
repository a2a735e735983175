"""Assemblage table basics: Wilson intervals and the composition error (the quantifiers are tested in
test_quantification.py and test_quantified_assemblage.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from san.inference.assemblage import composition_error, wilson_interval


def test_wilson_interval_matches_reference_values():
    low, high = wilson_interval(np.array([0, 5, 10]), 10)
    # Reference values of the 95% Wilson score interval for 0/10, 5/10 and 10/10.
    np.testing.assert_allclose(low, [0.0, 0.2366, 0.7225], atol=1e-4)
    np.testing.assert_allclose(high, [0.2775, 0.7634, 1.0], atol=1e-4)
    with pytest.raises(ValueError, match="counts"):
        wilson_interval(np.array([11]), 10)


def test_composition_error_is_the_mean_absolute_error_in_points():
    table = pd.DataFrame(
        {
            "mineral": ["Ap", "Zrn", "Grt"],
            "percent": [50.0, 30.0, 20.0],
            "corrected_percent": [40.0, 40.0, 20.0],
        }
    )
    error = composition_error(table, {"Ap": 40.0, "Zrn": 40.0})  # Grt absent from the truth: 0 %
    assert error["raw_mae_pp"] == pytest.approx((10 + 10 + 20) / 3)
    assert error["corrected_mae_pp"] == pytest.approx(20 / 3)
