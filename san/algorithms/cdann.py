"""CDANN: a class-conditional domain adversary for rivers whose class mixes differ (label shift)."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from san.algorithms.adversary import DomainAdversary, class_domain_balance, entropy_weights
from san.algorithms.registry import register_algorithm
from san.models.networks import CONDITIONINGS, ConditionalDomainDiscriminator

CONDITIONAL_HPARAMS: dict[str, Any] = {
    "conditioning": "embedding",  # embedding: G_d(a + E[y]) (CDANN) | multilinear: G_d(p (x) a) (CDAN)
    "class_domain_balance": True,  # even domain mix per class; classes of < 2 source rivers get weight 0
    "entropy_weighting": True,  # multilinear only: CDAN+E's w = 1 + exp(-H(p))
}


@register_algorithm("cdann")
class CDANN(DomainAdversary):
    """Class-conditional adversary: G_d sees the class, and the domain loss is balanced per class.

    With attached features a (N x d), labels y, class probabilities p = softmax(y_hat) (detached),
    source domains s and the batch distribution P(y, s) from the engine:

        embedding:    d_hat = G_d(R_lambda(a) + E[y])                   (Li et al., ECCV 2018)
        multilinear:  d_hat = G_d(p (x) R_lambda(a))                     (Long et al., NeurIPS 2018)
        L_d = (1 / N) sum_i w_i CE(d_hat_i, s_i),  w_i = W(y_i, s_i) [x (1 + exp(-H(p_i))), CDAN+E]
        L   = CE(y_hat, y) + L_d

    W = :func:`san.algorithms.adversary.class_domain_balance`: within each class the rivers weigh the
    same, and a class present in fewer than two source rivers is left out of L_d (its river is
    known from the class alone). The features are thus asked for P(s | a, y) = P_W(s | y), not for
    P(s | a) = P(s), which the label shift makes impossible without losing class information.
    Chance for the discriminator is then H_W(s | y) (``domain_loss_chance``; ln 2 with two sources).
    Everything else (attach point, schedule, optimizer, alternation): :mod:`san.algorithms.adversary`.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {**DomainAdversary.DEFAULT_HPARAMS, **CONDITIONAL_HPARAMS}
    conditional: ClassVar[bool] = True

    def build_discriminator(self, in_features: int) -> nn.Module:
        if self.hparams["conditioning"] not in CONDITIONINGS:
            raise ValueError(
                f"CDANN: conditioning {self.hparams['conditioning']!r}; "
                f"expected one of {', '.join(CONDITIONINGS)}"
            )
        return ConditionalDomainDiscriminator(
            in_features,
            self.num_classes,
            self.num_domains,
            hidden=self.hparams["disc_hidden"],
            conditioning=self.hparams["conditioning"],
        )

    def discriminate(self, features: Tensor, logits: Tensor, labels: Tensor) -> Tensor:
        return self.discriminator(features, labels, logits.detach().softmax(dim=1).to(features.dtype))

    def domain_weights(self, joint: Tensor) -> Tensor:
        return (
            class_domain_balance(joint)
            if self.hparams["class_domain_balance"]
            else super().domain_weights(joint)
        )

    def sample_weights(self, logits: Tensor, labels: Tensor, domains: Tensor, joint: Tensor) -> Tensor:
        weights = super().sample_weights(logits, labels, domains, joint)
        if self.hparams["conditioning"] == "multilinear" and self.hparams["entropy_weighting"]:
            weights = weights * entropy_weights(logits)
        return weights
