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
        logits, fused, _ = self.forward_with_branches(plane, cross)
        return logits, fused

    def forward_with_branches(self, plane: Tensor, cross: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Returns (class logits N x C, fused features z N x d_fused, [f_p ; f_c] N x 2d)."""
        f_plane, f_cross = self.encoder(plane, cross)
        fused = self.fusion(f_plane, f_cross)
        return self.classifier(fused), fused, torch.cat([f_plane, f_cross], dim=1)


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


CONDITIONINGS = ("embedding", "multilinear")


class ConditionalDomainDiscriminator(nn.Module):
    """G_d(z, y): a domain discriminator that sees the class, N x d features -> N x D logits.

    - ``embedding`` (CDANN, Li et al. 2018, as in DomainBed): G_d(z + E[y]) with a learned class
      embedding E (C x d) of the true labels y (N).
    - ``multilinear`` (CDAN, Long et al. 2018): G_d(p (x) z), the outer product of the class
      probabilities p (N x C, given detached) and z, flattened to N x C d.

    G_d is :class:`DomainDiscriminator`; the class information is part of the discriminator's
    input, so hiding the domain from it does not ask the features to hide the class.
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        num_domains: int,
        hidden: int = 256,
        conditioning: str = "embedding",
    ) -> None:
        super().__init__()
        if conditioning not in CONDITIONINGS:
            raise ValueError(
                f"unknown conditioning {conditioning!r}; expected one of {', '.join(CONDITIONINGS)}"
            )
        self.conditioning = conditioning
        if conditioning == "embedding":
            self.embedding = nn.Embedding(num_classes, in_features)
            self.layers = DomainDiscriminator(in_features, num_domains, hidden)
        else:
            self.layers = DomainDiscriminator(in_features * num_classes, num_domains, hidden)

    def forward(self, features: Tensor, labels: Tensor, probabilities: Tensor) -> Tensor:
        if self.conditioning == "embedding":
            return self.layers(features + self.embedding(labels))
        return self.layers(torch.bmm(probabilities.unsqueeze(2), features.unsqueeze(1)).flatten(1))
