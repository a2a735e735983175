"""ERM on the Siamese pair classifier: the baseline SAN must beat on the same network and budget."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from san.algorithms.base import OPTIMIZER_HPARAMS, Algorithm, Batch, accuracy
from san.algorithms.hparam_space import Sampler, choice, log_uniform, uniform
from san.algorithms.mixing import MixedPairs, mix_pairs
from san.algorithms.registry import register_algorithm
from san.models.mixstyle import MixStyle
from san.models.networks import PairClassifier, SiameseEncoder, build_fusion, fusion_uses_tokens

log = logging.getLogger(__name__)

PAIR_NETWORK_HPARAMS: dict[str, Any] = {
    "backbone": "resnet18",  # see san.models.backbones.BACKBONES, or timm:<name>, e.g. timm:convnext_atto
    "pretrained": False,  # torchvision's ImageNet weights (internet or a warm cache); timm: never downloaded
    "weights": None,  # path to a local state dict (torchvision or timm format); wins over pretrained
    "img_size": None,  # input side of fixed-size timm models (ViT); None = the run's data.size
    "shared_encoder": True,  # True (default): one backbone for both polarizations, a true Siamese network;
    # False: two separate backbones, the published "pseudo-Siamese" variant
    "fusion": "concat",  # 'concat' (published), 'sum', 'gate', 'cross_attention'; san.models.networks.FUSIONS
    "fusion_heads": 4,  # attention heads of the cross_attention fusion (must divide the backbone's d)
    "fused_dim": 512,
    "dropout": 0.0,  # on the fused features, before the class head
    # ResNet options for small crops (san.models.grain_resnet): 'imagenet' | 'no-maxpool' | 'stride1'
    "stem": "imagenet",
    "width": 1.0,  # channel multiplier of every stage (0.5 = half-width)
    "per_polarization_bn": False,  # shared encoder only: own batch-norm statistics for PPL and XPL
    "mixstyle_after": [],  # stages (1-3) followed by MixStyle, e.g. [1, 2]; [] = off
    "mixstyle_p": 0.5,
    "mixstyle_alpha": 0.1,
    # Mixup / CutMix drawn once per pair (san.algorithms.mixing); 0 = off
    "mixup_alpha": 0.0,
    "cutmix_alpha": 0.0,
    "mix_probability": 0.5,  # share of training batches that are mixed
}


RESNET_DEFAULTS: dict[str, Any] = {"stem": "imagenet", "width": 1.0, "mixstyle_after": ()}


@register_algorithm("erm")
class ERM(Algorithm):
    """Empirical risk minimisation: cross-entropy of the pair classifier, nothing else.

    Network: :class:`san.models.networks.PairClassifier`; loss: L_y = CE(y_hat, y) (N x C logits,
    N labels), with optional label smoothing and class weights.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {**OPTIMIZER_HPARAMS, **PAIR_NETWORK_HPARAMS}
    HPARAM_SPACE: ClassVar[dict[str, Sampler]] = {
        "lr": log_uniform(-2.0, -0.7),  # 0.01 to 0.2
        "weight_decay": log_uniform(-5.0, -3.0),
        "dropout": choice(0.0, 0.1, 0.2, 0.5),
        "label_smoothing": uniform(0.0, 0.2),
    }

    @property
    def backbone_name(self) -> str:
        """The architecture of the encoder (torchvision name or ``timm:<model name>``)."""
        return self.hparams["backbone"]

    def build_modules(self) -> None:
        # Derived from the run's seed without drawing from the global stream (a draw would shift the
        # initialisation of every run, mixing or not); MixStyle and Mixup/CutMix then keep generators
        # of their own, so they never shift the data-order or initialisation streams either.
        self._mix_seed = (torch.initial_seed() * 2654435761 + 1) % (2**31 - 1)
        self.mix_generator = torch.Generator().manual_seed(self._mix_seed)
        self.network = self.build_network()

    def build_network(self) -> nn.Module:
        """The module mapping (plane, cross) to (class logits N x C, features N x d)."""
        hp = self.hparams
        resnet_options = {
            "stem": hp["stem"],
            "width": hp["width"],
            "mixstyle_after": tuple(hp["mixstyle_after"] or ()),
        }
        if not self.backbone_name.startswith("resnet"):
            # A preset's small-crop ResNet recipe must not stop a run that picked another backbone.
            if set_options := {k: v for k, v in resnet_options.items() if v != RESNET_DEFAULTS[k]}:
                log.warning(
                    "backbone %s: the ResNet-only options %s are ignored",
                    self.backbone_name,
                    ", ".join(f"{k}={v}" for k, v in set_options.items()),
                )
            resnet_options = dict(RESNET_DEFAULTS)
        encoder = SiameseEncoder(
            self.backbone_name,
            shared=hp["shared_encoder"],
            pretrained=hp["pretrained"],
            weights=hp["weights"],
            img_size=hp["img_size"],
            tokens=fusion_uses_tokens(hp["fusion"]),
            per_polarization_bn=hp["per_polarization_bn"],
            **resnet_options,
            mixstyle={
                "mixstyle_p": hp["mixstyle_p"],
                "mixstyle_alpha": hp["mixstyle_alpha"],
                "seed": self._mix_seed,
            },
        )
        fusion = build_fusion(hp["fusion"], encoder.feature_dim, hp["fused_dim"], heads=hp["fusion_heads"])
        return PairClassifier(encoder, fusion, self.num_classes, dropout=hp["dropout"])

    def classification_forward(
        self,
        batch: Batch,
        *,
        branches: bool = False,
        loss: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """One forward pass: (class loss, logits N x C, the network's other outputs: (z,), or with
        ``branches`` (z, [f_p ; f_c]) of :meth:`PairClassifier.forward_with_branches`).

        ``loss(logits, labels)`` defaults to :meth:`class_loss`; a per-row loss gives per-row values.
        With Mixup/CutMix on, a share ``mix_probability`` of the batches is mixed per pair
        (:func:`san.algorithms.mixing.mix_pairs`) and the loss is
        lambda loss(y_hat, y) + (1 - lambda) loss(y_hat, y[pi]).
        """
        loss = loss or self.class_loss
        plane, cross = self.images(batch)
        labels = batch["label"]
        mixed = self._mix(plane, cross)
        if mixed is not None:
            plane, cross = mixed.plane, mixed.cross
        logits, *outputs = (self.network.forward_with_branches if branches else self.network)(plane, cross)
        if mixed is None:
            class_loss = loss(logits, labels)
        else:
            class_loss = mixed.lam * loss(logits, labels) + (1 - mixed.lam) * loss(
                logits, labels[mixed.permutation]
            )
        return class_loss, logits, tuple(outputs)

    def classification_terms(self, batch: Batch) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Forward pass (:meth:`classification_forward`, Mixup/CutMix included): (class loss,
        features N x d, {'class_loss', 'acc'})."""
        class_loss, logits, (features,) = self.classification_forward(batch)
        return (
            class_loss,
            features,
            {"class_loss": class_loss.detach(), "acc": accuracy(logits, batch["label"])},
        )

    def _mix(self, plane: Tensor, cross: Tensor) -> MixedPairs | None:
        hp = self.hparams
        if hp["mixup_alpha"] <= 0 and hp["cutmix_alpha"] <= 0:
            return None
        if float(torch.rand((), generator=self.mix_generator)) >= hp["mix_probability"]:
            return None
        return mix_pairs(
            plane, cross, self.mix_generator, mixup_alpha=hp["mixup_alpha"], cutmix_alpha=hp["cutmix_alpha"]
        )

    def training_state(self) -> dict[str, Any]:
        generators = {"mix": self.mix_generator.get_state()}
        for name, module in self.named_modules():
            if isinstance(module, MixStyle):
                generators[name] = module.generator.get_state()
        return {**super().training_state(), "generators": generators}

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        super().load_training_state(state)
        generators = state.get("generators", {})
        if "mix" in generators:
            self.mix_generator.set_state(generators["mix"])
        for name, module in self.named_modules():
            if isinstance(module, MixStyle) and name in generators:
                module.generator.set_state(generators[name])

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        class_loss, _, terms = self.classification_terms(batch)
        return class_loss, terms

    def predict(self, batch: Batch) -> Tensor:
        with self.inference_context():
            return self.network(*self.images(batch))[0].float()

    def features(self, batch: Batch) -> Tensor:
        with self.inference_context():
            return self.network(*self.images(batch))[1].float()
