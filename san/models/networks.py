"""The Siamese pair classifier and the domain discriminator of SAN.

Notation: N images per batch, PPL image x_p and XPL image x_c (N x 3 x H x W each),
backbone features f_p, f_c (N x d; or N x T x d spatial tokens for the cross-attention fusion),
fused features z (N x d_fused), C classes, D source domains.

    f_p, f_c = E_p(x_p), E_c(x_c)          (E_p = E_c for a true Siamese encoder)
    z        = fuse(f_p, f_c)              (N x d_fused)
    y_hat    = W_y dropout(z) + b_y        (N x C class logits)
    d_hat    = G_d(R_lambda(z))            (N x D domain logits, behind gradient reversal)

The published model: two separate ResNet-18 (d = 512), concatenation + Linear(1024, 512),
Linear(512, 12), and a discriminator Linear-ReLU-BatchNorm1d-Linear.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import torch
import torchvision
from torch import Tensor, nn

from san.models.backbones import build_feature_extractor


def feature_tokens(extractor: nn.Module, images: Tensor) -> Tensor:
    """Spatial tokens N x T x d of a feature extractor from :func:`build_feature_extractor`.

    A timm model gives its own tokens (``TimmBackbone.tokens``); a torchvision ResNet the output of
    ``layer4`` (N x d x h x w, T = h w), a VGG that of its convolutional ``features``.

    Raises:
        ValueError: the extractor has no spatial feature map to take tokens from.
    """
    if hasattr(extractor, "tokens"):
        return extractor.tokens(images)
    if isinstance(extractor, torchvision.models.ResNet):
        # Captured by a hook, so that the stem and stages run exactly as in the model's forward.
        captured: list[Tensor] = []
        handle = extractor.layer4.register_forward_hook(lambda _m, _i, output: captured.append(output))
        try:
            extractor(images)
        finally:
            handle.remove()
        feature_map = captured[0]
    elif hasattr(extractor, "features"):
        feature_map = extractor.features(images)
    else:
        raise ValueError(f"{type(extractor).__name__} has no spatial feature map to take tokens from")
    return feature_map.flatten(2).transpose(1, 2)


class PolarizationBatchNorm2d(nn.Module):
    """Batch norm with its own statistics and affine parameters per polarization.

    The input is ``torch.cat([plane, cross])`` (2N x C x H x W), as a shared encoder sees it: the
    first half is normalised by ``norms[0]`` (PPL), the second by ``norms[1]`` (XPL), in training
    and in evaluation alike. PPL and XPL images have very different colour statistics (a bright
    mount against a dark one); shared statistics would mix two distributions.
    """

    def __init__(self, source: nn.BatchNorm2d) -> None:
        super().__init__()
        self.norms = nn.ModuleList([copy.deepcopy(source), copy.deepcopy(source)])

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[0] % 2:
            raise ValueError(
                f"PolarizationBatchNorm2d expects [plane; cross], an even batch; got {x.shape[0]}"
            )
        plane, cross = x.chunk(2)
        return torch.cat([self.norms[0](plane), self.norms[1](cross)])


def split_batch_norms(module: nn.Module) -> int:
    """Replace every ``BatchNorm2d`` inside ``module`` by a :class:`PolarizationBatchNorm2d` copy
    of it (weights and running statistics copied into both halves). Returns how many were replaced."""
    targets = [name for name, child in module.named_modules() if type(child) is nn.BatchNorm2d]
    for name in targets:
        parent_name, _, child_name = name.rpartition(".")
        parent = module.get_submodule(parent_name)
        setattr(parent, child_name, PolarizationBatchNorm2d(getattr(parent, child_name)))
    return len(targets)


class SiameseEncoder(nn.Module):
    """Encodes a PPL/XPL pair with one shared backbone or two separate ones.

    Args:
        backbone: a name from :data:`san.models.backbones.BACKBONES`, or ``timm:<model name>``.
        shared: True for a true Siamese network (one backbone for both polarizations);
            False for two backbones (the published "pseudo-Siamese" variant).
        pretrained, weights, img_size: backbone initialisation and input side, see
            :func:`san.models.backbones.build_feature_extractor`.
        tokens: return spatial tokens N x T x d (:func:`feature_tokens`) instead of pooled features.
        per_polarization_bn: with a shared backbone, separate batch-norm statistics and affine
            parameters for PPL and XPL (:class:`PolarizationBatchNorm2d`); convolutions stay shared.
        **backbone_options: ``stem``, ``width``, ``mixstyle_after``, ``mixstyle`` of
            :func:`~san.models.backbones.build_feature_extractor`.

    Attributes:
        feature_dim: d, the size of each polarization's feature vector (or of each token).
    """

    def __init__(
        self,
        backbone: str,
        *,
        shared: bool,
        pretrained: bool = False,
        weights: str | Path | None = None,
        img_size: int | None = None,
        tokens: bool = False,
        per_polarization_bn: bool = False,
        **backbone_options: Any,
    ) -> None:
        super().__init__()
        self.shared = shared
        self.tokens = tokens
        if per_polarization_bn and not shared:
            raise ValueError("per_polarization_bn needs a shared encoder (separate encoders have their own)")
        options = {
            "pretrained": pretrained,
            "weights": weights,
            "img_size": img_size,
            "tokens": tokens,
            **backbone_options,
        }
        if shared:
            # MixStyle in a shared encoder sees [plane; cross]: mix within each half alike.
            if options.get("mixstyle_after"):
                options["mixstyle"] = {**(options.get("mixstyle") or {}), "mixstyle_groups": 2}
            self.encoder, self.feature_dim = build_feature_extractor(backbone, **options)
            if per_polarization_bn:
                split_batch_norms(self.encoder)
        else:
            self.plane_encoder, self.feature_dim = build_feature_extractor(backbone, **options)
            self.cross_encoder, _ = build_feature_extractor(backbone, **options)

    def _encode(self, extractor: nn.Module, images: Tensor) -> Tensor:
        return feature_tokens(extractor, images) if self.tokens else extractor(images)

    def forward(self, plane: Tensor, cross: Tensor) -> tuple[Tensor, Tensor]:
        """Returns (f_plane, f_cross), each N x d (N x T x d with ``tokens``)."""
        if self.shared:
            # One pass over the 2N images: batch-norm statistics then cover both polarizations in
            # training as in evaluation (two passes would train on per-polarization statistics
            # but evaluate with running statistics mixed over both).
            return self._encode(self.encoder, torch.cat([plane, cross])).chunk(2)
        return self._encode(self.plane_encoder, plane), self._encode(self.cross_encoder, cross)


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


class CrossAttentionFusion(nn.Module):
    """Each polarization attends to the other (after LITHOS's PolarViT), then a learned gate.

    With spatial tokens t_p (N x T_p x d) and t_c (N x T_c x d), multi-head attention
    MHA(queries, keys = values) and layer normalisation LN:

        a_p = LN_p(t_p + MHA_p(t_p, t_c))       PPL tokens query the XPL tokens   (N x T_p x d)
        a_c = LN_c(t_c + MHA_c(t_c, t_p))       XPL tokens query the PPL tokens   (N x T_c x d)
        s_p, s_c = mean_T a_p, mean_T a_c        attended summaries                (N x d)
        z = GatedFusion(s_p, s_c)                learned per-feature gate          (N x d_fused)

    Both directions attend to the encoder's tokens (PolarViT runs them one after the other);
    the tokens carry no extra position embedding (a ViT's already do).

    Raises:
        ValueError: d is not a multiple of ``heads``.
    """

    uses_tokens: ClassVar[bool] = True

    def __init__(self, in_features: int, out_features: int, *, heads: int = 4) -> None:
        super().__init__()
        if heads < 1 or in_features % heads:
            raise ValueError(
                f"cross_attention fusion: the token size {in_features} must be a multiple of "
                f"fusion_heads, got {heads}"
            )
        self.out_features = out_features
        self.plane_attention = nn.MultiheadAttention(in_features, heads, batch_first=True)
        self.cross_attention = nn.MultiheadAttention(in_features, heads, batch_first=True)
        self.plane_norm = nn.LayerNorm(in_features)
        self.cross_norm = nn.LayerNorm(in_features)
        self.gate = GatedFusion(in_features, out_features)

    def attended(self, plane: Tensor, cross: Tensor) -> tuple[Tensor, Tensor]:
        """(a_p, a_c): the tokens of each polarization after attending to the other."""
        plane_update, _ = self.plane_attention(plane, cross, cross, need_weights=False)
        cross_update, _ = self.cross_attention(cross, plane, plane, need_weights=False)
        return self.plane_norm(plane + plane_update), self.cross_norm(cross + cross_update)

    def forward(self, plane: Tensor, cross: Tensor) -> Tensor:
        if plane.ndim != 3 or cross.ndim != 3:
            raise ValueError(
                f"cross_attention fusion needs N x T x d tokens, got shapes {tuple(plane.shape)} "
                f"and {tuple(cross.shape)} (build the encoder with tokens=True)"
            )
        plane_attended, cross_attended = self.attended(plane, cross)
        return self.gate(plane_attended.mean(dim=1), cross_attended.mean(dim=1))


FUSIONS: dict[str, type[nn.Module]] = {
    "concat": ConcatFusion,
    "sum": SumFusion,
    "gate": GatedFusion,
    "cross_attention": CrossAttentionFusion,
}


def fusion_uses_tokens(name: str) -> bool:
    """True when fusion ``name`` takes spatial tokens N x T x d rather than pooled features N x d."""
    return getattr(FUSIONS.get(name), "uses_tokens", False)


def build_fusion(name: str, in_features: int, out_features: int, *, heads: int = 4) -> nn.Module:
    """The fusion module ``name`` mapping two N x in_features tensors (tokens N x T x in_features
    for the token fusions) to N x out_features; ``heads`` is the token fusions' attention heads.

    Raises:
        ValueError: unknown name (the message lists :data:`FUSIONS`), or heads that do not divide d.
    """
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; expected one of {', '.join(FUSIONS)}")
    if fusion_uses_tokens(name):
        return FUSIONS[name](in_features, out_features, heads=heads)
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
        """Returns (class logits N x C, fused features z N x d_fused, [f_p ; f_c] N x 2d); spatial
        tokens (N x T x d, the token fusions) are averaged over T for [f_p ; f_c]."""
        f_plane, f_cross = self.encoder(plane, cross)
        fused = self.fusion(f_plane, f_cross)
        pooled = [f.mean(dim=1) if f.ndim == 3 else f for f in (f_plane, f_cross)]
        return self.classifier(fused), fused, torch.cat(pooled, dim=1)


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
