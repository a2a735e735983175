"""Torchvision backbones: feature extractors and full classifiers, from scratch or from weights.

Weights come from torchvision's weights API (``pretrained=True``, needs internet or a warm
torch hub cache) or from a local torchvision-format state dict (``weights=path``). Keys of the
ImageNet head (``fc.*``, ``classifier.*``) that the model does not have, or that have another
shape (another number of classes), are dropped and reported; any other mismatch is an error.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from san.models.grain_resnet import GrainResNet
from san.safe_load import load_plain_torch

logger = logging.getLogger(__name__)

BACKBONES = ("resnet18", "resnet34", "resnet50", "vgg16", "vgg16_bn")
TIMM_PREFIX = "timm:"  # ``timm:<model name>``: built by san.models.timm_backbones
# Parameters of the ImageNet classification heads: the only keys allowed not to fit.
HEAD_PREFIXES = ("fc.", "classifier.")
_VGG_CONFIG = {"vgg16": ("D", False), "vgg16_bn": ("D", True)}  # torchvision's layer table, batch norm


def build_feature_extractor(
    arch: str,
    *,
    pretrained: bool = False,
    weights: str | Path | None = None,
    img_size: int | None = None,
    tokens: bool = False,
    stem: str = "imagenet",
    width: float = 1.0,
    mixstyle_after: Sequence[int] = (),
    mixstyle: Mapping[str, float | int] | None = None,
) -> tuple[nn.Module, int]:
    """A backbone mapping images N x 3 x H x W to globally average-pooled features N x d.

    ``timm:<model name>`` builds a timm model instead
    (:func:`san.models.timm_backbones.build_timm_feature_extractor`, which uses ``img_size`` and
    ``tokens``).

    ResNets are torchvision's models (:class:`san.models.grain_resnet.GrainResNet`, identical to
    torchvision's with the default stem and width) with ``fc`` replaced by the identity (d = 512
    x width for resnet18/34, 2048 x width for resnet50); VGGs are torchvision's convolutional
    ``features`` followed by a global average pool (d = 512), without the 120M-parameter classifier.

    Args:
        arch: one of :data:`BACKBONES`, or ``timm:<model name>``.
        pretrained: start from torchvision's default ImageNet weights.
        weights: path to a local torchvision-format state dict; takes precedence over
            ``pretrained``.
        img_size: the input side; only timm models of a fixed input size use it.
        tokens: only spatial tokens will be taken (timm models then drop their pooled head).
        stem, width, mixstyle_after: ResNets only, see :class:`~san.models.grain_resnet.GrainResNet`.
        mixstyle: keyword arguments of the MixStyle layers (``mixstyle_p``, ``mixstyle_alpha``,
            ``mixstyle_groups``, ``seed``).

    Returns:
        (module, d).

    Raises:
        ValueError: unknown arch, or a state dict that does not fit the architecture.
        FileNotFoundError: ``weights`` does not exist.
        RuntimeError: the torchvision weights cannot be downloaded.
    """
    if arch.startswith(TIMM_PREFIX):
        if stem != "imagenet" or width != 1.0 or mixstyle_after:
            raise ValueError(f"backbone {arch}: stem, width and MixStyle options apply to ResNets only")
        from san.models.timm_backbones import build_timm_feature_extractor  # timm is optional

        return build_timm_feature_extractor(
            arch, pretrained=pretrained, weights=weights, img_size=img_size, tokens=tokens
        )
    _check_arch(arch)
    if arch in _VGG_CONFIG:
        if stem != "imagenet" or width != 1.0 or mixstyle_after:
            raise ValueError(f"backbone {arch}: stem, width and MixStyle options apply to ResNets only")
        body: nn.Module = nn.Sequential(
            OrderedDict(features=_vgg_features(arch), pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten())
        )
        dim = 512
    else:
        body = GrainResNet(arch, stem=stem, width=width, mixstyle_after=mixstyle_after, **(mixstyle or {}))
        dim = body.feature_dim
    initialise_from_weights(body, arch, pretrained=pretrained, weights=weights)
    return body, dim


def build_classifier_model(
    arch: str,
    num_classes: int,
    *,
    pretrained: bool = False,
    weights: str | Path | None = None,
    **model_kwargs: object,
) -> nn.Module:
    """Torchvision's full model with a ``num_classes`` head (e.g. VGG's 4096-4096 classifier).

    Args:
        arch: one of :data:`BACKBONES`.
        num_classes: outputs of the last layer (randomly initialised unless the weights fit).
        pretrained, weights: as in :func:`build_feature_extractor`.
        **model_kwargs: passed to the torchvision constructor (e.g. ``dropout`` for VGG).

    Returns:
        The torchvision model.

    Raises:
        as :func:`build_feature_extractor`.
    """
    _check_arch(arch)
    model = torchvision.models.get_model(arch, weights=None, num_classes=num_classes, **model_kwargs)
    initialise_from_weights(model, arch, pretrained=pretrained, weights=weights)
    return model


def initialise_from_weights(
    module: nn.Module, arch: str, *, pretrained: bool, weights: str | Path | None
) -> str | None:
    """Load the requested weights (if any) into ``module`` and log where it starts from.

    Returns:
        A description of the weights loaded, or None when the module is trained from scratch.

    Raises:
        as :func:`build_feature_extractor`.
    """
    if weights:
        path = Path(weights)
        state = _read_state_dict(path, arch)
        source = f"weights from {path}"
        if pretrained:
            source += " (the weights file takes precedence over pretrained: true)"
    elif pretrained:
        state, source = _download_torchvision_state(arch)
    else:
        logger.info("backbone %s: trained from scratch (no pretrained weights)", arch)
        return None
    dropped = load_fitting_state_dict(module, state, source=source)
    if dropped:
        source += f"; dropped {len(dropped)} head key(s) that do not fit: {', '.join(dropped)}"
    logger.info("backbone %s: %s", arch, source)
    return source


def load_fitting_state_dict(
    module: nn.Module,
    state: Mapping[str, Tensor],
    *,
    source: str,
    head_prefixes: tuple[str, ...] = HEAD_PREFIXES,
) -> list[str]:
    """Load ``state`` into ``module``, dropping head keys (``head_prefixes``) that do not fit.

    A head key does not fit when the module has no such key or a tensor of another shape
    (an ImageNet head against a 12-class one); head keys the state lacks keep their random
    initialisation.

    Returns:
        The dropped keys, sorted.

    Raises:
        ValueError: a non-head key is missing, unexpected or of another shape; the message
            names ``source`` and the offending keys.
    """
    own = module.state_dict()
    unexpected = [key for key in state if key not in own]
    missing = [key for key in own if key not in state]
    mis_shaped = [key for key in state if key in own and tuple(state[key].shape) != tuple(own[key].shape)]
    problems = {
        "missing": [key for key in missing if not key.startswith(head_prefixes)],
        "unexpected": [key for key in unexpected if not key.startswith(head_prefixes)],
        "of another shape": [key for key in mis_shaped if not key.startswith(head_prefixes)],
    }
    if any(problems.values()):
        details = "; ".join(
            f"{kind}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for kind, keys in problems.items()
            if keys
        )
        raise ValueError(
            f"{source}: the state dict does not fit the model ({details}); "
            f"expected a state dict of the same architecture"
        )
    dropped = sorted(unexpected + mis_shaped)
    module.load_state_dict({key: value for key, value in state.items() if key not in dropped}, strict=False)
    return dropped


def widen_first_conv(module: nn.Module, in_channels: int, *, copy_weights: bool) -> None:
    """Replace the first convolution of ``module`` by one taking ``in_channels`` channels.

    With ``copy_weights`` the old filters W (out x c x k x k) are tiled along the input axis
    and divided by the number of copies, so that identical images in every c-channel group
    give the old response: used to feed a pretrained RGB network two stacked images. Otherwise
    the new filters get torchvision's ResNet/VGG initialisation (Kaiming normal, fan-out).

    Raises:
        ValueError: ``module`` has no convolution, or ``in_channels`` is not a multiple of
            its current input channels when copying.
    """
    name, conv = next(
        ((name, m) for name, m in module.named_modules() if isinstance(m, nn.Conv2d)), (None, None)
    )
    if conv is None:
        raise ValueError(f"{type(module).__name__} has no Conv2d layer to widen")
    wide = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        if copy_weights:
            copies, remainder = divmod(in_channels, conv.in_channels)
            if remainder:
                raise ValueError(
                    f"cannot tile {conv.in_channels}-channel filters into {in_channels} channels"
                )
            wide.weight.copy_(conv.weight.repeat(1, copies, 1, 1) / copies)
            if conv.bias is not None:
                wide.bias.copy_(conv.bias)
        else:
            nn.init.kaiming_normal_(wide.weight, mode="fan_out", nonlinearity="relu")
            if wide.bias is not None:
                nn.init.zeros_(wide.bias)
    parent_name, _, child_name = name.rpartition(".")
    setattr(module.get_submodule(parent_name), child_name, wide)


def _check_arch(arch: str) -> None:
    if arch not in BACKBONES:
        raise ValueError(
            f"unknown backbone {arch!r}; expected one of {', '.join(BACKBONES)} or timm:<model name>"
        )


def _vgg_features(arch: str) -> nn.Sequential:
    """VGG's convolutional part alone, initialised as torchvision's ``VGG`` does.

    Building ``torchvision.models.vgg16_bn`` and discarding its classifier would spend ~2 s
    initialising 120M unused parameters on every build.
    """
    config, batch_norm = _VGG_CONFIG[arch]
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs[config], batch_norm=batch_norm)
    for layer in features.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.kaiming_normal_(layer.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.ones_(layer.weight)
            nn.init.zeros_(layer.bias)
    return features


def _read_state_dict(path: Path, arch: str) -> Mapping[str, Tensor]:
    if not path.is_file():
        raise FileNotFoundError(
            f"backbone {arch}: weights file {path} does not exist "
            f"(expected a torchvision state dict saved with torch.save)"
        )
    state = load_plain_torch(path, what=f"backbone {arch} weights file")
    if not isinstance(state, Mapping) or not all(isinstance(value, Tensor) for value in state.values()):
        raise ValueError(
            f"backbone {arch}: {path} does not hold a state dict (a mapping of parameter "
            f"names to tensors), got {type(state).__name__}"
        )
    return state


def _download_torchvision_state(arch: str) -> tuple[Mapping[str, Tensor], str]:
    default = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        state = default.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError, timeouts and SSL errors are OSErrors
        raise RuntimeError(
            f"backbone {arch}: could not download torchvision's pretrained weights {default} ({error}). "
            f"Without internet, fetch them on another machine (torchvision.models.get_model_weights("
            f"'{arch}').DEFAULT.get_state_dict()), save them with torch.save and set "
            f"`weights: /path/to/state_dict.pt` instead of `pretrained: true`"
        ) from error
    return state, f"torchvision weights {default}"
