"""SAN: the Siamese pair classifier trained adversarially against a domain discriminator (DANN)."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch.nn.functional as F
from torch import Tensor

from san.algorithms.base import Batch, accuracy
from san.algorithms.erm import ERM
from san.algorithms.hparam_space import Sampler, log_uniform
from san.algorithms.registry import register_algorithm
from san.models.gradient_reversal import GradientReversal, dann_lambda
from san.models.networks import DomainDiscriminator

logger = logging.getLogger(__name__)

ADVERSARY_HPARAMS: dict[str, Any] = {
    "adversary": True,  # False: no discriminator, identical to ERM
    "lambda_max": 1.0,  # limit of the gradient-reversal coefficient
    "gamma": 10.0,  # steepness of its warm-up, see san.models.gradient_reversal.dann_lambda
    "disc_hidden": 256,  # hidden width of the domain discriminator
    "disc_lr_mult": 1.0,  # the discriminator's learning rate = lr * disc_lr_mult
}


@register_algorithm("san")
class SAN(ERM):
    """Siamese Adversarial Network: ERM's network plus a domain discriminator behind gradient reversal.

    With fused features z (N x d_fused), class logits y_hat (N x C), labels y (N), source
    domains s (N, in [0, D)) and the discriminator G_d (z -> N x D logits):

        L = CE(y_hat, y) + CE(G_d(R_lambda(z)), s),   lambda = dann_lambda(progress)

    One backward pass of L trains G_d to recognise the source domain while the reversal
    trains the encoder and fusion to hide it (their gradient is grad L_y - lambda grad L_d).
    The discriminator's parameters are trained (the published code froze them). lambda is
    recomputed every step from the training progress.

    With fewer than two source domains, or ``adversary=False``, no discriminator is built:
    training is then exactly ERM's (same parameters, same random-number stream).
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {**ERM.DEFAULT_HPARAMS, **ADVERSARY_HPARAMS}
    HPARAM_SPACE: ClassVar[dict[str, Sampler]] = {
        **ERM.HPARAM_SPACE,
        "lambda_max": log_uniform(-1.0, 0.3),  # 0.1 to 2
        "disc_lr_mult": log_uniform(-0.5, 0.5),
    }

    def build_modules(self) -> None:
        super().build_modules()
        self.discriminator: DomainDiscriminator | None = None
        if not self.hparams["adversary"]:
            return
        if self.num_domains < 2:
            logger.warning("one source domain: training SAN without the adversary, identical to ERM")
            return
        self.gradient_reversal = GradientReversal(0.0)
        self.discriminator = DomainDiscriminator(
            self.network.fusion.out_features, self.num_domains, hidden=self.hparams["disc_hidden"]
        )

    def param_groups(self) -> list[dict[str, Any]]:
        if self.discriminator is None:
            return super().param_groups()
        return [
            {"params": list(self.network.parameters())},
            {
                "params": list(self.discriminator.parameters()),
                "lr": self.hparams["lr"] * self.hparams["disc_lr_mult"],
            },
        ]

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        class_loss, features, terms = self.classification_terms(batch)
        if self.discriminator is None:
            return class_loss, terms
        domains = batch["domain"]
        self._check_domains(domains)
        hp = self.hparams
        self.gradient_reversal.lambda_ = dann_lambda(progress, hp["lambda_max"], hp["gamma"])
        domain_logits = self.discriminator(self.gradient_reversal(features))
        domain_loss = F.cross_entropy(domain_logits, domains)
        terms.update(
            domain_loss=domain_loss.detach(),
            disc_acc=accuracy(domain_logits, domains),
            **{"lambda": self.gradient_reversal.lambda_},
        )
        return class_loss + domain_loss, terms

    def _check_domains(self, domains: Tensor) -> None:
        if len(domains) < 2:
            raise ValueError(
                "SAN: the domain discriminator's BatchNorm1d needs at least 2 samples per "
                "training batch, got 1 (use drop_last=True in the training DataLoader)"
            )
        if int(domains.min()) < 0 or int(domains.max()) >= self.num_domains:
            raise ValueError(
                f"SAN: batch domains must be source-domain indices in [0, {self.num_domains}), "
                f"got values from {int(domains.min())} to {int(domains.max())}"
            )
