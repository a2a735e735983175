"""A torchvision ResNet fitted to small grain crops on a CPU: stem, width and MixStyle options.

At 64-96 px the ImageNet stem (7x7 stride-2 convolution, then a stride-2 max-pool) leaves a
16-24 px map for ``layer1``, and the last stage works on 2-3 px. Stems:

- ``imagenet``: torchvision's, unchanged.
- ``no-maxpool``: the stride-2 convolution without the max-pool (``layer1`` at side / 2).
- ``stride1``: a stride-1 first convolution and no max-pool (``layer1`` at full side; 4x the
  compute of ``no-maxpool``).

``width`` multiplies every stage's channels (64, 128, 256, 512 for ResNet-18): 0.5 gives a
half-width ResNet-18 of 2.8M parameters instead of 11.2M; the layers are built by torchvision's
own ``_make_layer`` and initialised as torchvision does. MixStyle layers (``san.models.mixstyle``)
may follow ``layer1`` and ``layer2``. Parameter names are torchvision's, so ImageNet weights load
into a width-1 model with any stem (the max-pool has no parameters).
"""

from __future__ import annotations

from collections.abc import Sequence

import torchvision
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from san.models.mixstyle import MixStyle

STEMS = ("imagenet", "no-maxpool", "stride1")
RESNET_LAYERS = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
}


class GrainResNet(torchvision.models.ResNet):
    """torchvision's ResNet with :data:`STEMS`, a width multiplier and optional MixStyle.

    Args:
        arch: ``resnet18``, ``resnet34`` or ``resnet50``.
        stem: one of :data:`STEMS`.
        width: channel multiplier of every stage (>0; channels are rounded, at least 8).
        mixstyle_after: stages (1, 2 or 3) followed by a MixStyle layer.
        mixstyle_p, mixstyle_alpha, mixstyle_groups, seed: see :class:`MixStyle`.

    The classification head ``fc`` is the identity: the output is the pooled feature vector
    (N x :attr:`feature_dim`).
    """

    def __init__(
        self,
        arch: str,
        *,
        stem: str = "imagenet",
        width: float = 1.0,
        mixstyle_after: Sequence[int] = (),
        mixstyle_p: float = 0.5,
        mixstyle_alpha: float = 0.1,
        mixstyle_groups: int = 1,
        seed: int = 0,
    ) -> None:
        if arch not in RESNET_LAYERS:
            raise ValueError(
                f"GrainResNet: unknown arch {arch!r}; expected one of {', '.join(RESNET_LAYERS)}"
            )
        if stem not in STEMS:
            raise ValueError(f"unknown stem {stem!r}; expected one of {', '.join(STEMS)}")
        if width <= 0:
            raise ValueError(f"width must be > 0, got {width}")
        if bad := [s for s in mixstyle_after if s not in (1, 2, 3)]:
            raise ValueError(f"mixstyle_after: stages must be 1, 2 or 3, got {bad}")
        block, layers = RESNET_LAYERS[arch]
        super().__init__(block, list(layers))
        if width != 1.0:
            self._rebuild(block, layers, width)
        if stem != "imagenet":
            self.maxpool = nn.Identity()
        if stem == "stride1":
            self.conv1.stride = (1, 1)
        self.feature_dim = self.fc.in_features
        self.fc = nn.Identity()
        self.mixstyles = nn.ModuleDict(
            {
                f"layer{stage}": MixStyle(mixstyle_p, mixstyle_alpha, mixstyle_groups, seed=seed + stage)
                for stage in sorted(set(mixstyle_after))
            }
        )

    def _rebuild(self, block: type[nn.Module], layers: Sequence[int], width: float) -> None:
        planes = [max(8, round(64 * width * 2**i)) for i in range(4)]
        self.inplanes = planes[0]
        self.conv1 = nn.Conv2d(3, planes[0], kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.layer1 = self._make_layer(block, planes[0], layers[0])
        self.layer2 = self._make_layer(block, planes[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, planes[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, planes[3], layers[3], stride=2)
        self.fc = nn.Linear(planes[3] * block.expansion, 1000)
        for module in self.modules():  # torchvision's initialisation
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def _forward_impl(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in (1, 2, 3, 4):
            x = getattr(self, f"layer{stage}")(x)
            if f"layer{stage}" in self.mixstyles:
                x = self.mixstyles[f"layer{stage}"](x)
        return self.fc(self.avgpool(x).flatten(1))
