"""The training recipe of issue #13: small-crop ResNet, per-polarization BN, MixStyle, Mixup/CutMix per
pair, acquisition augmentation, background reference, EMA/SWA and TTA. CPU, tiny tensors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from data_tools.transforms import (
    DIHEDRAL_VIEWS,
    AugmentationConfig,
    ChannelStats,
    PairTransform,
    border_median,
    channel_stats,
    dihedral_view_tensor,
    referenced_pair,
)
from san.algorithms.mixing import mix_pairs
from san.algorithms.registry import build_algorithm
from san.inference.tta import dihedral_view
from san.models.grain_resnet import GrainResNet
from san.models.mixstyle import MixStyle
from san.models.networks import PolarizationBatchNorm2d, SiameseEncoder
from san.training.averaging import build_averager, reestimate_batch_norm

pytestmark = pytest.mark.usefixtures("single_torch_thread")

RECIPE = {
    "stem": "no-maxpool",
    "width": 0.25,
    "per_polarization_bn": True,
    "mixstyle_after": [1, 2],
    "mixstyle_p": 1.0,
    "dropout": 0.2,
    "mixup_alpha": 0.2,
    "cutmix_alpha": 1.0,
    "mix_probability": 1.0,
    "amp": False,
}


def batch(n: int = 6, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "plane": torch.randn(n, 3, size, size, generator=generator),
        "cross": torch.randn(n, 3, size, size, generator=generator),
        "label": torch.arange(n) % 3,
        "domain": torch.arange(n) % 2,
        "index": torch.arange(n),
    }


# --- backbone ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("stem", "width", "side"), [("imagenet", 1.0, 2), ("no-maxpool", 0.5, 4), ("stride1", 0.25, 8)]
)
def test_grain_resnet_stems_and_widths(stem: str, width: float, side: int) -> None:
    torch.manual_seed(0)
    net = GrainResNet("resnet18", stem=stem, width=width)
    assert net.feature_dim == round(512 * width)
    maps = {}
    net.layer4.register_forward_hook(lambda m, i, o: maps.update(layer4=o.shape))
    out = net(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, net.feature_dim) and torch.isfinite(out).all()
    assert maps["layer4"][-1] == side  # 64 px: /32 ImageNet stem, /16 without max-pool, /8 stride 1


def test_half_width_resnet18_has_a_quarter_of_the_parameters() -> None:
    full = sum(p.numel() for p in GrainResNet("resnet18").parameters())
    half = sum(p.numel() for p in GrainResNet("resnet18", width=0.5).parameters())
    assert 11e6 < full < 12e6 and 2.5e6 < half < 3.2e6


def test_default_grain_resnet_is_torchvision_resnet() -> None:
    torch.manual_seed(0)
    ours = GrainResNet("resnet18")
    import torchvision

    torch.manual_seed(0)
    theirs = torchvision.models.resnet18()
    theirs.fc = nn.Identity()
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    x = torch.randn(2, 3, 64, 64)
    ours.eval(), theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x))


def test_bad_backbone_options_are_refused() -> None:
    with pytest.raises(ValueError, match="stem"):
        GrainResNet("resnet18", stem="tiny")
    with pytest.raises(ValueError, match="stages"):
        GrainResNet("resnet18", mixstyle_after=[4])
    with pytest.raises(ValueError, match="ResNets only"):
        SiameseEncoder("vgg16", shared=True, width=0.5)
    with pytest.raises(ValueError, match="shared encoder"):
        SiameseEncoder("resnet18", shared=False, per_polarization_bn=True)


def test_recipe_network_every_parameter_gets_a_gradient() -> None:
    torch.manual_seed(0)
    algorithm = build_algorithm("erm", 3, 2, RECIPE)
    logs = algorithm.update(batch(), 0.5)
    assert math.isfinite(logs["loss"])
    missing = [
        n for n, p in algorithm.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert not missing
    assert any(isinstance(m, PolarizationBatchNorm2d) for m in algorithm.modules())
    algorithm.eval()
    with torch.no_grad():
        logits = algorithm.predict(batch())
    assert logits.shape == (6, 3) and torch.isfinite(logits).all()


def test_per_polarization_bn_keeps_separate_statistics() -> None:
    norm = PolarizationBatchNorm2d(nn.BatchNorm2d(2))
    plane, cross = torch.zeros(4, 2, 3, 3), torch.full((4, 2, 3, 3), 10.0)
    plane[0] = 1.0  # some variance
    norm(torch.cat([plane, cross]))
    assert norm.norms[0].running_mean.max() < 0.1 < 0.9 < norm.norms[1].running_mean.min()


# --- MixStyle ---------------------------------------------------------------------------------
def test_mixstyle_is_identity_in_eval_and_mixes_within_halves() -> None:
    layer = MixStyle(p=1.0, alpha=0.1, groups=2, seed=0)
    # plane half: every instance of mean 0; cross half: mean 100. Mixing within halves keeps that.
    x = torch.cat([torch.randn(4, 3, 5, 5), 100 + torch.randn(4, 3, 5, 5)])
    layer.eval()
    assert torch.equal(layer(x), x)
    layer.train()
    y = layer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    assert not torch.allclose(y, x)
    means = y.mean(dim=(1, 2, 3))
    assert means[:4].abs().max() < 5 and (means[4:] - 100).abs().max() < 5


def test_mixstyle_is_seeded() -> None:
    x = torch.randn(8, 3, 5, 5)
    a, b = MixStyle(p=1.0, seed=3), MixStyle(p=1.0, seed=3)
    torch.testing.assert_close(a(x), b(x))


# --- Mixup / CutMix per pair ------------------------------------------------------------------
@pytest.mark.parametrize(("mixup", "cutmix"), [(0.4, 0.0), (0.0, 1.0)])
def test_mix_pairs_uses_one_partner_weight_and_box_for_both_images(mixup: float, cutmix: float) -> None:
    plane = torch.rand(5, 3, 16, 16)
    mixed = mix_pairs(
        plane, plane.clone(), torch.Generator().manual_seed(0), mixup_alpha=mixup, cutmix_alpha=cutmix
    )
    assert mixed is not None and mixed.kind == ("mixup" if mixup else "cutmix")
    assert 0.0 <= mixed.lam <= 1.0
    torch.testing.assert_close(mixed.plane, mixed.cross)  # identical images stay identical
    if mixed.kind == "mixup":
        torch.testing.assert_close(
            mixed.plane, mixed.lam * plane + (1 - mixed.lam) * plane[mixed.permutation]
        )
    else:
        moved = mixed.permutation != torch.arange(5)
        kept = (mixed.plane == plane).all(dim=1)[moved].float().mean().item()
        assert moved.any() and kept == pytest.approx(mixed.lam, abs=1e-6)  # outside the box: its own pair


def test_mix_pairs_off_without_alphas() -> None:
    assert mix_pairs(torch.rand(4, 3, 8, 8), torch.rand(4, 3, 8, 8), torch.Generator()) is None


# --- augmentation and the background reference ------------------------------------------------
def _square_pair(size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    plane = np.full((size, size, 3), 200, np.uint8)
    cross = np.full((size, size, 3), 40, np.uint8)
    plane[10:26, 14:34] = 60  # a dark grain in PPL, a bright one in XPL, at the same place
    cross[10:26, 14:34] = 230
    return plane, cross


def test_acquisition_augmentation_keeps_the_pair_geometry_identical() -> None:
    config = AugmentationConfig(
        zoom=0.3,
        white_balance=0.1,
        saturation=0.3,
        jpeg_quality_min=50,
        blur_sigma_max=0.0,
        vignetting=0.3,
        acquisition_probability=1.0,
        noise_std=0.0,
        blur_probability=0.0,
    )
    stats = channel_stats(*(a[None] for a in _square_pair()), np.array([0]))
    transform = PairTransform(48, stats, train=True, augmentation=config, seed=0)
    plane, cross = _square_pair()
    changed = 0
    for _ in range(20):
        aug_plane, aug_cross = transform.augment(plane, cross)
        grain_plane = aug_plane.mean(axis=2) < 130
        grain_cross = aug_cross.mean(axis=2) > 135
        assert (grain_plane != grain_cross).mean() < 0.03  # same grain pixels, up to JPEG edges
        changed += int(grain_plane.sum() != (plane.mean(axis=2) < 130).sum())
    assert changed > 0  # zoom and rotation really moved the grain


def test_photometry_is_drawn_per_image() -> None:
    config = AugmentationConfig(
        white_balance=0.2,
        acquisition_probability=1.0,
        flips=False,
        rotate90=False,
        rotate_degrees=0.0,
        crop_scale_min=1.0,
        brightness_contrast=0.0,
        gamma_percent=0.0,
        hue_shift_degrees=0.0,
        noise_std=0.0,
        blur_probability=0.0,
    )
    stats = channel_stats(*(a[None] for a in _square_pair()), np.array([0]))
    transform = PairTransform(48, stats, train=True, augmentation=config, seed=1)
    plane = np.full((48, 48, 3), 128, np.uint8)
    a, b = transform.augment(plane, plane.copy())
    assert not np.array_equal(a, b)


def test_border_reference_removes_a_global_colour_cast() -> None:
    plane, cross = _square_pair()
    cast = np.array([1.2, 1.0, 0.8])
    tinted = np.clip(plane * cast, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(border_median(plane[None], 0.1)[0], [200, 200, 200])
    for reference in ("each", "plane"):
        ref_plane, _ = referenced_pair(plane, cross, reference, 0.1)
        ref_tinted, _ = referenced_pair(tinted, cross, reference, 0.1)
        np.testing.assert_allclose(ref_plane, ref_tinted, atol=0.02)
        assert ref_plane[0, 0] == pytest.approx([1.0, 1.0, 1.0])
    _, cross_each = referenced_pair(plane, cross, "each", 0.1)
    _, cross_plane = referenced_pair(plane, cross, "plane", 0.1)
    assert cross_each[0, 0, 0] == pytest.approx(1.0) and cross_plane[0, 0, 0] == pytest.approx(40 / 200)
    unreferenced, _ = referenced_pair(plane, cross, "none", 0.1)
    np.testing.assert_allclose(unreferenced, plane / 255.0, rtol=1e-6)
    with pytest.raises(ValueError, match="background reference"):
        referenced_pair(plane, cross, "median", 0.1)


def test_transform_applies_the_reference_at_evaluation_too() -> None:
    plane, cross = _square_pair()
    tinted = np.clip(plane * np.array([1.3, 1.0, 0.7]), 0, 255).astype(np.uint8)
    stats = channel_stats(plane[None], cross[None], np.array([0]), reference="plane")
    evaluate = PairTransform(48, stats, train=False, reference="plane")
    torch.testing.assert_close(evaluate(plane, cross)[0], evaluate(tinted, cross)[0], atol=0.2, rtol=0)
    plain = PairTransform(48, channel_stats(plane[None], cross[None], np.array([0])), train=False)
    assert (plain(plane, cross)[0] - plain(tinted, cross)[0]).abs().max() > 1.0


def test_training_divides_by_the_border_of_the_pair_before_augmentation() -> None:
    # A grain filling most of the frame: a zoomed-in crop puts grain pixels (60) into the border
    # ring, whose median must not become the reference (the mount is 200, in training as at test).
    plane = np.full((48, 48, 3), 200, np.uint8)
    plane[6:42, 6:42] = 60
    cross = plane.copy()
    unit = ChannelStats((0.0,) * 3, (1.0,) * 3, (0.0,) * 3, (1.0,) * 3)  # outputs = referenced values
    geometry_only = AugmentationConfig(
        flips=False, rotate90=False, rotate_degrees=0, crop_scale_min=0.3, brightness_contrast=0,
        gamma_percent=0, hue_shift_degrees=0, noise_std=0, blur_probability=0,
    )  # fmt: skip
    train = PairTransform(48, unit, train=True, augmentation=geometry_only, reference="plane")
    evaluate = PairTransform(48, unit, train=False, reference="plane")
    assert evaluate(plane, cross)[0][:, 24, 24].tolist() == pytest.approx([0.3] * 3)
    for seed in range(8):
        train.reseed(seed)
        centre = train(plane, cross)[0][:, 24, 24]
        assert centre.tolist() == pytest.approx([0.3] * 3, abs=0.01), seed


@pytest.mark.parametrize("reference", ["plane", "each"])
def test_dataset_items_with_cached_references_equal_the_transform_applied_alone(reference: str) -> None:
    from pathlib import Path

    from data_tools.cache import CachedPairs
    from data_tools.dataset import PairedGrainDataset

    rng = np.random.default_rng(0)
    plane = rng.integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    cross = rng.integers(0, 256, (5, 24, 24, 3), dtype=np.uint8)
    stats = channel_stats(plane, cross, np.arange(5), reference=reference)
    transform = PairTransform(24, stats, train=False, reference=reference)
    rows = [4, 0, 2]
    items = PairedGrainDataset(
        CachedPairs(plane, cross, Path("."), 0), rows, np.zeros(5, int), np.zeros(5, int), transform
    )
    assert items.references is not None
    for item, row in enumerate(rows):
        alone = transform(plane[row], cross[row])  # references recomputed from the pair
        torch.testing.assert_close(items[item]["plane"], alone[0], rtol=0, atol=0)
        torch.testing.assert_close(items[item]["cross"], alone[1], rtol=0, atol=0)


# --- TTA views --------------------------------------------------------------------------------
def test_tensor_views_match_the_array_views() -> None:
    images = np.random.default_rng(0).random((2, 5, 5, 3)).astype(np.float32)
    tensor = torch.from_numpy(images).permute(0, 3, 1, 2)
    for view in range(len(DIHEDRAL_VIEWS)):
        expected = torch.from_numpy(dihedral_view(images, view)).permute(0, 3, 1, 2)
        torch.testing.assert_close(dihedral_view_tensor(tensor, view), expected)


# --- weight averaging -------------------------------------------------------------------------
def _tiny_algorithm() -> nn.Module:
    torch.manual_seed(0)
    return build_algorithm("erm", 3, 2, {"width": 0.125, "stem": "no-maxpool", "amp": False})


def test_ema_follows_the_recursion_weights_and_buffers() -> None:
    algorithm = _tiny_algorithm()
    averager = build_averager(
        "ema", algorithm, epochs=2, ema_decay=0.9, swa_start=0.5, device=torch.device("cpu")
    )
    expected = {k: v.clone().float() for k, v in algorithm.state_dict().items() if v.is_floating_point()}
    for step in range(3):
        algorithm.update(batch(seed=step), step / 3)
        averager.after_step(algorithm, step)
        for key, value in algorithm.state_dict().items():
            if key in expected:
                expected[key] = 0.9 * expected[key] + 0.1 * value.float() if step else value.float().clone()
    averaged = averager.evaluation_model(0, [])
    for key, value in averaged.state_dict().items():
        if key in expected:
            torch.testing.assert_close(value.float(), expected[key], rtol=1e-5, atol=1e-6)
    assert any("running_mean" in k for k in expected)


def test_swa_is_the_mean_of_the_window_and_reestimates_batch_norm() -> None:
    algorithm = _tiny_algorithm()
    averager = build_averager(
        "swa", algorithm, epochs=4, ema_decay=0.9, swa_start=0.5, device=torch.device("cpu")
    )
    snapshots = []
    for epoch in range(4):
        algorithm.update(batch(seed=epoch), epoch / 4)
        averager.after_epoch(algorithm, epoch)
        if epoch >= 2:
            snapshots.append({k: v.clone() for k, v in algorithm.named_parameters()})
    assert averager.evaluation_model(1, []) is None
    loader = [batch(seed=9)]
    averaged = averager.evaluation_model(3, loader)
    for name, value in averaged.named_parameters():
        torch.testing.assert_close(value, (snapshots[0][name] + snapshots[1][name]) / 2)
    assert averager.describe()["n_averaged"] == 2 and averager.describe()["swa_start_epoch"] == 3
    # BatchNorm running mean re-estimated from the pass: the first BN's input mean over the batch
    first_bn = next(m for m in averaged.modules() if isinstance(m, nn.BatchNorm2d))
    assert first_bn.num_batches_tracked.item() == 1
    reestimate_batch_norm(averaged, loader, torch.device("cpu"))
    assert not averaged.training


def test_unknown_averaging_is_refused() -> None:
    with pytest.raises(ValueError, match="averaging"):
        build_averager(
            "swad", _tiny_algorithm(), epochs=2, ema_decay=0.9, swa_start=0.5, device=torch.device("cpu")
        )


# --- the engine hook, end to end --------------------------------------------------------------
@pytest.fixture(scope="module")
def pair_tree(tmp_path_factory, write_pair_tree):
    root = tmp_path_factory.mktemp("recipe_tree")
    counts = {
        "ChangJiang": {"Ap": 6, "Zrn": 6},
        "YaJiang": {"Ap": 6, "Zrn": 6},
        "PengQu": {"Ap": 6, "Zrn": 6},
    }
    write_pair_tree(root, "{domain}/{pol}/{label}/{name}", counts)
    return root


def _request(tree, out, *extra: str):
    from san.training.experiment import RunRequest

    overrides = ["size=16", "epochs=3", "batch_size=6", "fused_dim=16", "warmup_epochs=1", *extra]
    return RunRequest(
        method="erm",
        data=str(tree),
        domains=["yarlung", "pengqu"],
        seed=0,
        overrides=overrides,
        out=str(out),
        wandb_mode="disabled",
        device="cpu",
        progress=False,
    )


def test_swa_run_records_the_window_both_figures_and_tta(pair_tree, tmp_path) -> None:
    from san.training.experiment import run_experiment

    record = run_experiment(
        _request(
            pair_tree, tmp_path, "averaging=swa", "swa_start=0.34", "tta=true", "background_reference=each"
        )
    )
    selection = record["selection"]
    assert "SWA-averaged" in selection["rule"] and selection["averaging"]["swa_start_epoch"] == 2
    assert selection["epoch"] >= 2 and 1 <= selection["plain_epoch"] <= 3  # SWA exists from epoch 2 on
    assert set(record["variants"]) == {"tta", "plain"}
    assert set(record["variants"]["tta"]) == set(record["metrics"]) == {"val", "test", "target"}
    assert "val_avg_accuracy" in record["extras"]["history"][-1]
    assert record["timing"]["cpu_seconds"] > 0
    assert record["config"]["data"]["background_reference"] == "each"
    run_dir = Path(record["run_dir"])
    assert (run_dir / "predictions_target_tta.csv").is_file() and (
        run_dir / "predictions_val_plain.csv"
    ).is_file()


def test_ema_run_resumes_exactly(pair_tree, tmp_path) -> None:
    from san.training.engine import TrainingInterrupted
    from san.training.experiment import Experiment, resume_experiment, run_experiment

    extra = ("averaging=ema", "ema_decay=0.5", "mixstyle_after=[1]", "mixstyle_p=1.0", "mixup_alpha=0.2")
    full = run_experiment(_request(pair_tree, tmp_path / "a", *extra))
    interrupted = Experiment(_request(pair_tree, tmp_path / "b", *extra))
    with pytest.raises(TrainingInterrupted):
        interrupted.run(stop_after_epoch=lambda epoch: epoch == 2)
    resumed = resume_experiment(interrupted.run_dir, progress=False)
    for split in ("val", "test", "target"):
        assert resumed["metrics"][split]["confusion"] == full["metrics"][split]["confusion"]
    assert resumed["extras"]["final_epoch"]["train_loss"] == full["extras"]["final_epoch"]["train_loss"]
    assert resumed["selection"]["epoch"] == full["selection"]["epoch"]
