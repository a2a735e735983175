"""Algorithms, networks, backbones and the registry: CPU, small images, one step each (timm-style)."""

from __future__ import annotations

import copy
import logging
import math
import urllib.error
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision

from baselines.cnn import INPUT_MODES, CNNBaseline
from san.algorithms import ERM, SAN
from san.algorithms.base import Algorithm
from san.algorithms.registry import (
    algorithm_class,
    algorithm_names,
    build_algorithm,
    default_hparams,
    register_algorithm,
)
from san.models.backbones import build_classifier_model, build_feature_extractor
from san.models.gradient_reversal import dann_lambda
from san.models.networks import DomainDiscriminator, SiameseEncoder, build_fusion

pytestmark = pytest.mark.usefixtures("single_torch_thread")

NUM_CLASSES = 3
NUM_DOMAINS = 2
REQUIRED_KEYS = {"loss", "class_loss", "acc"}
ADVERSARY_KEYS = {
    "domain_loss",
    "disc_acc",
    "lambda",
    "domain_loss_chance",
    "domain_loss_class_only",
    "disc_acc_chance",
    "disc_acc_class_only",
}
ADVERSARIES = {"san", "cdann", "published_san"}


def make_batch(
    n: int = 4, size: int = 32, num_domains: int = NUM_DOMAINS, seed: int = 0
) -> dict[str, torch.Tensor]:
    """A normalised-looking batch with every class and every domain present."""
    generator = torch.Generator().manual_seed(seed)
    return {
        "plane": torch.randn(n, 3, size, size, generator=generator),
        "cross": torch.randn(n, 3, size, size, generator=generator),
        "label": torch.arange(n) % NUM_CLASSES,
        "domain": torch.arange(n) % num_domains,
        "index": torch.arange(n),
    }


def build(
    name: str, hparams: dict[str, Any] | None = None, num_domains: int = NUM_DOMAINS, seed: int = 0
) -> Algorithm:
    torch.manual_seed(seed)
    return build_algorithm(name, NUM_CLASSES, num_domains, hparams)


ONE_STEP = (0.5,)
STAGES = (0.2, 0.5, 0.8)  # one step in each of the published protocol's stages


def _cases() -> list[tuple[str, dict[str, Any], tuple[float, ...]]]:
    cases: list[tuple[str, dict[str, Any], tuple[float, ...]]] = []
    for name in algorithm_names():
        if issubclass(algorithm_class(name), CNNBaseline):
            cases += [(name, {"input": mode}, ONE_STEP) for mode in INPUT_MODES]
        else:
            cases.append((name, {}, STAGES if name == "published_san" else ONE_STEP))
    return cases + [
        ("vgg16", {"input": "stack", "head": "torchvision"}, ONE_STEP),
        ("san", {"shared_encoder": False, "fusion": "gate", "optimizer": "adamw", "lr": 1e-3}, ONE_STEP),
        (
            "san",
            {
                "fusion": "sum",
                "grad_clip": 1.0,
                "label_smoothing": 0.1,
                "class_weights": [1.0, 2.0, 0.5],
                "dropout": 0.2,
            },
            ONE_STEP,
        ),
        # DomainBed's alternation: a discriminator step, then an encoder step.
        ("san", {"attach": "concat", "disc_optimizer": "adam", "d_steps_per_g_step": 1}, (0.5, 0.5)),
        ("san", {"lambda_schedule": "linear", "lambda_delay": 0.3, "lambda_max": 0.1}, ONE_STEP),
        ("cdann", {"conditioning": "multilinear", "attach": "concat"}, ONE_STEP),
        ("cdann", {"class_domain_balance": False, "shared_encoder": False}, ONE_STEP),
        ("coral", {"class_conditional": True}, ONE_STEP),
        ("mmd", {"class_conditional": True}, ONE_STEP),
        ("mixstyle", {"mixstyle_mix": "random", "mixstyle_p": 1.0, "shared_encoder": False}, ONE_STEP),
    ]


