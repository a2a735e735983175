"""Mixup and CutMix drawn once per pair: the PPL and XPL images of a pair get the same partner,
the same weight and (CutMix) the same box, so the mixed pair is still pixel-aligned.

For a batch of pairs (x_p, x_c, y) and a permutation pi of the batch, with lambda ~ Beta(a, a):

    Mixup:   x~ = lambda x + (1 - lambda) x[pi]             (both polarizations alike)
    CutMix:  x~ = x with the box B replaced by x[pi] in B;  lambda = 1 - |B| / (H W)
    loss     = lambda CE(f(x~_p, x~_c), y) + (1 - lambda) CE(f(x~_p, x~_c), y[pi])

Every draw comes from the given generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from san.models.mixstyle import beta_sample


@dataclass(frozen=True)
class MixedPairs:
    """A mixed batch: images, the partner permutation and the weight of the original labels."""

    plane: Tensor
    cross: Tensor
    permutation: Tensor
    lam: float
    kind: str  # 'mixup' or 'cutmix'


def mix_pairs(
    plane: Tensor,
    cross: Tensor,
    generator: torch.Generator,
    *,
    mixup_alpha: float = 0.0,
    cutmix_alpha: float = 0.0,
) -> MixedPairs | None:
    """Mix a batch of pairs (N x 3 x H x W each) with Mixup or CutMix (chosen 50/50 when both
    alphas are positive); None when both alphas are 0 or the batch has fewer than 2 pairs."""
    kinds = [k for k, a in (("mixup", mixup_alpha), ("cutmix", cutmix_alpha)) if a > 0]
    if not kinds or plane.shape[0] < 2:
        return None
    kind = kinds[int(torch.randint(len(kinds), (), generator=generator))]
    alpha = mixup_alpha if kind == "mixup" else cutmix_alpha
    lam = float(beta_sample(alpha, 1, generator)[0])
    perm = torch.randperm(plane.shape[0], generator=generator).to(plane.device)
    if kind == "mixup":
        return MixedPairs(
            lam * plane + (1 - lam) * plane[perm], lam * cross + (1 - lam) * cross[perm], perm, lam, kind
        )
    height, width = plane.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    box_h, box_w = round(height * cut), round(width * cut)
    top = int(torch.randint(height - box_h + 1, (), generator=generator))
    left = int(torch.randint(width - box_w + 1, (), generator=generator))
    mixed = []
    for images in (plane, cross):
        out = images.clone()
        out[..., top : top + box_h, left : left + box_w] = images[perm][
            ..., top : top + box_h, left : left + box_w
        ]
        mixed.append(out)
    lam = 1.0 - box_h * box_w / (height * width)
    return MixedPairs(mixed[0], mixed[1], perm, lam, kind)
