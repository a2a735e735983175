"""A reproduction of the published SAN protocol, labelled as such: not a method to recommend.

The published release trained two separate ImageNet-style ResNet-18s (one per polarization), in
three stages, against a discriminator that was frozen while the encoders learned to fool it, and
chose its checkpoint on the target river. This algorithm reproduces the stages; the checkpoint
choice is the tables' ``oracle`` selection rule (``make_tables.py --selection oracle``), so the same
runs give both the honest figure (training-domain validation) and the published one.
"""

from __future__ import annotations

from typing import Any, ClassVar

from san.algorithms.registry import register_algorithm
from san.algorithms.san import SAN


@register_algorithm("published_san")
class PublishedSAN(SAN):
    """SAN under the published three-stage protocol; progress p in [0, 1] with stage ends
    f_1 <= f_2 (``stage_ends``):

        stage 1, p <  f_1:       L = CE(y_hat, y)                     the classifier alone
        stage 2, f_1 <= p < f_2: L = CE(G_d(a.detach()), s)            the discriminator alone
        stage 3, p >= f_2:       L = CE(y_hat, y) + CE(G_d(R_lambda(a)), s), G_d frozen,
                                 lambda = lambda_max                  adversarial fine-tuning

    with a = [f_p ; f_c], the concatenated features of two separate ResNet-18s (``attach: concat``,
    ``shared_encoder: false``; ``pretrained: true`` for ImageNet weights where torchvision can fetch
    them). In stage 3 the encoders are pushed to raise the loss of a discriminator that no longer
    learns, which the published code did with a discriminator that had never learned at all.
    """

    DEFAULT_HPARAMS: ClassVar[dict[str, Any]] = {
        **SAN.DEFAULT_HPARAMS,
        "shared_encoder": False,
        "attach": "concat",
        "stage_ends": [0.4, 0.6],
    }

    def build_modules(self) -> None:
        ends = self.hparams["stage_ends"]
        if len(ends) != 2 or not 0.0 <= ends[0] <= ends[1] <= 1.0:
            raise ValueError(
                f"PublishedSAN: stage_ends must be two fractions 0 <= f_1 <= f_2 <= 1, got {ends}"
            )
        super().build_modules()

    def phase(self, progress: float) -> str:
        first, second = self.hparams["stage_ends"]
        if progress < first:
            return "classifier"
        return "discriminator" if progress < second else "encoder"

    def reversal_coefficient(self, progress: float) -> float:
        return float(self.hparams["lambda_max"]) if self.phase(progress) == "encoder" else 0.0
