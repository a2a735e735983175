"""The DomainBed family on the Siamese pair classifier: CORAL, MMD, GroupDRO, VREx, inter-domain Mixup,
MixStyle and SWAD (its weight averaging is an engine callback, :mod:`san.training.swad`).

Every algorithm trains ERM's network (:class:`san.algorithms.erm.ERM`: same backbone, fusion and
head, same optimiser) and differs only in the loss. Notation: fused features z (N x d), class
logits y_hat (N x C), labels y, source domains s (N, in [0, D)), per-row cross-entropy
l_i = CE(y_hat_i, y_i) (with the configured label smoothing and class weights), and the
per-domain mean losses l_d = mean_{i : s_i = d} l_i of the domains present in the batch
(:func:`san.algorithms.penalties.domain_groups`; the engine's batches hold every source river).
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from san.algorithms.base import Batch, accuracy
from san.algorithms.erm import ERM
from san.algorithms.penalties import (
    coral_distance,
    domain_groups,
    mmd_distance,
    pairwise_penalty,
    per_domain_losses,
)
from san.algorithms.registry import register_algorithm
from san.models.mixstyle import beta_sample, mix_instance_statistics

__all__ = [
    "CORAL",
    "MMD",
    "SWAD",
    "GroupDRO",
    "InterDomainMixup",
    "MixStyleDG",
    "VREx",
    "cross_domain_partners",
    "mix_instance_statistics",
]


class _DomainLossERM(ERM):
    """ERM with the per-row losses at hand (shared by the algorithms that weigh domains). With ERM's
    Mixup/CutMix on (``mixup_alpha``, ``cutmix_alpha``), a mixed row's loss is ERM's mixed one and
    the row stays in its own river's group."""

    def row_losses(self, logits: Tensor, labels: Tensor) -> Tensor:
        """l_i, N: the class loss without the reduction."""
        return F.cross_entropy(
            logits,
            labels,
            weight=self.class_weights,
            label_smoothing=self.hparams["label_smoothing"],
            reduction="none",
        )

    def _check_domains(self, domains: Tensor) -> None:
        if int(domains.min()) < 0 or int(domains.max()) >= self.num_domains:
            raise ValueError(
                f"{type(self).__name__}: batch domains must be source-domain indices in "
                f"[0, {self.num_domains}), got values from {int(domains.min())} to {int(domains.max())}"
            )


