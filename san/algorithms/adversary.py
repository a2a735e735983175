"""A domain adversary on the Siamese pair classifier, observable and with the knobs to make it play.

Shared by SAN (marginal, DANN) and CDANN (class-conditional). Notation as in
:mod:`san.models.networks`; a = the attached features (``attach``: the fused z, N x d_fused, or the
published position [f_p ; f_c], N x 2d), s = source domains (N), w = per-sample domain-loss
weights (1 for the marginal adversary), lambda from :func:`san.models.gradient_reversal.adversary_lambda`:

    L_d = (1 / N) sum_i w_i CE(G_d(R_lambda(a_i)), s_i)
    L   = CE(y_hat, y) + L_d

- ``d_steps_per_g_step = 0``: one backward pass of L trains G_d on L_d while the reversal gives
  the encoder grad L_y - lambda grad L_d (the default).
- ``d_steps_per_g_step = k >= 1`` (DomainBed's alternation): of every k + 1 batches, k train G_d
  alone on L_d of detached features, then one trains the encoder and class head on
  L_y - lambda L_d with G_d frozen.
- ``disc_optimizer``: ``shared`` puts G_d in a parameter group of the main optimizer (its lr times
  ``disc_lr_mult``, under the engine's schedule); ``adam`` gives it its own Adam (lr times
  ``disc_lr_mult``, betas (``disc_beta1``, 0.999), constant lr: DomainBed uses beta1 = 0.5).

With ERM's Mixup/CutMix on (``mixup_alpha``, ``cutmix_alpha``), the class loss is ERM's mixed one
and each mixed row keeps its own river (and, for a conditional adversary, its own class) in L_d.

Logged every step (the engine averages them per epoch) beside ``domain_loss`` and ``disc_acc``
(weighted like L_d): ``domain_loss_chance`` and ``disc_acc_chance``, what G_d reaches from its
non-feature inputs alone (the marginal adversary: nothing, so H(s) = ln D with domain-balanced
batches; a conditional one: the class, so H(s | y)), and ``domain_loss_class_only`` and
``disc_acc_class_only``, what the class alone gives: with label shift between the rivers a
marginal discriminator can beat ln D through the class mix, so features that hide the river
must also hide some of the class. Both come from the batch distribution P(y, s) the engine
passes in (:meth:`set_training_distribution`), under the weights w.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from san.algorithms.base import Batch
from san.algorithms.erm import ERM
from san.algorithms.hparam_space import Sampler, log_uniform
from san.models.gradient_reversal import LAMBDA_SCHEDULES, GradientReversal, adversary_lambda
from san.models.networks import DomainDiscriminator

logger = logging.getLogger(__name__)

ATTACH_POINTS = ("fused", "concat")
DISC_OPTIMIZERS = ("shared", "adam")
ADVERSARY_HPARAMS: dict[str, Any] = {
    "adversary": True,  # False: no discriminator, identical to ERM
    "lambda_max": 1.0,  # limit of the gradient-reversal coefficient
    "lambda_schedule": "dann",  # dann (sigmoid warm-up) | linear | constant
    "gamma": 10.0,  # steepness of the dann warm-up
    "lambda_delay": 0.0,  # share of training with lambda = 0 before the schedule starts
    "attach": "fused",  # fused: z, what the class head sees | concat: [f_p ; f_c] (published position)
    "disc_hidden": 256,  # hidden width of the domain discriminator
    "disc_optimizer": "shared",  # shared: a group of the main optimizer | adam: its own Adam
    "disc_lr_mult": 1.0,  # the discriminator's learning rate = lr * disc_lr_mult
    "disc_beta1": 0.5,  # adam only (DomainBed's value)
    "disc_weight_decay": 0.0,  # adam only
    "d_steps_per_g_step": 0,  # 0: joint step through gradient reversal; k: DomainBed's alternation
}


def domain_baselines(joint: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    """Losses and accuracies a domain discriminator reaches without features.

    With the batch distribution P(y, s) (C x D) and per-(class, domain) loss weights W, the loss is
    an expectation under Q(y, s) proportional to P(y, s) W(y, s). Returns ``loss_constant`` = H_Q(s),
    ``loss_class_only`` = H_Q(s | y) (nats), ``acc_constant`` = max_s Q(s) and ``acc_class_only`` =
    sum_y max_s Q(y, s).
    """
    q = np.asarray(joint, dtype=float) * np.asarray(weights, dtype=float)
    total = q.sum()
    if total <= 0:
        return {"loss_constant": 0.0, "loss_class_only": 0.0, "acc_constant": 1.0, "acc_class_only": 1.0}
    q = q / total
    marginal = q.sum(axis=0)
    per_class = q.sum(axis=1, keepdims=True)
    conditional = np.divide(q, per_class, out=np.zeros_like(q), where=per_class > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        h_marginal = -np.nansum(np.where(marginal > 0, marginal * np.log(marginal), 0.0))
        h_conditional = -np.nansum(np.where(q > 0, q * np.log(conditional), 0.0))
    return {
        "loss_constant": float(h_marginal),
        "loss_class_only": float(h_conditional),
        "acc_constant": float(marginal.max()),
        "acc_class_only": float(q.max(axis=1).sum()),
    }


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Parameters of ``module`` take no gradient from the graph built inside the block."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


class DomainAdversary(ERM):
    """ERM's network plus a domain discriminator behind gradient reversal (see the module docstring).

    Subclasses choose the discriminator (:meth:`build_discriminator`, :meth:`discriminate`) and the
    weights w (:meth:`domain_weights`, :meth:`sample_weights`); :attr:`conditional` says whether G_d
    sees the class. With fewer than two source domains, or ``adversary=False``, no discriminator is
    built: training is then exactly ERM's (same parameters, same random-number stream).
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {**ERM.DEFAULT_HPARAMS, **ADVERSARY_HPARAMS}
    HPARAM_SPACE: ClassVar[dict[str, Sampler]] = {
        **ERM.HPARAM_SPACE,
        "lambda_max": log_uniform(-1.0, 0.3),  # 0.1 to 2
        "disc_lr_mult": log_uniform(-0.5, 0.5),
    }
    conditional: ClassVar[bool] = False

    def build_modules(self) -> None:
        super().build_modules()
        self._check_adversary_hparams()
        self.discriminator: nn.Module | None = None
        self.disc_optimizer: torch.optim.Optimizer | None = None
        self.adversary_steps = 0
        # P(class, domain) of a batch draw; zero until the engine sets it (then batch counts stand in).
        self.register_buffer(
            "batch_distribution", torch.zeros(self.num_classes, self.num_domains), persistent=False
        )
        if not self.hparams["adversary"]:
            return
        if self.num_domains < 2:
            logger.warning(
                "one source domain: training %s without the adversary, identical to ERM", type(self).__name__
            )
            return
        self.gradient_reversal = GradientReversal(0.0)
        self.discriminator = self.build_discriminator(self.attach_dim)
        hp = self.hparams
        if hp["disc_optimizer"] == "adam":
            self.disc_optimizer = torch.optim.Adam(
                self.discriminator.parameters(),
                lr=hp["lr"] * hp["disc_lr_mult"],
                betas=(hp["disc_beta1"], 0.999),
                weight_decay=hp["disc_weight_decay"],
            )

    def _check_adversary_hparams(self) -> None:
        hp = self.hparams
        choices = {
            "attach": ATTACH_POINTS,
            "disc_optimizer": DISC_OPTIMIZERS,
            "lambda_schedule": LAMBDA_SCHEDULES,
        }
        for key, allowed in choices.items():
            if hp[key] not in allowed:
                raise ValueError(
                    f"{type(self).__name__}: {key} {hp[key]!r}; expected one of {', '.join(allowed)}"
                )
        if int(hp["d_steps_per_g_step"]) < 0 or not 0.0 <= hp["lambda_delay"] < 1.0:
            raise ValueError(
                f"{type(self).__name__}: d_steps_per_g_step must be >= 0 and lambda_delay in [0, 1), "
                f"got {hp['d_steps_per_g_step']} and {hp['lambda_delay']}"
            )

    @property
    def attach_dim(self) -> int:
        """Width of the attached features a."""
        if self.hparams["attach"] == "concat":
            return 2 * self.network.encoder.feature_dim
        return self.network.fusion.out_features

    # --- what subclasses choose -----------------------------------------------------------------
    def build_discriminator(self, in_features: int) -> nn.Module:
        """G_d over the attached features (marginal: :class:`DomainDiscriminator`)."""
        return DomainDiscriminator(in_features, self.num_domains, hidden=self.hparams["disc_hidden"])

    def discriminate(self, features: Tensor, logits: Tensor, labels: Tensor) -> Tensor:  # noqa: ARG002
        """Domain logits N x D of the (reversed) attached features; conditional adversaries use the class."""
        return self.discriminator(features)

    def domain_weights(self, joint: Tensor) -> Tensor:
        """Per-(class, domain) weights W (C x D) of the domain loss; all 1 for the marginal adversary."""
        return torch.ones_like(joint)

    def sample_weights(self, logits: Tensor, labels: Tensor, domains: Tensor, joint: Tensor) -> Tensor:  # noqa: ARG002
        """w_i = W(y_i, s_i) (N)."""
        return self.domain_weights(joint)[labels, domains]

    # --- training --------------------------------------------------------------------------------
    def param_groups(self) -> list[dict[str, Any]]:
        if self.discriminator is None or self.disc_optimizer is not None:
            return [{"params": list(self.network.parameters())}]
        return [
            {"params": list(self.network.parameters())},
            {
                "params": list(self.discriminator.parameters()),
                "lr": self.hparams["lr"] * self.hparams["disc_lr_mult"],
            },
        ]

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer] + ([self.disc_optimizer] if self.disc_optimizer is not None else [])

    def set_training_distribution(self, joint: np.ndarray) -> None:
        self.batch_distribution.copy_(torch.as_tensor(np.asarray(joint), dtype=torch.float32))

    def _joint(self, labels: Tensor, domains: Tensor) -> Tensor:
        if float(self.batch_distribution.sum()) > 0:
            return self.batch_distribution
        counts = torch.zeros_like(self.batch_distribution)
        counts.index_put_((labels, domains), torch.ones_like(labels, dtype=counts.dtype), accumulate=True)
        return counts / counts.sum()

    def phase(self, progress: float) -> str:  # noqa: ARG002
        """What the coming step trains: ``joint`` (everything, through the reversal), or under
        alternation ``discriminator`` (G_d alone) / ``encoder`` (the network, G_d frozen); a staged
        protocol may also answer ``classifier`` (the network on L_y alone)."""
        k = int(self.hparams["d_steps_per_g_step"])
        if k == 0:
            return "joint"
        return "discriminator" if self.adversary_steps % (k + 1) < k else "encoder"

    def reversal_coefficient(self, progress: float) -> float:
        """lambda at training progress p (:func:`san.models.gradient_reversal.adversary_lambda`)."""
        hp = self.hparams
        return adversary_lambda(
            progress, hp["lambda_max"], hp["lambda_schedule"], hp["gamma"], hp["lambda_delay"]
        )

    def compute_loss(self, batch: Batch, progress: float) -> tuple[Tensor, dict[str, Tensor | float]]:
        if self.discriminator is None:
            return super().compute_loss(batch, progress)
        labels, domains = batch["label"], batch["domain"]
        self._check_domains(domains)
        phase = self.phase(progress)
        self.adversary_steps += 1
        lambda_ = self.reversal_coefficient(progress)
        with torch.no_grad() if phase == "discriminator" else nullcontext():
            class_loss, logits, (fused, branches) = self.classification_forward(batch, branches=True)
        attached = branches if self.hparams["attach"] == "concat" else fused
        if phase == "discriminator":
            domain_logits = self.discriminate(attached, logits, labels)
        elif phase == "classifier":  # G_d only watches: its loss is logged, nothing learns from it
            with torch.no_grad():
                domain_logits = self.discriminate(attached.detach(), logits, labels)
        else:
            self.gradient_reversal.lambda_ = lambda_
            with frozen(self.discriminator) if phase == "encoder" else nullcontext():
                domain_logits = self.discriminate(self.gradient_reversal(attached), logits, labels)
        joint = self._joint(labels, domains)
        weights = self.sample_weights(logits.detach(), labels, domains, joint)
        domain_loss = (weights * F.cross_entropy(domain_logits, domains, reduction="none")).mean()
        hits = (domain_logits.argmax(dim=1) == domains).float()
        terms: dict[str, Tensor | float] = {
            "class_loss": class_loss.detach(),
            "acc": (logits.argmax(dim=1) == labels).float().mean(),
            "domain_loss": domain_loss.detach(),
            "disc_acc": (weights * hits).sum() / weights.sum().clamp_min(1e-12),
            "lambda": lambda_,
            **self._baselines(joint),
        }
        losses = {"discriminator": domain_loss, "classifier": class_loss}
        return losses.get(phase, class_loss + domain_loss), terms

    def _baselines(self, joint: Tensor) -> dict[str, float]:
        weights = self.domain_weights(joint)
        found = domain_baselines(joint.detach().cpu().numpy(), weights.detach().cpu().numpy())
        loss_chance = found["loss_class_only"] if self.conditional else found["loss_constant"]
        acc_chance = found["acc_class_only"] if self.conditional else found["acc_constant"]
        return {
            "domain_loss_chance": loss_chance,
            "domain_loss_class_only": found["loss_class_only"],
            "disc_acc_chance": acc_chance,
            "disc_acc_class_only": found["acc_class_only"],
        }

    def training_state(self) -> dict[str, Any]:
        state = super().training_state()
        state["adversary"] = {
            "steps": self.adversary_steps,
            "disc_optimizer": None if self.disc_optimizer is None else self.disc_optimizer.state_dict(),
        }
        return state

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        super().load_training_state(state)
        adversary = state.get("adversary") or {}
        self.adversary_steps = int(adversary.get("steps", 0))
        if self.disc_optimizer is not None and adversary.get("disc_optimizer") is not None:
            self.disc_optimizer.load_state_dict(adversary["disc_optimizer"])

    def _check_domains(self, domains: Tensor) -> None:
        name = type(self).__name__
        if len(domains) < 2:
            raise ValueError(
                f"{name}: the domain discriminator's BatchNorm1d needs at least 2 samples per "
                "training batch, got 1 (use drop_last=True in the training DataLoader)"
            )
        if int(domains.min()) < 0 or int(domains.max()) >= self.num_domains:
            raise ValueError(
                f"{name}: batch domains must be source-domain indices in [0, {self.num_domains}), "
                f"got values from {int(domains.min())} to {int(domains.max())}"
            )