CASES = _cases()


def test_cases_cover_every_registered_algorithm() -> None:
    assert {name for name, _, _ in CASES} == set(algorithm_names()) >= {"erm", "san", "vgg16", "resnet34"}


CASE_IDS = [f"{name}-{'-'.join(map(str, hparams.values()))}" for name, hparams, _ in CASES]
# VGG-16's torchvision head (a 25088 x 4096 layer) makes its one step take ~15 s; the compact head
# covers the same update path in the default suite.
SLOW_CASES = {"vgg16-stack-torchvision"}
MARKED_CASES = [
    pytest.param(*case, id=case_id, marks=[pytest.mark.slow] if case_id in SLOW_CASES else [])
    for case, case_id in zip(CASES, CASE_IDS, strict=True)
]


def _trained(name: str, hparams: dict[str, Any], progresses: tuple[float, ...], seed: int = 0):
    """An algorithm after one update per progress value on the 6-row batch (every class in both
    domains), the keys of the parameters that got a gradient in some step, and the last logs."""
    torch.manual_seed(seed)
    algorithm = build(name, hparams, seed=seed)
    batch = make_batch(n=6)
    with_gradient: set[str] = set()
    logs: dict[str, float] = {}
    for progress in progresses:
        # update() zeroes gradients before the backward pass, so .grad holds what this step applied.
        logs = algorithm.update(batch, progress)
        with_gradient |= {
            key for key, p in algorithm.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
        }
    return algorithm, with_gradient, logs


@pytest.mark.parametrize(("name", "hparams", "progresses"), MARKED_CASES)
def test_updates_train_every_parameter_deterministically(
    name: str, hparams: dict[str, Any], progresses: tuple[float, ...]
) -> None:
    torch.manual_seed(0)
    fingerprints = {
        key: p.detach().flatten()[:256].clone() for key, p in build(name, hparams).named_parameters()
    }
    algorithm, with_gradient, logs = _trained(name, hparams, progresses)

    expected_keys = REQUIRED_KEYS | (ADVERSARY_KEYS if name in ADVERSARIES else set())
    assert expected_keys <= set(logs)
    assert all(isinstance(value, float) and math.isfinite(value) for value in logs.values())
    assert with_gradient == {key for key, _ in algorithm.named_parameters()}
    optimised = {
        id(p) for optimizer in algorithm.optimizers() for g in optimizer.param_groups for p in g["params"]
    }
    assert optimised == {id(p) for p in algorithm.parameters()}
    unchanged = [
        key
        for key, p in algorithm.named_parameters()
        if torch.equal(p.detach().flatten()[:256], fingerprints[key])
    ]
    assert not unchanged

    batch = make_batch(n=6)
    algorithm.eval()
    with torch.no_grad():
        logits = algorithm.predict(batch)
        features = algorithm.features(batch)
    assert logits.shape == (6, NUM_CLASSES) and torch.isfinite(logits).all()
    assert features.ndim == 2 and features.shape[0] == 6 and torch.isfinite(features).all()

    again, _, logs_again = _trained(name, hparams, progresses)
    assert logs_again == logs
    for (key, p), (_, q) in zip(algorithm.named_parameters(), again.named_parameters(), strict=True):
        assert torch.equal(p, q), key


