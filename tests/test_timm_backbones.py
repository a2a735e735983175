"""timm backbones and the cross-attention fusion on CPU at small inputs: shapes, NaNs, gradients."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file

from san.algorithms.registry import build_algorithm
from san.models.backbones import build_feature_extractor
from san.models.networks import (
    CrossAttentionFusion,
    PairClassifier,
    SiameseEncoder,
    build_fusion,
    feature_tokens,
    fusion_uses_tokens,
)

pytestmark = pytest.mark.usefixtures("single_torch_thread")

SIZE = 32
# Tiny timm models (timm's own test architectures, well under 1M parameters) and one real ViT.
TIMM_MODELS = ["timm:test_convnext", "timm:test_vit", "timm:vit_tiny_patch16_224"]


def _images(n: int = 2, size: int = SIZE, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def _assert_every_parameter_has_a_gradient(module: torch.nn.Module) -> None:
    missing = [name for name, p in module.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("arch", TIMM_MODELS)
def test_timm_extractor_gives_pooled_features_and_tokens_with_gradients(arch: str) -> None:
    torch.manual_seed(0)
    extractor, dim = build_feature_extractor(arch, img_size=SIZE)
    images = _images()
    pooled = extractor(images)
    tokens = feature_tokens(extractor, images)
    assert pooled.shape == (2, dim)
    assert tokens.ndim == 3 and tokens.shape[0] == 2 and tokens.shape[2] == dim and tokens.shape[1] >= 1
    assert torch.isfinite(pooled).all() and torch.isfinite(tokens).all()
    (pooled.square().mean() + tokens.square().mean()).backward()
    _assert_every_parameter_has_a_gradient(extractor)


def test_vit_is_built_for_the_input_size_and_a_cnn_ignores_it() -> None:
    vit, _ = build_feature_extractor("timm:test_vit", img_size=48)
    assert feature_tokens(vit, _images(size=48)).shape[1] == 1 + (48 // 16) ** 2  # class token + patches
    convnext, _ = build_feature_extractor("timm:test_convnext", img_size=48)  # no img_size argument
    assert feature_tokens(convnext, _images(size=64)).shape[1] == 4  # 64 / 32 = 2 x 2 map


def test_torchvision_tokens_are_the_last_feature_map() -> None:
    resnet, dim = build_feature_extractor("resnet18")
    tokens = feature_tokens(resnet.eval(), _images(size=64))
    assert tokens.shape == (2, 4, dim)  # 64 / 32 = 2 x 2 map of layer4
    with torch.no_grad():  # the mean of layer4's tokens is the pooled feature ResNet's forward returns
        torch.testing.assert_close(tokens.mean(dim=1), resnet(_images(size=64)))
    vgg, dim = build_feature_extractor("vgg16")
    assert feature_tokens(vgg, _images(size=64)).shape == (2, 4, dim)


@pytest.mark.parametrize(
    ("backbone", "shared"),
    [("resnet18", True), ("timm:test_vit", True), ("timm:test_convnext", False)],
)
def test_cross_attention_pair_classifier_trains_every_parameter(backbone: str, shared: bool) -> None:
    torch.manual_seed(0)
    encoder = SiameseEncoder(backbone, shared=shared, img_size=SIZE, tokens=True)
    fusion = build_fusion("cross_attention", encoder.feature_dim, 16, heads=4)
    network = PairClassifier(encoder, fusion, num_classes=3)
    logits, fused = network(_images(seed=1), _images(seed=2))
    assert logits.shape == (2, 3) and fused.shape == (2, 16)
    assert torch.isfinite(logits).all() and torch.isfinite(fused).all()
    logits.logsumexp(dim=1).mean().backward()
    _assert_every_parameter_has_a_gradient(network)


def test_each_polarization_attends_to_the_other() -> None:
    torch.manual_seed(0)
    fusion = CrossAttentionFusion(8, 4, heads=2).eval()
    plane, cross = torch.randn(2, 5, 8), torch.randn(2, 3, 8)  # token counts may differ
    with torch.no_grad():
        plane_attended, cross_attended = fusion.attended(plane, cross)
        changed_cross = fusion.attended(plane, cross + torch.randn(2, 3, 8))
        changed_plane = fusion.attended(plane + torch.randn(2, 5, 8), cross)
    assert plane_attended.shape == (2, 5, 8) and cross_attended.shape == (2, 3, 8)
    assert not torch.allclose(changed_cross[0], plane_attended)  # PPL queries read the XPL keys/values
    assert not torch.allclose(changed_plane[1], cross_attended)  # and vice versa
    assert fusion(plane, cross).shape == (2, 4)


def test_cross_attention_is_registered_beside_the_pooled_fusions() -> None:
    assert fusion_uses_tokens("cross_attention")
    assert not any(fusion_uses_tokens(name) for name in ("concat", "sum", "gate"))
    with pytest.raises(ValueError, match="multiple of fusion_heads"):
        build_fusion("cross_attention", 10, 4, heads=4)
    with pytest.raises(ValueError, match="N x T x d tokens"):
        build_fusion("cross_attention", 8, 4)(torch.randn(2, 8), torch.randn(2, 8))


@pytest.mark.parametrize(
    "hparams",
    [
        {"backbone": "timm:test_convnext"},
        {"backbone": "timm:test_vit", "fusion": "cross_attention"},
        {"fusion": "cross_attention", "shared_encoder": False},
    ],
    ids=["erm-convnext-concat", "erm-vit-cross-attention", "erm-resnet18-cross-attention"],
)
def test_erm_with_timm_backbones_and_cross_attention_updates_every_parameter(hparams: dict) -> None:
    torch.manual_seed(0)
    algorithm = build_algorithm("erm", 3, 2, {**hparams, "img_size": SIZE, "fused_dim": 16})
    batch = {
        "plane": _images(4, seed=3),
        "cross": _images(4, seed=4),
        "label": torch.arange(4) % 3,
        "domain": torch.arange(4) % 2,
    }
    logs = algorithm.update(batch, progress=0.5)
    assert all(torch.isfinite(torch.tensor(v)) for v in logs.values())
    _assert_every_parameter_has_a_gradient(algorithm)
    algorithm.eval()
    with torch.no_grad():
        assert algorithm.predict(batch).shape == (4, 3)
        assert algorithm.features(batch).shape == (4, 16)


def test_timm_weights_load_from_local_files_and_nothing_is_downloaded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(7)
    source = timm.create_model("test_convnext", num_classes=10)  # a checkpoint with its 10-class head
    state = source.state_dict()
    torch.save(state, tmp_path / "convnext.pt")
    save_file(state, tmp_path / "convnext.safetensors")
    for name in ("convnext.pt", "convnext.safetensors"):
        with caplog.at_level(logging.INFO, logger="san.models.timm_backbones"):
            extractor, _ = build_feature_extractor("timm:test_convnext", weights=tmp_path / name)
        loaded = extractor.model.state_dict()
        assert all(torch.equal(loaded[key], state[key]) for key in loaded)
        assert "dropped 2 classifier key(s): head.fc.bias, head.fc.weight" in caplog.text
        assert "nothing downloaded" in caplog.text
        caplog.clear()


def test_timm_errors_name_the_problem(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(ValueError, match="never downloaded"):
        build_feature_extractor("timm:test_convnext", pretrained=True)
    with pytest.raises(ValueError, match="timm has no model 'no_such_net'"):
        build_feature_extractor("timm:no_such_net")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_feature_extractor("timm:test_convnext", weights="/nonexistent/weights.pt")
    with caplog.at_level(logging.INFO, logger="san.models.timm_backbones"):
        build_feature_extractor("timm:test_convnext")
    assert "trained from scratch (timm weights are never downloaded" in caplog.text
