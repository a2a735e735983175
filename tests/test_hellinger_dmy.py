"""The vectorised HDy gives QuaPy's own DMy estimate."""

import numpy as np
import pytest

pytest.importorskip("quapy")

from quapy.method.aggregative import DMy  # noqa: E402

from san.evaluation.hellinger_dmy import HellingerDMy  # noqa: E402
from san.evaluation.quantification import PosteriorPassthrough  # noqa: E402


def _posteriors(rng: np.random.Generator, labels: np.ndarray, n_classes: int) -> np.ndarray:
    logits = rng.normal(size=(len(labels), n_classes))
    logits[np.arange(len(labels)), labels] += 2.0
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("n_classes", [3, 12])
def test_same_estimate_as_quapy(n_classes: int) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, n_classes, 400)
    calibration = _posteriors(rng, labels, n_classes)
    classifier = PosteriorPassthrough(n_classes).fit(None)
    ours = HellingerDMy(classifier, fit_classifier=False, val_split=None, nbins=8, n_jobs=1)
    theirs = DMy(classifier, fit_classifier=False, val_split=None, nbins=8, divergence="HD", n_jobs=1)
    ours.fit(calibration, labels)
    theirs.fit(calibration, labels)
    for _ in range(5):
        sample_labels = rng.choice(n_classes, 150, p=rng.dirichlet(np.ones(n_classes)))
        sample = _posteriors(rng, sample_labels, n_classes)
        np.testing.assert_allclose(ours.predict(sample), theirs.predict(sample), atol=1e-6)
