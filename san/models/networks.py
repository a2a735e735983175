"""The Siamese pair classifier and the domain discriminator of SAN.

Notation: N images per batch, PPL image x_p and XPL image x_c (N x 3 x H x W each),
backbone features f_p, f_c (N x d), fused features z (N x d_fused), C classes, D source domains.

    f_p, f_c = E_p(x_p), E_c(x_c)          (E_p = E_c for a true Siamese encoder)
    z        = fuse(f_p, f_c)              (N x d_fused)
    y_hat    = W_y dropout(z) + b_y        (N x C class logits)
    d_hat    = G_d(R_lambda(z))            (N x D domain logits, behind gradient reversal)

The published model: two separate ResNet-18 (d = 512), concatenation + Linear(1024, 512),
Linear(512, 12), and a discriminator Linear-ReLU-BatchNorm1d-Linear.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from san.models.backbones import build_feature_extractor


class SiameseEncoder(nn.Module):
    """Encodes a PPL/XPL pair with one shared backbone or two separate ones.

    Args:
        backbone: a name from :data:`san.models.backbones.BACKBONES`.
        shared: True for a true Siamese network (one backbone for both polarizations);
            False for two backbones (the published "pseudo-Siamese" variant).
        pretrained, weights: backbone initialisation, see
            :func:`san.models.backbones.build_feature_extractor`.

    Attributes:
        feature_dim: d, the size of each polarization's feature vector.
    """

    def __init__(
        self, backbone: str, *, shared: bool, pretrained: bool = False, weights: str | Path | None = None
    ) -> None:
        super().__init__()
        self.shared = shared
        if shared:
            self.encoder, self.feature_dim = build_feature_extractor(
                backbone, pretrained=pretrained, weights=weights
            )
        else:
            self.plane_encoder, self.feature_dim = build_feature_extractor(
                backbone, pretrained=pretrained, weights=weights
            )
            self.cross_encoder, _ = build_feature_extractor(backbone, pretrained=pretrained, weights=weights)

    def forward(self, plane: Tensor, cross: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (f_plane, f_cross), each N x d."""
        if self.shared:
            # One pass over the 2N images: batch-norm statistics then cover both polarizations in
            # training as in evaluation (two passes would train on per-polarization statistics
            # but evaluate with running statistics mixed over both).
            return self.encoder(torch.cat([plane, cross])).chunk(2)
        return self.plane_encoder(plane), self.cross_encoder(cross)


class ConcatFusion(nn.Module):
    """z = W [f_p ; f_c] + b: concatenation (N x 2d) then Linear(2d, d_fused), as published."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features
        self.project = nn.Linear(2 * in_features, out_features)

    def forward(self, plane: Tensor, cross: Tensor) -> Tensor:
        return self.project(torch.cat([plane, cross], dim=1))


class SumFusion(nn.Module):
    """z = W (f_p + f_c) + b: element-wise sum (N x d) then Linear(d, d_fused)."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features
        self.project = nn.Linear(in_features, out_features)

    def forward(self, plane: Tensor, cross: Tensor) -> Tensor:
        return self.project(plane + cross)


class GatedFusion(nn.Module):
    """A learned per-feature choice between the polarizations.

    g = sigmoid(W_g [f_p ; f_c] + b_g)          (N x d, in (0, 1))
    z = W (g * f_p + (1 - g) * f_c) + b          (N x d_fused)
    """

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features
        self.gate = nn.Linear(2 * in_features, in_features)
        self.project = nn.Linear(in_features, out_features)

    def forward(self, plane: Tensor, cross: Tensor) -> Tensor:
        gate = torch.sigmoid(self.gate(torch.cat([plane, cross], dim=1)))
        return self.project(gate * plane + (1 - gate) * cross)


FUSIONS: dict[str, type[nn.Module]] = {"concat": ConcatFusion, "sum": SumFusion, "gate": GatedFusion}


def build_fusion(name: str, in_features: int, out_features: int) -> nn.Module:
    """The fusion module ``name`` mapping two N x in_features tensors to N x out_features.

    Raises:
        ValueError: unknown name (the message lists :data:`FUSIONS`).
    """
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; expected one of {', '.join(FUSIONS)}")
    return FUSIONS[name](in_features, out_features)


class PairClassifier(nn.Module):
    """Siamese encoder + fusion + class head.

    Args:
        encoder: maps (x_p, x_c) to (f_p, f_c), N x d each.
        fusion: maps (f_p, f_c) to z, N x ``fusion.out_features``.
        num_classes: C.
        dropout: probability of dropping features of z before the class head.
    """

    def __init__(
        self, encoder: SiameseEncoder, fusion: nn.Module, num_classes: int, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.fusion = fusion
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(fusion.out_features, num_classes))

    def forward(self, plane: Tensor, cross: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (class logits N x C, fused features z N x d_fused)."""
        fused = self.fusion(*self.encoder(plane, cross))
        return self.classifier(fused), fused


class DomainDiscriminator(nn.Module):
    """G_d: predicts the source domain of fused features, N x d_fused -> N x D logits.

    Linear(d_fused, hidden) - ReLU - BatchNorm1d(hidden) - Linear(hidden, D), as published.
    BatchNorm1d needs at least two samples per training batch; ``batch_norm=False`` puts
    Dropout(0.5) in its place.
    """

    def __init__(
        self, in_features: int, num_domains: int, hidden: int = 256, *, batch_norm: bool = True
    ) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden),
            nn.ReLU(inplace=True),
            nn.BatchNorm1d(hidden) if batch_norm else nn.Dropout(0.5),
            nn.Linear(hidden, num_domains),
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features)