def test_san_gradients_are_class_minus_lambda_domain_and_discriminator_learns() -> None:
    # In float64 the two ways of summing the gradients agree to rounding.
    san = build("san").double()
    reference = copy.deepcopy(san)
    batch = {
        key: value.double() if value.is_floating_point() else value for key, value in make_batch().items()
    }
    progress = 0.3

    logs = san.update(batch, progress)

    lambda_ = dann_lambda(progress)
    assert logs["lambda"] == pytest.approx(lambda_)
    logits, features = reference.network(batch["plane"], batch["cross"])
    class_loss = torch.nn.functional.cross_entropy(logits, batch["label"])
    domain_loss = torch.nn.functional.cross_entropy(reference.discriminator(features), batch["domain"])
    network_params = list(reference.network.parameters())
    class_grads = torch.autograd.grad(class_loss, network_params, retain_graph=True)
    # The class head does not take part in the domain loss: its domain gradient is zero.
    domain_grads = torch.autograd.grad(
        domain_loss,
        [*network_params, *reference.discriminator.parameters()],
        allow_unused=True,
        materialize_grads=True,
    )
    expected = [c - lambda_ * d for c, d in zip(class_grads, domain_grads, strict=False)]
    for param, want in zip(san.network.parameters(), expected, strict=True):
        torch.testing.assert_close(param.grad, want)
    for param, want in zip(san.discriminator.parameters(), domain_grads[len(network_params) :], strict=True):
        torch.testing.assert_close(param.grad, want)
    assert logs["domain_loss"] == pytest.approx(domain_loss.item(), rel=1e-5)


def test_discriminator_has_its_own_learning_rate() -> None:
    san = build("san", {"lr": 0.02, "disc_lr_mult": 5.0})
    disc = {id(p) for p in san.discriminator.parameters()}
    lrs = {group["lr"] for group in san.optimizer.param_groups if {id(p) for p in group["params"]} == disc}
    assert len(lrs) == 1 and lrs.pop() == pytest.approx(0.1)


@pytest.mark.parametrize(("hparams", "num_domains"), [({"adversary": False}, 2), ({}, 1)])
def test_san_without_adversary_is_erm(
    hparams: dict[str, Any], num_domains: int, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="san.algorithms.san"):
        san = build("san", hparams, num_domains=num_domains)
    erm = build("erm", num_domains=num_domains)
    assert ("one source domain" in caplog.text) == (num_domains == 1)
    batch = make_batch(num_domains=num_domains)

    san_logs, erm_logs = san.update(batch, 0.5), erm.update(batch, 0.5)

    assert san.discriminator is None and not ADVERSARY_KEYS & set(san_logs)
    assert san_logs == pytest.approx(erm_logs)
    for (key, p_san), (_, p_erm) in zip(san.named_parameters(), erm.named_parameters(), strict=True):
        torch.testing.assert_close(p_san, p_erm, msg=key)


def test_training_state_round_trip_resumes_exactly() -> None:
    first = build("san", {"amp": True})
    first.update(make_batch(seed=1), 0.1)
    resumed = build("san", {"amp": True}, seed=99)
    resumed.load_state_dict(first.state_dict())
    resumed.load_training_state(copy.deepcopy(first.training_state()))

    momentum = [first.optimizer.state[p]["momentum_buffer"] for p in first.parameters()]
    assert all(
        torch.equal(resumed.optimizer.state[p]["momentum_buffer"], m)
        for p, m in zip(resumed.parameters(), momentum, strict=True)
    )
    first.update(make_batch(seed=2), 0.2)
    resumed.update(make_batch(seed=2), 0.2)
    for p_first, p_resumed in zip(first.parameters(), resumed.parameters(), strict=True):
        torch.testing.assert_close(p_resumed, p_first)
    with pytest.raises(ValueError, match="grad_scaler"):
        resumed.load_training_state({"optimizer": first.optimizer.state_dict()})


def test_gradient_clipping_bounds_the_applied_gradient() -> None:
    erm = build("erm", {"grad_clip": 1e-3})
    logs = erm.update(make_batch(), 0.0)
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in erm.parameters()]))
    assert logs["grad_norm"] > 1e-3 and norm.item() == pytest.approx(1e-3, rel=1e-3)


def test_non_finite_loss_raises_floating_point_error() -> None:
    batch = make_batch()
    batch["plane"][0, 0, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="non-finite training loss nan"):
        build("erm").update(batch, 0.0)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("label", 3, "labels must be in"),
        ("domain", 2, "domains must be"),
    ],
)
def test_out_of_range_targets_are_rejected(key: str, value: int, match: str) -> None:
    batch = make_batch()
    batch[key][0] = value
    with pytest.raises(ValueError, match=match):
        build("san").update(batch, 0.5)


