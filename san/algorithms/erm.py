"""ERM on the Siamese pair classifier: the baseline SAN must beat on the same network and budget."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from san.algorithms.base import OPTIMIZER_HPARAMS, Algorithm, Batch, accuracy
from san.algorithms.registry import register_algorithm
from san.models.networks import PairClassifier, SiameseEncoder, build_fusion, fusion_uses_tokens

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
}


@register_algorithm("erm")
class ERM(Algorithm):
    """Empirical risk minimisation: cross-entropy of the pair classifier, nothing else.

    Network: :class:`san.models.networks.PairClassifier`; loss: L_y = CE(y_hat, y) (N x C logits,
    N labels), with optional label smoothing and class weights.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {**OPTIMIZER_HPARAMS, **PAIR_NETWORK_HPARAMS}

    @property
    def backbone_name(self) -> str:
        """The architecture of the encoder (torchvision name or ``timm:<model name>``)."""
        return self.hparams["backbone"]

    def build_modules(self) -> None:
        self.network = self.build_network()

    def build_network(self) -> nn.Module:
        """The module mapping (plane, cross) to (class logits N x C, features N x d)."""
        hp = self.hparams
        encoder = SiameseEncoder(
            self.backbone_name,
            shared=hp["shared_encoder"],
            pretrained=hp["pretrained"],
            weights=hp["weights"],
            img_size=hp["img_size"],
            tokens=fusion_uses_tokens(hp["fusion"]),
        )
        fusion = build_fusion(hp["fusion"], encoder.feature_dim, hp["fused_dim"], heads=hp["fusion_heads"])
        return PairClassifier(encoder, fusion, self.num_classes, dropout=hp["dropout"])

    def classification_terms(self, batch: Batch) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Forward pass: (class loss, features N x d, {'class_loss', 'acc'})."""
        logits, features = self.network(*self.images(batch))
        labels = batch["label"]
        class_loss = self.class_loss(logits, labels)
        return class_loss, features, {"class_loss": class_loss.detach(), "acc": accuracy(logits, labels)}

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        class_loss, _, terms = self.classification_terms(batch)
        return class_loss, terms

    def predict(self, batch: Batch) -> Tensor:
        with self.inference_context():
            return self.network(*self.images(batch))[0].float()

    def features(self, batch: Batch) -> Tensor:
        with self.inference_context():
            return self.network(*self.images(batch))[1].float()
