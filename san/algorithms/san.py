"""SAN: the Siamese pair classifier trained adversarially against a marginal domain discriminator (DANN)."""

from __future__ import annotations

from typing import Any, ClassVar

from san.algorithms.adversary import ADVERSARY_HPARAMS, DomainAdversary
from san.algorithms.hparam_space import Sampler
from san.algorithms.registry import register_algorithm

__all__ = ["ADVERSARY_HPARAMS", "SAN"]


@register_algorithm("san")
class SAN(DomainAdversary):
    """Siamese Adversarial Network: ERM's network plus a marginal domain discriminator G_d(a).

    With attached features a (``attach``: fused z or [f_p ; f_c]), class logits y_hat (N x C),
    labels y (N) and source domains s (N, in [0, D)):

        L = CE(y_hat, y) + (1 / N) sum_i CE(G_d(R_lambda(a_i)), s_i)

    G_d recognises the source river while the reversal trains the encoder to hide it (gradient
    grad L_y - lambda grad L_d). The discriminator is trained (the published code froze it). G_d
    does not see the class: when the rivers' class mixes differ, hiding the river from it also
    hides class information (see :class:`san.algorithms.cdann.CDANN`). Knobs, logging and the
    alternation: :mod:`san.algorithms.adversary`.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = dict(DomainAdversary.DEFAULT_HPARAMS)
    HPARAM_SPACE: ClassVar[dict[str, Sampler]] = dict(DomainAdversary.HPARAM_SPACE)
