"""timm backbones: any timm model as a feature extractor, named ``timm:<model name>``.

``hparams.backbone: timm:convnext_atto`` or ``timm:vit_tiny_patch16_224`` builds
``timm.create_model(name, pretrained=False, num_classes=0)``: the model without its classifier,
whose forward returns timm's pooled pre-logit features (N x d, d = ``model.num_features``).
Models of a fixed input size (ViT, Swin, ...; timm's ``fixed_input_size``) are built for
``img_size``, the run's input side, so that their position embeddings fit.

Weights are never downloaded. A model starts from scratch unless ``weights`` names a local state
dict (saved with ``torch.save``, or a ``.safetensors`` file as timm's hub ships them); the model's
own ``checkpoint_filter_fn``, where timm has one, adapts it (e.g. resamples a ViT's position
embeddings to ``img_size``) and classifier keys are dropped. timm is an optional dependency:
``pip install 'heavy-minerals-san[timm]'``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from san.models.backbones import TIMM_PREFIX, _read_state_dict, load_fitting_state_dict

logger = logging.getLogger(__name__)


class TimmBackbone(nn.Module):
    """A timm model without its classifier.

    ``forward(x)``: images N x 3 x H x W -> pooled features N x d (timm's pre-logits,
    d = ``head_hidden_size``).
    ``tokens(x)``: N x T x d spatial tokens (d = ``num_features``): a transformer's tokens (class and
    other prefix tokens included), or a CNN's last feature map h x w flattened to T = h w tokens.

    Args:
        model: the timm model (``num_classes=0``).
        tokens: only ``tokens`` will be used: the pooled head (e.g. ConvNeXt's norm after pooling,
            MobileNetV3's 1x1 convolution) is pruned, since its parameters would get no gradient.

    Attributes:
        feature_dim: d of what the backbone is used for (pooled features, or tokens).
    """

    def __init__(self, model: nn.Module, *, tokens: bool = False) -> None:
        super().__init__()
        if tokens and hasattr(model, "prune_intermediate_layers"):
            model.prune_intermediate_layers(indices=1, prune_norm=False, prune_head=True)
        self.model = model
        pooled_dim = getattr(model, "head_hidden_size", None) or model.num_features
        self.feature_dim = int(model.num_features if tokens else pooled_dim)

    def forward(self, images: Tensor) -> Tensor:
        return self.model(images)

    def tokens(self, images: Tensor) -> Tensor:
        """N x T x d tokens from ``forward_features``.

        Raises:
            ValueError: the model's features are neither N x T x d nor a 4-D feature map of d channels.
        """
        features = self.model.forward_features(images)
        if features.ndim == 4:
            channels_last = getattr(self.model, "output_fmt", "NCHW") == "NHWC"
            features = features.flatten(1, 2) if channels_last else features.flatten(2).transpose(1, 2)
        if features.ndim != 3 or features.shape[-1] != self.feature_dim:
            raise ValueError(
                f"timm model {type(self.model).__name__}: forward_features gave shape "
                f"{tuple(features.shape)}; expected N x T x {self.feature_dim} tokens or a feature map"
            )
        return features


def _timm() -> Any:
    try:
        import timm
    except ImportError as error:  # optional dependency
        raise ImportError(
            "timm backbones need the timm package: pip install 'heavy-minerals-san[timm]' (or timm itself)"
        ) from error
    return timm


def _read_weights(path: Path, arch: str) -> Mapping[str, Tensor]:
    if path.suffix == ".safetensors" and path.is_file():
        from safetensors.torch import load_file  # installed with timm

        return load_file(path)
    return _read_state_dict(path, arch)


def _head_prefixes(model: nn.Module) -> tuple[str, ...]:
    """Key prefixes of the model's classifier(s), from timm's config (e.g. ``head.fc.``, ``head.``)."""
    classifier = model.pretrained_cfg.get("classifier") or ()
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier)
    return tuple(f"{name}." for name in names) or ("head.", "fc.", "classifier.")


def build_timm_feature_extractor(
    arch: str,
    *,
    pretrained: bool = False,
    weights: str | Path | None = None,
    img_size: int | None = None,
    tokens: bool = False,
) -> tuple[TimmBackbone, int]:
    """The timm model ``arch`` (``timm:<name>``) as a feature extractor N x 3 x H x W -> N x d.

    Args:
        arch: ``timm:`` followed by any name ``timm.list_models()`` knows.
        pretrained: must be False unless ``weights`` is given (nothing is downloaded).
        weights: a local state dict (``.pt``/``.pth`` or ``.safetensors``) of that model.
        img_size: input side; passed to models of a fixed input size, ignored by the others.
        tokens: only spatial tokens will be used (see :class:`TimmBackbone`).

    Returns:
        (module, d).

    Raises:
        ImportError: timm is not installed.
        ValueError: unknown model name; ``pretrained`` without ``weights``; weights that do not fit.
        FileNotFoundError: ``weights`` does not exist.
    """
    timm = _timm()
    name = arch.removeprefix(TIMM_PREFIX)
    if not timm.is_model(name):
        close = timm.list_models(f"*{name[:6]}*")[:8]
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise ValueError(f"backbone {arch!r}: timm has no model {name!r} (see timm.list_models()){hint}")
    if pretrained and not weights:
        raise ValueError(
            f"backbone {arch}: pretrained: true, but timm weights are never downloaded here; save the "
            f"model's state dict on a machine that has it and set `weights: /path/to/state_dict` "
            f"(.pt, .pth or .safetensors)"
        )
    config = timm.models.get_pretrained_cfg(name)
    options: dict[str, Any] = {}
    if img_size and config is not None and config.fixed_input_size:
        options["img_size"] = int(img_size)
    model = timm.create_model(name, pretrained=False, num_classes=0, **options)
    size_note = f" at img_size {options['img_size']}" if options else ""
    if weights:
        path = Path(weights)
        state = dict(_read_weights(path, arch))
        filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
        if filter_fn is not None:
            state = filter_fn(state, model)
        source = f"weights from {path}"
        dropped = load_fitting_state_dict(model, state, source=source, head_prefixes=_head_prefixes(model))
        if dropped:
            source += f"; dropped {len(dropped)} classifier key(s): {', '.join(dropped)}"
        logger.info("backbone %s%s: %s (nothing downloaded)", arch, size_note, source)
    else:
        logger.info(
            "backbone %s%s: trained from scratch (timm weights are never downloaded; "
            "set weights: PATH to start from a local state dict)",
            arch,
            size_note,
        )
    backbone = TimmBackbone(model, tokens=tokens)
    return backbone, backbone.feature_dim
