"""MixStyle (Zhou et al., ICLR 2021) as a backbone layer: mixes instance-level feature statistics.

For a feature map x (N x C x H x W) with per-instance channel means mu(x) and standard deviations
sigma(x) (over H x W), and a partner x' = x[perm] drawn by a permutation of the batch:

    lambda ~ Beta(alpha, alpha)                                   (one per instance)
    mu_mix    = lambda mu(x) + (1 - lambda) mu(x')
    sigma_mix = lambda sigma(x) + (1 - lambda) sigma(x')
    MixStyle(x) = sigma_mix * (x - mu(x)) / sigma(x) + mu_mix

The statistics are detached (as in the paper), so gradients flow through the normalised content
only. With domain-balanced batches a random partner usually comes from another river, which is
what mixes the rivers' "styles" (lamp, white balance, focus). Only active in training mode, and
then with probability ``p`` per forward pass; the identity in evaluation.

A shared Siamese encoder sees ``torch.cat([plane, cross])``: with ``groups=2`` the batch is two
aligned halves, and both get the same permutation and the same lambdas, so a PPL image borrows
statistics only from another PPL image, an XPL image only from XPL, and a pair stays one pair.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn


class MixStyle(nn.Module):
    """Mix per-instance channel statistics across the batch (see the module docstring).

    Args:
        p: probability of mixing in a training forward pass.
        alpha: Beta(alpha, alpha) concentration of the mixing weight.
        groups: number of aligned chunks of the batch (2 for a shared PPL/XPL encoder).
        eps: added to the variance before the square root.
        seed: seed of the module's own generator (the draws never touch the global stream).
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1, groups: int = 1, eps: float = 1e-6, seed: int = 0):
        super().__init__()
        if not 0.0 <= p <= 1.0 or alpha <= 0 or groups < 1:
            raise ValueError(
                f"MixStyle needs 0 <= p <= 1, alpha > 0, groups >= 1; got {p}, {alpha}, {groups}"
            )
        self.p, self.alpha, self.groups, self.eps = p, alpha, groups, eps
        self.generator = torch.Generator().manual_seed(seed)

    def extra_repr(self) -> str:
        return f"p={self.p}, alpha={self.alpha}, groups={self.groups}"

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0:
            return x
        if float(torch.rand((), generator=self.generator)) >= self.p:
            return x
        n = x.shape[0] // self.groups
        if n < 2 or x.shape[0] % self.groups:
            return x
        perm = torch.randperm(n, generator=self.generator)
        lam = beta_sample(self.alpha, n, self.generator).to(x.device, x.dtype).view(n, 1, 1, 1)
        perm = torch.cat([perm + g * n for g in range(self.groups)]).to(x.device)
        lam = lam.repeat(self.groups, 1, 1, 1)
        return mix_instance_statistics(x, perm, lam, self.eps)


def mix_instance_statistics(x: Tensor, partner: Tensor, weight: Tensor, eps: float = 1e-6) -> Tensor:
    """MixStyle's operation on feature maps x (N x C x H x W): with per-instance channel means mu and
    standard deviations sigma over H x W (detached, as in the paper), partners j = partner[i] (N) and
    weights m (N, or N x 1 x 1 x 1),

        mu~ = m mu_i + (1 - m) mu_j,  sigma~ = m sigma_i + (1 - m) sigma_j,
        out = sigma~ (x - mu_i) / sigma_i + mu~

    Shared by the :class:`MixStyle` layer (random partners) and the ``mixstyle`` algorithm
    (:class:`san.algorithms.dg.MixStyleDG`, partners from another river).
    """
    mu = x.mean(dim=(2, 3), keepdim=True).detach()
    sigma = (x.var(dim=(2, 3), keepdim=True) + eps).sqrt().detach()
    m = weight.reshape(-1, 1, 1, 1).to(x.dtype)
    normed = (x - mu) / sigma
    mu_mix = m * mu + (1 - m) * mu[partner]
    sigma_mix = m * sigma + (1 - m) * sigma[partner]
    return normed * sigma_mix + mu_mix


def beta_sample(alpha: float, n: int, generator: torch.Generator) -> Tensor:
    """n draws of Beta(alpha, alpha) (float32), reproducible from ``generator`` alone.

    torch's Beta sampler takes no generator; a numpy generator seeded by one draw of ``generator``
    keeps the global random streams untouched.
    """
    seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.beta(alpha, alpha, size=n).astype(np.float32))