@register_algorithm("coral")
class CORAL(_DomainLossERM):
    """Deep CORAL (Sun & Saenko 2016): L = CE(y_hat, y) + mmd_gamma * P, with

        P = mean over pairs (a, b) of domains of  mean_k (mu_a - mu_b)_k^2 + mean_kl (S_a - S_b)_kl^2

    the squared differences of the means and covariances of z per domain
    (:func:`san.algorithms.penalties.coral_distance`). ``class_conditional``: the pairs are taken
    within each class (groups of >= 2 rows), so matching the rivers' features does not ask the
    features to forget the rivers' different class mixes; with small batches few classes have two
    rows in two rivers, and P is then often 0.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {
        **ERM.DEFAULT_HPARAMS,
        "mmd_gamma": 1.0,  # weight of the penalty (DomainBed's name and default)
        "class_conditional": False,
    }
    distance = staticmethod(coral_distance)

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        class_loss, features, terms = self.classification_terms(batch)
        domains = batch["domain"]
        self._check_domains(domains)
        labels = batch["label"] if self.hparams["class_conditional"] else None
        penalty = pairwise_penalty(features, domains, self.num_domains, self.distance, labels)
        terms["penalty"] = penalty.detach()
        return class_loss + self.hparams["mmd_gamma"] * penalty, terms


@register_algorithm("mmd")
class MMD(CORAL):
    """MMD matching (Li et al. 2018, DomainBed's MMD): L = CE(y_hat, y) + mmd_gamma * P, with

        P = mean over pairs (a, b) of domains of MMD^2(z_a, z_b),
        k(u, v) = sum_{g in {1e-3, ..., 1e3}} exp(-g ||u - v||^2)

    (:func:`san.algorithms.penalties.mmd_distance`); ``class_conditional`` as for CORAL.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = dict(CORAL.DEFAULT_HPARAMS)
    distance = staticmethod(mmd_distance)


@register_algorithm("groupdro")
class GroupDRO(_DomainLossERM):
    """GroupDRO (Sagawa et al. 2020): minimise a softly worst-case mixture of the domains' losses.

    Each step, for the present domains: q_d <- q_d exp(eta l_d) (l_d detached), q <- q / sum q, and

        L = sum_d q_d l_d

    q (D, starting uniform) is a buffer, so it is saved with the weights and restored on resume.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {**ERM.DEFAULT_HPARAMS, "groupdro_eta": 0.01}

    def build_modules(self) -> None:
        super().build_modules()
        self.register_buffer("group_weights", torch.full((self.num_domains,), 1.0 / self.num_domains))

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        labels, domains = batch["label"], batch["domain"]
        self._check_domains(domains)
        rows, logits, _ = self.classification_forward(batch, loss=self.row_losses)
        losses, present = per_domain_losses(rows, domains, self.num_domains)
        with torch.no_grad():
            self.group_weights[present] *= torch.exp(self.hparams["groupdro_eta"] * losses.detach())
            self.group_weights /= self.group_weights.sum()
        loss = (self.group_weights[present] * losses).sum()
        terms = {
            "class_loss": self.class_loss(logits, labels).detach(),
            "acc": accuracy(logits, labels),
            "worst_domain_loss": losses.max().detach(),
            "max_group_weight": self.group_weights.max(),
        }
        return loss, terms


@register_algorithm("vrex")
class VREx(_DomainLossERM):
    """V-REx (Krueger et al. 2021): the mean of the domains' losses plus their variance.

        L = mean_d l_d + beta * mean_d (l_d - mean_d l_d)^2,   beta = 1 before the first
        ``vrex_anneal`` share of training, ``vrex_lambda`` after,

    divided by beta when beta > 1 (the reference code's way to keep the step size through the switch).
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {
        **ERM.DEFAULT_HPARAMS,
        "vrex_lambda": 10.0,
        "vrex_anneal": 0.1,  # share of training with beta = 1 (DomainBed: 500 of 5,000 steps)
    }

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        labels, domains = batch["label"], batch["domain"]
        self._check_domains(domains)
        rows, logits, _ = self.classification_forward(batch, loss=self.row_losses)
        losses, _ = per_domain_losses(rows, domains, self.num_domains)
        mean = losses.mean()
        variance = ((losses - mean) ** 2).mean()
        beta = self.hparams["vrex_lambda"] if progress >= self.hparams["vrex_anneal"] else 1.0
        loss = (mean + beta * variance) / max(1.0, beta)
        terms = {
            "class_loss": self.class_loss(logits, labels).detach(),
            "acc": accuracy(logits, labels),
            "penalty": variance.detach(),
            "penalty_weight": beta,
        }
        return loss, terms


@register_algorithm("mixup")
class InterDomainMixup(_DomainLossERM):
    """Inter-domain Mixup (Yan et al. 2020, DomainBed's Mixup): mix pairs of rivers' image pairs.

    The present domains in a random order pair each with the next (cyclically); for a pair of
    domains (a, b), rows matched in order up to the smaller group, and m ~ Beta(alpha, alpha):

        x~ = m x_a + (1 - m) x_b        (the same m for the PPL and the XPL image of a pair)
        L  = mean over the mixed rows of  m CE(f(x~), y_a) + (1 - m) CE(f(x~), y_b)

    With a single domain in the batch, the domain mixes with a shuffled copy of itself. Every batch
    is mixed (ERM's per-pair Mixup/CutMix, ``mix_probability`` and ``cutmix_alpha``, are not used:
    ``mixup_alpha`` here is the alpha of the inter-river mix). The draws come from the algorithm's
    own generator (:attr:`ERM.mix_generator`), as ERM's Mixup's do.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {**ERM.DEFAULT_HPARAMS, "mixup_alpha": 0.2}

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        plane, cross = self.images(batch)
        labels, domains = batch["label"], batch["domain"]
        self._check_domains(domains)
        generator = self.mix_generator
        groups = domain_groups(domains, self.num_domains)
        order = torch.randperm(len(groups), generator=generator).tolist()
        first, second = [], []
        for i, a in enumerate(order):
            rows_a = groups[a]
            rows_b = groups[order[(i + 1) % len(order)]]
            if len(groups) == 1:
                rows_b = rows_a[torch.randperm(len(rows_a), generator=generator).to(rows_a.device)]
            size = min(len(rows_a), len(rows_b))
            first.append(rows_a[:size])
            second.append(rows_b[:size])
        draws = beta_sample(self.hparams["mixup_alpha"], len(first), generator)
        weight = torch.cat([draws[i].expand(len(rows)) for i, rows in enumerate(first)]).to(plane.device)
        a, b = torch.cat(first), torch.cat(second)
        m = weight.view(-1, 1, 1, 1).to(plane.dtype)
        logits, _ = self.network(m * plane[a] + (1 - m) * plane[b], m * cross[a] + (1 - m) * cross[b])
        loss = (
            weight * self.row_losses(logits, labels[a]) + (1 - weight) * self.row_losses(logits, labels[b])
        ).mean()
        dominant = torch.where(weight >= 0.5, labels[a], labels[b])
        return loss, {
            "class_loss": loss.detach(),
            "acc": accuracy(logits, dominant),
            "mix_weight": weight.mean(),
        }


def cross_domain_partners(domains: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """For each row, a random row of another domain (of the same domain when the batch holds one), N."""
    scores = torch.rand(len(domains), len(domains), generator=generator)
    same = domains.view(-1, 1).cpu() == domains.view(1, -1).cpu()
    if not bool((~same).any(dim=1).all()):
        return torch.randperm(len(domains), generator=generator).to(domains.device)
    return scores.masked_fill(same, -1.0).argmax(dim=1).to(domains.device)


@register_algorithm("mixstyle")
class MixStyleDG(ERM):
    """MixStyle (Zhou et al., ICLR 2021) as a domain-generalisation algorithm: L = CE(f~(x), y), where
    f~ is the encoder with :func:`san.models.mixstyle.mix_instance_statistics` applied to the outputs
    of the ResNet stages ``mixstyle_layers``, with probability ``mixstyle_p`` per step, weights
    m ~ Beta(alpha, alpha) and partners from another source river (``crossdomain``, the paper's
    domain-label variant) or anywhere in the batch (``random``). A pair's PPL and XPL maps share
    partner and weight. Only in training steps; prediction and features are ERM's. ResNet backbones
    only. The draws come from the algorithm's own generator (:attr:`ERM.mix_generator`).

    ERM's own MixStyle layers (``mixstyle_after``, random partners, one draw per layer and forward,
    the CPU recipe's) are the same operation; the ``mixstyle`` method's config turns them off so that
    only this algorithm's cross-river mixing is applied.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {
        **ERM.DEFAULT_HPARAMS,
        "mixstyle_p": 0.5,
        "mixstyle_alpha": 0.1,
        "mixstyle_layers": ["layer1", "layer2"],
        "mixstyle_mix": "crossdomain",  # crossdomain | random
    }

    def build_modules(self) -> None:
        super().build_modules()
        if self.hparams["mixstyle_mix"] not in ("crossdomain", "random"):
            raise ValueError(
                f"MixStyle: mixstyle_mix {self.hparams['mixstyle_mix']!r}; expected crossdomain or random"
            )
        self._mixing: tuple[Tensor, Tensor] | None = None
        encoder = self.network.encoder
        extractors = [encoder.encoder] if encoder.shared else [encoder.plane_encoder, encoder.cross_encoder]
        for extractor in extractors:
            for name in self.hparams["mixstyle_layers"]:
                layer = getattr(extractor, name, None)
                if not isinstance(layer, nn.Module):
                    raise ValueError(
                        f"MixStyle: the {self.backbone_name} encoder has no stage {name!r} (ResNets only)"
                    )
                layer.register_forward_hook(self._mix_hook)

    def _mix_hook(self, module: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> Tensor | None:
        if self._mixing is None or not module.training:
            return None
        partner, weight = self._mixing
        if len(output) == 2 * len(partner):  # a shared encoder's [plane; cross] batch
            partner = torch.cat([partner, partner + len(partner)])
            weight = weight.repeat(2)
        return mix_instance_statistics(output, partner, weight)

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        domains = batch["domain"]
        generator = self.mix_generator
        mixed = float(torch.rand((), generator=generator)) < self.hparams["mixstyle_p"]
        if mixed:
            partner = (
                cross_domain_partners(domains, generator)
                if self.hparams["mixstyle_mix"] == "crossdomain"
                else torch.randperm(len(domains), generator=generator).to(domains.device)
            )
            weight = beta_sample(self.hparams["mixstyle_alpha"], len(domains), generator).to(domains.device)
            self._mixing = (partner, weight)
        try:
            class_loss, _, terms = self.classification_terms(batch)
        finally:
            self._mixing = None
        terms["mixed"] = float(mixed)
        return class_loss, terms


@register_algorithm("swad")
class SWAD(ERM):
    """SWAD (Cha et al., NeurIPS 2021): ERM's loss, L = CE(y_hat, y), and a dense average of the weights
    over the steps of a window of epochs chosen by the training rivers' validation loss; the engine
    callback :class:`san.training.swad.SWADAverager` keeps the average and puts it in place at the end.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {
        **ERM.DEFAULT_HPARAMS,
        "swad_tolerance": 0.3,  # epochs whose val loss is within (1 + r) of the lowest join the window
        "swad_bn_batches": 50,  # training batches for re-estimating BatchNorm statistics at the end
    }