def class_domain_balance(joint: Tensor, min_domains: int = 2) -> Tensor:
    """Weights W (C x D) that give each class an even domain mix and drop classes of too few domains.

    With P(y, s) the batch distribution and D_y = #{s : P(y, s) > 0}:

        W(y, s) = P(y) / (D_y P(y, s))   if D_y >= min_domains and P(y, s) > 0, else 0,

    rescaled so that E_P[W] = 1. Under Q proportional to P W every kept class keeps its mass P(y) and
    spreads it evenly over its rivers, so the class no longer predicts the river.
    """
    present = joint > 0
    n_domains = present.sum(dim=1, keepdim=True)
    per_class = joint.sum(dim=1, keepdim=True)
    keep = present & (n_domains >= min_domains)
    weights = torch.where(
        keep, per_class / (n_domains.clamp_min(1) * joint.clamp_min(1e-12)), torch.zeros_like(joint)
    )
    mass = float((joint * weights).sum())
    return weights / mass if mass > 0 else weights


def entropy_weights(logits: Tensor) -> Tensor:
    """CDAN+E's w_i = 1 + exp(-H(p_i)) with p_i = softmax(logits_i), rescaled to mean 1 (N)."""
    probabilities = torch.softmax(logits.float(), dim=1)
    entropy = -(probabilities * torch.log(probabilities.clamp_min(1e-12))).sum(dim=1)
    weights = 1.0 + torch.exp(-entropy)
    return weights / weights.mean()
