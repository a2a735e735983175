"""CNN baselines (VGG-16, ResNet-34) as algorithms on san's engine, with four input modes.

``input`` hyper-parameter:

- ``plane`` / ``cross``: one CNN on the PPL or the XPL image alone (the published baselines);
- ``stack``: early fusion, one CNN whose first convolution takes both images as 6 channels;
- ``pair``: late fusion, ERM on the Siamese pair classifier with this backbone (exactly
  :class:`san.algorithms.erm.ERM`, so its ``shared_encoder``, ``fusion`` and ``fused_dim``
  apply only in this mode).

All modes train by ERM (cross-entropy) through the same optimisation step as ERM and SAN.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from san.algorithms.erm import ERM
from san.algorithms.registry import register_algorithm
from san.models.backbones import build_classifier_model, build_feature_extractor, widen_first_conv

INPUT_MODES = ("plane", "cross", "stack", "pair")
VGG_HEADS = ("compact", "torchvision")


class SingleImageClassifier(nn.Module):
    """A CNN on one input built from the pair: the PPL image, the XPL image, or both stacked.

    Args:
        body: images N x c x H x W -> features N x d (c = 6 for ``stack``, else 3).
        head: features N x d -> class logits N x C.
        input_mode: 'plane', 'cross' or 'stack'.
    """

    def __init__(self, body: nn.Module, head: nn.Module, input_mode: str) -> None:
        super().__init__()
        if input_mode not in ("plane", "cross", "stack"):
            raise ValueError(
                f"unknown single-image input mode {input_mode!r}; expected plane, cross or stack"
            )
        self.input_mode = input_mode
        self.body = body
        self.head = head

    def forward(self, plane: Tensor, cross: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (class logits N x C, features N x d); ignores the image the mode does not use."""
        if self.input_mode == "stack":
            images = torch.cat([plane, cross], dim=1)
        else:
            images = plane if self.input_mode == "plane" else cross
        features = self.body(images)
        return self.head(features), features


class CNNBaseline(ERM):
    """A torchvision CNN (:attr:`ARCHITECTURE`) trained by ERM on the input chosen by ``input``.

    Hyper-parameters: ERM's without ``backbone`` (fixed by the algorithm), plus ``input``.
    The default ``stack`` lets a single standard CNN see both polarizations.
    """

    ARCHITECTURE: ClassVar[str]
    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {
        **{key: value for key, value in ERM.DEFAULT_HPARAMS.items() if key != "backbone"},
        "input": "stack",
    }

    @property
    def backbone_name(self) -> str:
        return self.ARCHITECTURE

    def build_network(self) -> nn.Module:
        """The pair classifier (``pair``) or a :class:`SingleImageClassifier`.

        Raises:
            ValueError: unknown ``input`` mode (the message lists :data:`INPUT_MODES`).
        """
        mode = self.hparams["input"]
        if mode not in INPUT_MODES:
            raise ValueError(
                f"{type(self).__name__}: unknown input mode {mode!r}; "
                f"expected one of {', '.join(INPUT_MODES)}"
            )
        if mode == "pair":
            return super().build_network()
        body, head = self.single_image_parts()
        if mode == "stack":
            pretrained = bool(self.hparams["weights"] or self.hparams["pretrained"])
            widen_first_conv(body, 6, copy_weights=pretrained)
        return SingleImageClassifier(body, head, mode)

    def single_image_parts(self) -> tuple[nn.Module, nn.Module]:
        """(body: images -> pooled features N x d, head: dropout + Linear(d, C))."""
        body, dim = build_feature_extractor(
            self.ARCHITECTURE, pretrained=self.hparams["pretrained"], weights=self.hparams["weights"]
        )
        return body, nn.Sequential(nn.Dropout(self.hparams["dropout"]), nn.Linear(dim, self.num_classes))


@register_algorithm("resnet34")
class ResNet34Baseline(CNNBaseline):
    """ResNet-34 (torchvision): global-average-pooled 512-d features, dropout, Linear(512, C)."""

    ARCHITECTURE = "resnet34"


@register_algorithm("vgg16")
class VGG16Baseline(CNNBaseline):
    """VGG-16 with batch norm (torchvision's ``vgg16_bn``) and a choice of head (``head``).

    - ``compact`` (default): global average pool of the last 512 feature maps, dropout,
      Linear(512, C): ~14.7M parameters in all.
    - ``torchvision``: the original adaptive 7x7 pool and 25088-4096-4096-C classifier with
      dropout ``dropout``: ~120M more parameters, for a faithful reproduction.

    ``compact`` is the default because the original head multiplies the parameter count by
    nine for a data set of about two thousand pairs: it overfits more easily, and its memory
    and optimizer step weigh heavily on a 2-core CPU, while the convolutional part (which
    carries the pretrained knowledge) is the same. ``head`` is ignored in ``pair`` mode, which
    uses the pair classifier's fusion and head.
    """

    ARCHITECTURE = "vgg16_bn"
    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {
        **CNNBaseline.DEFAULT_HPARAMS,
        "head": "compact",
        "dropout": 0.5,
    }

    def single_image_parts(self) -> tuple[nn.Module, nn.Module]:
        """Raises ValueError for an unknown ``head`` (the message lists :data:`VGG_HEADS`)."""
        hp = self.hparams
        if hp["head"] == "compact":
            return super().single_image_parts()
        if hp["head"] != "torchvision":
            raise ValueError(
                f"{type(self).__name__}: unknown head {hp['head']!r}; expected one of {', '.join(VGG_HEADS)}"
            )
        model = build_classifier_model(
            self.ARCHITECTURE,
            self.num_classes,
            pretrained=hp["pretrained"],
            weights=hp["weights"],
            dropout=hp["dropout"],
        )
        body = nn.Sequential(model.features, model.avgpool, nn.Flatten(), *model.classifier[:-1])
        return body, model.classifier[-1]
