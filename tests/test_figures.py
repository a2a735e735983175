"""Figures that must not mislead: counts in confusion cells, absent classes, curve labels, reliability
bins, the Grad-CAM layer."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch

from san.evaluation.calibration import adaptive_bin_count, reliability_bins
from san.models.backbones import build_feature_extractor
from san.runs.figures import confusion_figure, save_reliability_diagram, training_curves_figure
from san.studies.explain import gradcam_layer


def _texts(figure) -> list[str]:
    return [text.get_text() for axis in figure.axes for text in axis.texts]


def test_confusion_cells_show_share_and_count_and_an_absent_class_is_marked_n_0() -> None:
    confusion = [[17, 3, 0], [0, 0, 0], [1, 0, 9]]  # the second class has no pair in the split
    figure = confusion_figure(confusion, ["Zrn", "Ep", "Ap"], "san: target split of yangtze")
    texts = _texts(figure)
    assert "0.85\n(17)" in texts and "0.15\n(3)" in texts and "0.90\n(9)" in texts
    assert any(text.startswith("n = 0") for text in texts)
    assert not any(text.startswith("0.00") for text in texts)  # no row of zero shares
    axis = figure.axes[0]
    assert [label.get_text() for label in axis.get_yticklabels()] == ["Zrn (n=20)", "Ep (n=0)", "Ap (n=10)"]
    assert "target split of yangtze" in axis.get_title()
    assert axis.get_xlabel() == "predicted class" and axis.get_ylabel() == "true class"


def test_training_curves_show_val_loss_the_chosen_epoch_and_axis_labels() -> None:
    history = [
        {
            "epoch": e,
            "train_loss": 2.0 / e,
            "val_loss": 2.5 / e,
            "train_acc": 0.3 * e,
            "val_accuracy": 0.25 * e,
        }
        for e in (1, 2, 3)
    ]
    figure = training_curves_figure(history, "run", chosen_epoch=2, selection="best val accuracy")
    loss, accuracy = figure.axes[:2]
    legend = [text.get_text() for text in loss.get_legend().get_texts()]
    assert "val loss" in legend and any(label.startswith("chosen: epoch 2") for label in legend)
    assert loss.get_xlabel() == "epoch" and loss.get_ylabel() == "cross-entropy"
    assert accuracy.get_ylabel() == "accuracy / macro-F1"


def test_reliability_bins_hold_equal_counts_of_at_least_15_pairs(tmp_path) -> None:
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(4) * 0.5, size=136)
    labels = rng.integers(0, 4, size=136)
    assert adaptive_bin_count(136) == 9 and adaptive_bin_count(10) == 1 and adaptive_bin_count(10_000) == 10
    table = reliability_bins(probabilities, labels, adaptive_bin_count(136), equal_count=True)
    assert table["count"].sum() == 136 and set(table["count"]) <= {15.0, 16.0}
    assert np.all(np.diff(table["edges"]) >= 0) and np.all(np.diff(table["confidence"]) > 0)
    assert len(reliability_bins(probabilities, labels)["count"]) == 15  # the ECE's equal-width bins stay
    path = save_reliability_diagram({"val": (probabilities, probabilities, labels)}, tmp_path / "r.png", "t")
    assert path.stat().st_size > 10_000


@pytest.mark.parametrize(
    ("arch", "size", "layer", "side"),
    [
        ("resnet18", 64, "layer2", 8),  # layer4 would be 2 x 2
        ("resnet18", 224, "layer4", 7),
        ("vgg16", 64, "features.21", 8),  # the last convolution before the 8 -> 4 pooling
        ("timm:test_convnext", 64, "model.stages.1", 8),
    ],
)
def test_gradcam_takes_the_deepest_layer_with_a_map_of_at_least_7(arch, size, layer, side) -> None:
    torch.manual_seed(0)
    extractor, _ = build_feature_extractor(arch)
    chosen = gradcam_layer(extractor, size)
    assert (chosen.name, chosen.map_size) == (layer, (side, side))


def test_gradcam_warns_when_no_layer_reaches_7(caplog: pytest.LogCaptureFixture) -> None:
    extractor, _ = build_feature_extractor("resnet18")
    with caplog.at_level(logging.WARNING, logger="san.studies.explain"):
        chosen = gradcam_layer(extractor, 16)
    assert chosen.name == "layer1" and chosen.map_size == (4, 4)
    assert re.search(r"no layer of \w*ResNet has a map of at least 7 x 7", caplog.text)