def test_registry_refuses_duplicates_and_unknown_names() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_algorithm("erm")(ERM)
    with pytest.raises(ValueError, match="registered: cdann, coral, erm, groupdro, mixstyle, mixup, mmd"):
        build_algorithm("dann", NUM_CLASSES, NUM_DOMAINS, {})
    assert algorithm_class("san") is SAN


@pytest.mark.parametrize(
    ("name", "hparams", "match"),
    [
        ("san", {"lamda_max": 1.0}, r"unknown hyper-parameter\(s\) \['lamda_max'\]"),
        ("erm", {"lambda_max": 1.0}, "lambda_max"),  # an adversary setting means nothing to ERM
        ("resnet34", {"backbone": "vgg16"}, "backbone"),  # the algorithm fixes the architecture
        ("resnet34", {"input": "both"}, "expected one of plane, cross, stack, pair"),
        ("vgg16", {"input": "plane", "head": "big"}, "expected one of compact, torchvision"),
        ("erm", {"fusion": "product"}, "expected one of concat, sum, gate"),
        ("erm", {"backbone": "resnet101"}, "unknown backbone 'resnet101'"),
        ("erm", {"optimizer": "adam"}, "expected one of sgd, adamw"),
        ("erm", {"class_weights": [1.0, 2.0]}, "3 non-negative floats"),
    ],
)
def test_bad_hparams_raise_value_error(name: str, hparams: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build(name, hparams)


def test_defaults_are_merged_under_the_caller_hparams_without_mutating_them() -> None:
    hparams = {"lr": 0.05, "class_weights": [1.0, 1.0, 2.0]}
    san = build("san", hparams)
    assert san.hparams == {**default_hparams("san"), **hparams}
    assert set(default_hparams("san")) == set(default_hparams("erm")) | {
        "adversary",
        "lambda_max",
        "lambda_schedule",
        "gamma",
        "lambda_delay",
        "attach",
        "disc_hidden",
        "disc_optimizer",
        "disc_lr_mult",
        "disc_beta1",
        "disc_weight_decay",
        "d_steps_per_g_step",
    }
    san.hparams["class_weights"].append(9.0)
    assert hparams["class_weights"] == [1.0, 1.0, 2.0]


def test_shared_encoder_encodes_both_images_with_one_backbone() -> None:
    torch.manual_seed(0)
    shared = SiameseEncoder("resnet18", shared=True).eval()
    separate = SiameseEncoder("resnet18", shared=False)
    assert sum(p.numel() for p in separate.parameters()) == 2 * sum(p.numel() for p in shared.parameters())
    batch = make_batch()
    with torch.no_grad():
        f_plane, f_cross = shared(batch["plane"], batch["cross"])
        torch.testing.assert_close(f_plane, shared.encoder(batch["plane"]))
        torch.testing.assert_close(f_cross, shared.encoder(batch["cross"]))
    assert f_plane.shape == (4, 512)


@pytest.mark.parametrize("name", ["concat", "sum", "gate"])
def test_fusions_map_two_feature_vectors_to_fused_dim(name: str) -> None:
    torch.manual_seed(0)
    fusion = build_fusion(name, 8, 5)
    assert fusion(torch.randn(3, 8), torch.randn(3, 8)).shape == (3, 5)
    assert DomainDiscriminator(5, 4, hidden=16)(torch.randn(3, 5)).shape == (3, 4)


def test_gate_fusion_mixes_convexly() -> None:
    fusion = build_fusion("gate", 4, 4)
    with torch.no_grad():
        fusion.project.weight.copy_(torch.eye(4))
        fusion.project.bias.zero_()
        fusion.gate.weight.zero_()
        fusion.gate.bias.fill_(math.log(3.0))  # sigmoid = 0.75
    plane, cross = torch.ones(2, 4), torch.zeros(2, 4)
    torch.testing.assert_close(fusion(plane, cross), torch.full((2, 4), 0.75))


@pytest.fixture(scope="module")
def resnet18_imagenet_state(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    """A torchvision-format resnet18 state dict (1000-class head) saved to disk."""
    torch.manual_seed(123)
    state = torchvision.models.resnet18().state_dict()
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(state, path)
    return path, state


def test_local_weights_load_and_unfitting_head_is_dropped_and_reported(
    resnet18_imagenet_state: tuple[Path, dict[str, torch.Tensor]], caplog: pytest.LogCaptureFixture
) -> None:
    path, state = resnet18_imagenet_state
    with caplog.at_level(logging.INFO, logger="san.models.backbones"):
        extractor, dim = build_feature_extractor("resnet18", weights=path)
        classifier = build_classifier_model("resnet18", NUM_CLASSES, weights=path)
    assert dim == 512
    torch.testing.assert_close(extractor.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    torch.testing.assert_close(classifier.conv1.weight, state["conv1.weight"])
    assert classifier.fc.weight.shape == (NUM_CLASSES, 512)
    assert f"backbone resnet18: weights from {path}" in caplog.text
    assert "dropped 2 head key(s) that do not fit: fc.bias, fc.weight" in caplog.text


def test_stack_mode_copies_pretrained_rgb_filters_into_both_halves(
    resnet18_imagenet_state: tuple[Path, dict[str, torch.Tensor]],
) -> None:
    path, state = resnet18_imagenet_state
    torch.manual_seed(0)
    algorithm = build_algorithm(
        "erm", NUM_CLASSES, NUM_DOMAINS, {"weights": str(path), "shared_encoder": False}
    )
    torch.testing.assert_close(algorithm.network.encoder.cross_encoder.conv1.weight, state["conv1.weight"])
    # resnet34 cannot take resnet18 weights: a non-head mismatch is an error naming the file.
    with pytest.raises(ValueError, match=f"{path}: the state dict does not fit"):
        build("resnet34", {"input": "stack", "weights": str(path)})
    stacked = torchvision.models.resnet34()
    stacked_path = path.with_name("resnet34.pt")
    torch.save(stacked.state_dict(), stacked_path)
    algorithm = build("resnet34", {"input": "stack", "weights": str(stacked_path)})
    half = stacked.conv1.weight / 2
    torch.testing.assert_close(algorithm.network.body.conv1.weight, torch.cat([half, half], dim=1))


def test_missing_weights_file_and_offline_download_give_clear_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.pt does not exist"):
        build_feature_extractor("resnet18", weights=tmp_path / "nothere.pt")

    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no internet")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(RuntimeError, match="weights: /path/to/state_dict.pt"):
        build("erm", {"pretrained": True})


def test_from_scratch_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="san.models.backbones"):
        build_feature_extractor("vgg16")
    assert "backbone vgg16: trained from scratch (no pretrained weights)" in caplog.text


@pytest.mark.parametrize("native", [True, False])
def test_cpu_autocast_follows_amp_and_the_cpus_bfloat16_support(monkeypatch, native: bool) -> None:
    monkeypatch.setattr("san.algorithms.base.cpu_has_native_bf16", lambda: native)
    algorithm = build("erm", {"amp": True})
    expected = "bfloat16 autocast (CPU with bfloat16 instructions)" if native else "float32"
    assert algorithm.precision() == expected
    with algorithm.inference_context():  # what predict and features run under
        logits = torch.nn.functional.linear(torch.ones(2, 4), torch.ones(3, 4))
    assert logits.dtype == (torch.bfloat16 if native else torch.float32)
    logs = algorithm.update(make_batch(), 0.5)
    assert math.isfinite(logs["loss"])
    assert all(p.dtype == torch.float32 for p in algorithm.parameters())  # autocast keeps float32 weights
    assert build("erm", {"amp": False}).precision() == "float32"
