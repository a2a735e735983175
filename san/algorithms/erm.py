"""ERM on the Siamese pair classifier: the baseline SAN must beat on the same network and budget."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from san.algorithms.base import OPTIMIZER_HPARAMS, Algorithm, Batch, accuracy
from san.algorithms.registry import register_algorithm
from san.models.networks import PairClassifier, SiameseEncoder, build_fusion

PAIR_NETWORK_HPARAMS: dict[str, Any] = {
    "backbone": "resnet18",  # see san.models.backbones.BACKBONES
    "pretrained": False,  # torchvision's ImageNet weights (needs internet or a warm cache)
    "weights": None,  # path to a local torchvision state dict; wins over pretrained
    "shared_encoder": True,  # True (default): one backbone for both polarizations, a true Siamese network;
    # False: two separate backbones, the published "pseudo-Siamese" variant
    "fusion": "concat",  # 'concat' (published), 'sum' or 'gate'; see san.models.networks.FUSIONS
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
        """The torchvision architecture of the encoder."""
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
        )
        fusion = build_fusion(hp["fusion"], encoder.feature_dim, hp["fused_dim"])
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
