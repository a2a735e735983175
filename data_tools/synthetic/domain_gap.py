"""Is the synthetic set a fair stand-in? Channel statistics and the domain gap of a simple model.

The model is deliberately plain: per-channel colour histograms of the PPL and XPL images,
standardised, into an RBF support-vector machine with fixed hyper-parameters (nothing is
tuned, so no split, and certainly not the target river, influences a choice). Splits come
from ``data_tools.splits``: the mixed protocol trains on every river's training part
(``train`` + ``val``) and tests on the pooled ``test`` parts; leave-one-river-out trains on
the other rivers' training parts and tests on every pair of the held-out river.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from tqdm.auto import tqdm

from data_tools.images import load_rgb
from data_tools.manifest import build_manifest
from data_tools.splits import split_cross, split_mixed

TRAINING_SPLITS = ("train", "val")


@dataclass
class DomainGap:
    """Accuracies of the colour-histogram SVM under the two protocols."""

    mixed: float  # accuracy on the pooled test parts
    mixed_per_river: dict[str, float]  # the same predictions, per river
    leave_one_out: dict[str, float]  # held-out river -> accuracy on all its pairs
    in_domain: dict[str, float] = field(default_factory=dict)  # held-out river -> sources' test accuracy

    @property
    def leave_one_out_mean(self) -> float:
        """Mean leave-one-river-out accuracy over the held-out rivers."""
        return float(np.mean(list(self.leave_one_out.values())))

    @property
    def gap(self) -> float:
        """Mixed accuracy minus the mean leave-one-river-out accuracy."""
        return self.mixed - self.leave_one_out_mean

    def as_dict(self) -> dict:
        """Plain-dict form, with the mean and the gap, for JSON."""
        return {
            "mixed": self.mixed,
            "mixed_per_river": self.mixed_per_river,
            "leave_one_out": self.leave_one_out,
            "leave_one_out_mean": self.leave_one_out_mean,
            "in_domain": self.in_domain,
            "gap": self.gap,
        }


def colour_histogram(image: np.ndarray, bins: int = 16) -> np.ndarray:
    """Per-channel histogram of an 8-bit RGB image, each channel normalised to sum 1 (3 * bins values)."""
    flat = image.reshape(-1, 3).astype(np.int32)
    return np.concatenate(
        [np.bincount(flat[:, c] * bins // 256, minlength=bins) / len(flat) for c in range(3)]
    ).astype(np.float32)


def pair_features(root: Path, manifest: pd.DataFrame, *, bins: int = 16, progress: bool = True) -> np.ndarray:
    """Feature matrix (pairs x 6 * bins): PPL colour histogram followed by the XPL one."""
    rows = []
    pairs = zip(manifest["plane_path"], manifest["cross_path"], strict=True)
    for plane, cross in tqdm(
        pairs, total=len(manifest), desc="colour histograms", unit="pair", disable=not progress
    ):
        rows.append(
            np.concatenate(
                [
                    colour_histogram(load_rgb(root / plane), bins),
                    colour_histogram(load_rgb(root / cross), bins),
                ]
            )
        )
    return np.stack(rows)


def histogram_svm() -> Pipeline:
    """StandardScaler + RBF SVC with fixed, conventional hyper-parameters (C=10, gamma='scale')."""
    return make_pipeline(StandardScaler(), SVC(kernel="rbf", C=10.0, gamma="scale"))


def _accuracy(truth: pd.Series, predicted: np.ndarray) -> float:
    if len(truth) == 0:
        raise ValueError(
            "a split holds no pairs: the dataset is too small for the 7:3 protocol "
            "(each river and class needs at least two pairs)"
        )
    return float(np.mean(truth.to_numpy() == predicted))


def measure_domain_gap(root: Path, *, seed: int = 0, bins: int = 16, progress: bool = True) -> DomainGap:
    """Mixed and leave-one-river-out accuracy of the colour-histogram SVM on the tree at ``root``.

    Returns:
        DomainGap with accuracies in [0, 1].

    Raises:
        FileNotFoundError: root is not a folder.
        ValueError: the tree has fewer than two domains, or too few pairs to fill every split.
    """
    root = Path(root)
    manifest = build_manifest(root, progress=progress).manifest
    rivers = list(manifest["domain"].unique())
    if len(rivers) < 2:
        raise ValueError(f"{root}: leave-one-river-out needs at least two domains, found {rivers}")
    features = pair_features(root, manifest, bins=bins, progress=progress)
    labels = manifest["label"]

    split = split_mixed(manifest, seed)
    train, test = split.isin(TRAINING_SPLITS).to_numpy(), (split == "test").to_numpy()
    predicted = histogram_svm().fit(features[train], labels[train]).predict(features[test])
    test_rivers = manifest["domain"][test].to_numpy()
    mixed_per_river = {
        river: _accuracy(labels[test][test_rivers == river], predicted[test_rivers == river])
        for river in rivers
    }
    result = DomainGap(
        mixed=_accuracy(labels[test], predicted), mixed_per_river=mixed_per_river, leave_one_out={}
    )

    for river in rivers:
        split = split_cross(manifest, [r for r in rivers if r != river], [river], seed)
        train = split.isin(TRAINING_SPLITS).to_numpy()
        model = histogram_svm().fit(features[train], labels[train])
        for name, store in (("target", result.leave_one_out), ("test", result.in_domain)):
            rows = (split == name).to_numpy()
            store[river] = _accuracy(labels[rows], model.predict(features[rows]))
    return result


def channel_statistics(root: Path, *, progress: bool = True) -> dict[str, dict[str, tuple[float, ...]]]:
    """Per-channel mean and standard deviation (RGB, 0-1) over every pixel of every PPL and XPL image.

    Returns:
        ``{"plane": {"mean": (r, g, b), "std": (r, g, b)}, "cross": {...}}``, the shape of
        ``reference_counts.PUBLISHED_CHANNEL_STATS``.
    """
    root = Path(root)
    manifest = build_manifest(root, progress=progress).manifest
    statistics = {}
    for pol in ("plane", "cross"):
        total, squares, count = np.zeros(3), np.zeros(3), 0
        for path in manifest[f"{pol}_path"]:
            pixels = load_rgb(root / path).reshape(-1, 3).astype(np.float64) / 255.0
            total += pixels.sum(axis=0)
            squares += (pixels**2).sum(axis=0)
            count += len(pixels)
        mean = total / count
        std = np.sqrt(squares / count - mean**2)
        statistics[pol] = {
            "mean": tuple(round(float(v), 4) for v in mean),
            "std": tuple(round(float(v), 4) for v in std),
        }
    return statistics
