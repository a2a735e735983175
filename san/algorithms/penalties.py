"""Per-domain groups of a batch and the distribution-matching penalties of the DomainBed family.

A batch holds rows of several source domains s (N, in [0, D)); :func:`domain_groups` gives each
present domain's row indices, the one helper CORAL, MMD, GroupDRO, VREx, Mixup and MixStyle share.
Features are N x d; the penalties are averaged over the unordered pairs of groups.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations

import torch
from torch import Tensor

MMD_BANDWIDTHS = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)


def domain_groups(domains: Tensor, num_domains: int, min_size: int = 1) -> list[Tensor]:
    """Row indices of each domain in [0, num_domains) with at least ``min_size`` rows, in domain order."""
    groups = [torch.nonzero(domains == d, as_tuple=True)[0] for d in range(num_domains)]
    return [g for g in groups if len(g) >= min_size]


def per_domain_losses(losses: Tensor, domains: Tensor, num_domains: int) -> tuple[Tensor, Tensor]:
    """Mean per-row loss of each present domain: (l_d for the present domains, their indices)."""
    groups = domain_groups(domains, num_domains)
    present = torch.stack([domains[g[0]] for g in groups])
    return torch.stack([losses[g].mean() for g in groups]), present


def coral_distance(x: Tensor, y: Tensor) -> Tensor:
    """Deep CORAL (Sun & Saenko 2016, DomainBed's form) between x (n x d) and y (m x d):

    mean_k (mu_x - mu_y)_k^2 + mean_kl (Sigma_x - Sigma_y)_kl^2, with unbiased covariances.
    """
    mean_x, mean_y = x.mean(0, keepdim=True), y.mean(0, keepdim=True)
    centred_x, centred_y = x - mean_x, y - mean_y
    cov_x = centred_x.t() @ centred_x / (len(x) - 1)
    cov_y = centred_y.t() @ centred_y / (len(y) - 1)
    return (mean_x - mean_y).pow(2).mean() + (cov_x - cov_y).pow(2).mean()


def _squared_distances(x: Tensor, y: Tensor) -> Tensor:
    sq = x.pow(2).sum(1, keepdim=True) - 2 * x @ y.t() + y.pow(2).sum(1).unsqueeze(0)
    return sq.clamp_min(1e-30)


def mmd_distance(x: Tensor, y: Tensor, bandwidths: tuple[float, ...] = MMD_BANDWIDTHS) -> Tensor:
    """Biased MMD^2 between x (n x d) and y (m x d) with k(a, b) = sum_g exp(-g ||a - b||^2):

    mean k(x, x') + mean k(y, y') - 2 mean k(x, y)   (DomainBed's kernel mixture).
    """

    def kernel(a: Tensor, b: Tensor) -> Tensor:
        distances = _squared_distances(a, b)
        return sum(torch.exp(-g * distances) for g in bandwidths)

    return kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()


def pairwise_penalty(
    features: Tensor,
    domains: Tensor,
    num_domains: int,
    distance: Callable[[Tensor, Tensor], Tensor],
    labels: Tensor | None = None,
    min_size: int = 2,
) -> Tensor:
    """Mean of ``distance`` over pairs of domain groups of ``features`` (N x d); 0 with fewer than two.

    With ``labels`` the penalty is class-conditional: pairs of domain groups within each class
    (groups of at least ``min_size`` rows), averaged over every (class, pair) term.
    """
    terms = []
    classes = [None] if labels is None else labels.unique().tolist()
    for label in classes:
        rows = torch.arange(len(domains), device=domains.device)
        if label is not None:
            rows = rows[labels == label]
        groups = domain_groups(domains[rows], num_domains, min_size)
        terms += [distance(features[rows[a]], features[rows[b]]) for a, b in combinations(groups, 2)]
    return torch.stack(terms).mean() if terms else features.sum() * 0.0
