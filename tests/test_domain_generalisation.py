"""The domain-generalisation algorithms' own behaviour: the adversary's knobs and baselines, the
class-conditional weights, the DomainBed penalties, MixStyle, SWAD's window and the published stages."""

from __future__ import annotations

import copy
import math
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from san.algorithms.adversary import class_domain_balance, domain_baselines
from san.algorithms.base import Algorithm
from san.algorithms.dg import cross_domain_partners, mix_instance_statistics
from san.algorithms.penalties import coral_distance, domain_groups, mmd_distance, pairwise_penalty
from san.algorithms.registry import build_algorithm
from san.models.gradient_reversal import adversary_lambda, dann_lambda
from san.training.engine import FitResult
from san.training.sampling import BalancedBatchSampler
from san.training.swad import SWADAverager

pytestmark = pytest.mark.usefixtures("single_torch_thread")

NUM_CLASSES, NUM_DOMAINS = 3, 2


def make_batch(n: int = 6, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "plane": torch.randn(n, 3, size, size, generator=generator),
        "cross": torch.randn(n, 3, size, size, generator=generator),
        "label": torch.arange(n) % NUM_CLASSES,
        "domain": torch.arange(n) % NUM_DOMAINS,
        "index": torch.arange(n),
    }


def build(name: str, hparams: dict[str, Any] | None = None, num_domains: int = NUM_DOMAINS) -> Algorithm:
    torch.manual_seed(0)
    return build_algorithm(name, NUM_CLASSES, num_domains, hparams)


# --- the adversary's schedule, baselines and weights -------------------------------------------------
def test_lambda_schedules_with_a_delayed_start():
    assert adversary_lambda(0.2, 1.0, "dann", delay=0.3) == 0.0
    assert adversary_lambda(0.65, 2.0, "linear", delay=0.3) == pytest.approx(1.0)
    assert adversary_lambda(0.5, 0.7, "constant") == 0.7
    assert adversary_lambda(0.4, 1.0, "dann") == pytest.approx(dann_lambda(0.4))
    with pytest.raises(ValueError, match="lambda_schedule"):
        adversary_lambda(0.5, 1.0, "cosine")


def test_domain_baselines_under_label_shift():
    # Two rivers, equal shares; class 0 only in river 0, class 1 in both: the class predicts the river.
    joint = np.array([[0.25, 0.0], [0.25, 0.5]])
    found = domain_baselines(joint, np.ones_like(joint))
    assert found["loss_constant"] == pytest.approx(math.log(2))
    assert found["acc_constant"] == pytest.approx(0.5)
    assert found["acc_class_only"] == pytest.approx(0.75)
    expected = -(0.25 * math.log(1 / 3) + 0.5 * math.log(2 / 3))  # H(s | y): class 1 is 1/3 river 0
    assert found["loss_class_only"] == pytest.approx(expected)


def test_class_domain_balance_evens_each_class_and_drops_one_river_classes():
    joint = torch.tensor([[0.25, 0.0], [0.10, 0.40], [0.15, 0.10]])
    weights = class_domain_balance(joint)
    assert weights[0].tolist() == [0.0, 0.0]  # a class of one river is left out
    weighted = joint * weights
    assert weighted[1, 0] == pytest.approx(weighted[1, 1]) and weighted[2, 0] == pytest.approx(weighted[2, 1])
    assert float(weighted.sum()) == pytest.approx(1.0)
    found = domain_baselines(joint.numpy(), weights.numpy())
    assert found["loss_class_only"] == pytest.approx(math.log(2))  # chance for a conditional adversary
    assert torch.equal(class_domain_balance(torch.full((2, 2), 0.25)), torch.ones(2, 2))


def test_sampler_reports_the_batch_class_domain_distribution():
    labels = np.array([0] * 30 + [1] * 10 + [1] * 10)
    domains = np.array([0] * 40 + [1] * 10)
    joint = BalancedBatchSampler(labels, domains, 8, seed=0).class_domain_distribution(2, 2)
    np.testing.assert_allclose(joint, [[0.375, 0.0], [0.125, 0.5]])
    flat = BalancedBatchSampler(labels, domains, 8, seed=0, domain_balanced=False)
    np.testing.assert_allclose(flat.class_domain_distribution(2, 2), [[0.6, 0.0], [0.2, 0.2]])
    balanced = BalancedBatchSampler(labels, domains, 8, seed=0, class_balanced=True)
    np.testing.assert_allclose(balanced.class_domain_distribution(2, 2), [[0.25, 0.0], [0.25, 0.5]])


def test_san_logs_the_chance_and_class_only_baselines_of_the_training_distribution():
    san = build("san")
    san.set_training_distribution(np.array([[0.25, 0.0], [0.25, 0.25], [0.0, 0.25]]))
    logs = san.update(make_batch(), 0.5)
    assert logs["domain_loss_chance"] == pytest.approx(math.log(2))
    assert logs["disc_acc_class_only"] == pytest.approx(0.75)
    cdann = build("cdann")
    cdann.set_training_distribution(np.array([[0.25, 0.0], [0.25, 0.25], [0.0, 0.25]]))
    logs = cdann.update(make_batch(), 0.5)
    # Only class 1 is in both rivers: chance is ln 2 on it, and classes 0 and 2 add no domain loss.
    assert logs["domain_loss_chance"] == pytest.approx(math.log(2))
    assert logs["disc_acc_chance"] == pytest.approx(0.5)


def test_cdann_excluded_classes_add_nothing_to_the_domain_loss():
    cdann = build("cdann")
    cdann.set_training_distribution(np.array([[0.5, 0.0], [0.0, 0.25], [0.0, 0.25]]))
    logs = cdann.update(make_batch(), 0.5)
    assert logs["domain_loss"] == 0.0
    assert all(p.grad is None or not p.grad.abs().sum() > 0 for p in cdann.discriminator.parameters())


def test_alternation_trains_the_discriminator_then_the_encoder_against_it_frozen():
    san = build("san", {"d_steps_per_g_step": 2, "disc_optimizer": "adam", "disc_lr_mult": 2.0})
    assert san.disc_optimizer.defaults["betas"] == (0.5, 0.999)
    assert san.disc_optimizer.defaults["lr"] == pytest.approx(0.02)
    assert all(
        id(p) not in {id(q) for q in san.discriminator.parameters()}
        for p in san.optimizer.param_groups[0]["params"]
    )
    batch = make_batch()
    for _ in range(2):
        san.update(batch, 0.5)
        assert all(p.grad is None for p in san.network.parameters())
        assert all(p.grad is not None for p in san.discriminator.parameters())
    before = copy.deepcopy(san.discriminator.state_dict())
    san.update(batch, 0.5)
    assert all(p.grad is None for p in san.discriminator.parameters())
    assert all(
        torch.equal(v, before[k])
        for k, v in san.discriminator.state_dict().items()
        if "running" not in k and "num_batches" not in k
    )
    assert san.network.encoder.encoder.conv1.weight.grad is not None
    state = san.training_state()
    assert state["adversary"]["steps"] == 3 and state["adversary"]["disc_optimizer"] is not None


def test_concat_attach_point_sees_both_polarizations():
    san = build("san", {"attach": "concat"})
    assert san.discriminator.layers[0].in_features == 2 * 512
    cdann = build("cdann", {"conditioning": "multilinear"})
    assert cdann.discriminator.layers.layers[0].in_features == NUM_CLASSES * 512


@pytest.mark.parametrize(
    ("hparams", "match"),
    [
        ({"attach": "logits"}, "attach"),
        ({"disc_optimizer": "sgd"}, "disc_optimizer"),
        ({"d_steps_per_g_step": -1}, "d_steps_per_g_step"),
        ({"conditioning": "product"}, "conditioning"),
    ],
)
def test_bad_adversary_settings_are_refused(hparams, match):
    with pytest.raises(ValueError, match=match):
        build("cdann", hparams)


# --- the DomainBed penalties -------------------------------------------------------------------------
def test_domain_groups_and_pairwise_penalties():
    domains = torch.tensor([0, 1, 0, 1, 2])
    assert [g.tolist() for g in domain_groups(domains, 3)] == [[0, 2], [1, 3], [4]]
    assert [g.tolist() for g in domain_groups(domains, 3, min_size=2)] == [[0, 2], [1, 3]]
    torch.manual_seed(0)
    x = torch.randn(40, 4)
    assert float(coral_distance(x, x.clone())) == pytest.approx(0.0, abs=1e-7)
    assert float(coral_distance(x, x + 2.0)) == pytest.approx(4.0, rel=1e-5)
    assert float(mmd_distance(x, x.clone())) == pytest.approx(0.0, abs=1e-5)
    assert float(mmd_distance(x, x + 3.0)) > 0.1
    features = torch.cat([x[:20], x[20:] + 1.0])
    two = torch.tensor([0] * 20 + [1] * 20)
    assert float(pairwise_penalty(features, two, 2, coral_distance)) > 0.5
    # Rivers with different class mixes (15:5 and 5:15) and features that depend on the class only:
    # the marginal penalty sees the mix, the class-conditional one does not.
    labels = torch.tensor([0] * 20 + [1] * 20)
    rivers = torch.tensor([0] * 15 + [1] * 5 + [0] * 5 + [1] * 15)
    by_class = x + labels.view(-1, 1).float() * 5.0
    marginal = float(pairwise_penalty(by_class, rivers, 2, coral_distance))
    conditional = float(pairwise_penalty(by_class, rivers, 2, coral_distance, labels))
    assert marginal > 5.0 > 1.0 > conditional
    assert float(pairwise_penalty(x, torch.zeros(40, dtype=torch.long), 2, coral_distance)) == 0.0


def test_groupdro_weights_move_to_the_worse_domain():
    dro = build("groupdro", {"groupdro_eta": 1.0})
    batch = make_batch()
    batch["plane"][batch["domain"] == 1] *= 5.0  # a harder river
    for _ in range(3):
        logs = dro.update(batch, 0.5)
    assert float(dro.group_weights.sum()) == pytest.approx(1.0)
    assert logs["max_group_weight"] > 0.5 and "group_weights" in dro.state_dict()


def test_vrex_switches_its_penalty_weight_after_the_anneal():
    vrex = build("vrex", {"vrex_anneal": 0.5, "vrex_lambda": 10.0})
    assert vrex.update(make_batch(), 0.2)["penalty_weight"] == 1.0
    assert vrex.update(make_batch(), 0.7)["penalty_weight"] == 10.0


def test_mixup_pairs_rows_of_different_rivers():
    torch.manual_seed(0)
    domains = torch.tensor([0, 0, 0, 1, 1, 2])
    groups = domain_groups(domains, 3)
    assert len(groups) == 3
    mixup = build("mixup", num_domains=3)
    batch = make_batch()
    batch["domain"] = domains
    logs = mixup.update(batch, 0.5)
    assert 0.0 <= logs["mix_weight"] <= 1.0


def test_mixstyle_mixes_statistics_only_in_training_steps():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 5, 5) * torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1, 1, 1)
    same = mix_instance_statistics(x, torch.tensor([1, 0, 3, 2]), torch.ones(4))
    torch.testing.assert_close(same, x, atol=1e-4, rtol=1e-4)
    swapped = mix_instance_statistics(x, torch.tensor([1, 0, 3, 2]), torch.zeros(4))
    torch.testing.assert_close(swapped[0].std(), x[1].std(), atol=1e-2, rtol=1e-2)
    partners = cross_domain_partners(torch.tensor([0, 0, 1, 1, 1]))
    assert (torch.tensor([0, 0, 1, 1, 1])[partners] != torch.tensor([0, 0, 1, 1, 1])).all()
    algorithm = build("mixstyle", {"mixstyle_p": 1.0})
    batch = make_batch()
    algorithm.eval()
    with torch.no_grad():
        before = algorithm.predict(batch)
    algorithm.update(batch, 0.5)  # the hooks mix here
    algorithm.eval()
    with torch.no_grad():
        assert algorithm._mixing is None and torch.isfinite(algorithm.predict(batch)).all()
    assert before.shape == (6, NUM_CLASSES)
    with pytest.raises(ValueError, match="ResNets only"):
        build("mixstyle", {"backbone": "vgg16"})


# --- SWAD ----------------------------------------------------------------------------------------------
class _Scalar(nn.Module):
    """A one-parameter 'algorithm' whose weight we set by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
        self.norm = nn.BatchNorm1d(1)

    def predict(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.norm(batch["x"])


def _swad_over(losses: list[float], steps: int = 2, tolerance: float = 0.3) -> tuple[SWADAverager, _Scalar]:
    model, swad = _Scalar(), SWADAverager(tolerance, bn_batches=2)
    for epoch, loss in enumerate(losses):
        for step in range(steps):
            with torch.no_grad():
                model.w.fill_(float(epoch))  # every step of epoch e holds the weight e
            swad.after_step(model, epoch * steps + step)
        swad.after_epoch(model, epoch, {"val_loss": loss})
    return swad, model


@pytest.mark.parametrize(
    ("losses", "window"),
    [
        ([2.0, 1.0, 0.6, 0.5, 0.45, 0.42], (3, 5)),  # still falling: the last epochs within 1.3x
        ([2.0, 0.5, 0.55, 0.9, 0.6, 0.58], (1, 2)),  # a valley, left; later epochs never come back
        ([1.0, 0.9, 2.0, 0.5, 0.6, 3.0], (3, 4)),  # a deeper valley after a bump
        ([1.0, 1.0, 1.0], (0, 2)),
    ],
)
def test_swad_window_is_the_valley_around_the_lowest_val_loss(losses, window):
    swad, model = _swad_over(losses)
    found = swad.window()
    assert (found["first"], found["last"]) == window
    result = FitResult()
    batches = [{"x": torch.randn(8, 1) * 3 + 1} for _ in range(3)]
    swad.after_fit(model, result, batches)
    assert float(model.w.detach()) == pytest.approx((window[0] + window[1]) / 2)  # mean of the window's steps
    assert result.selection_details["swad_window"] == [window[0] + 1, window[1] + 1]
    assert f"{window[0] + 1}-{window[1] + 1}" not in result.selection_rule  # one rule text for all windows
    assert result.selection_details["epoch_selection"] is False
    assert result.selection_details["swad_bn_batches"] == 2
    assert float(model.norm.running_mean) != 0.0


def test_swad_state_round_trip_continues_exactly():
    swad, model = _swad_over([2.0, 1.0])
    restored = SWADAverager(0.3, 2)
    restored.load_state_dict(copy.deepcopy(swad.state_dict()))
    for averager in (swad, restored):
        averager.after_step(model, 4)
        averager.after_epoch(model, 2, {"val_loss": 0.9})
    assert (swad.window()["first"], swad.window()["last"]) == (
        restored.window()["first"],
        restored.window()["last"],
    )
    assert torch.equal(swad.window()["sum"]["w"], restored.window()["sum"]["w"])


# --- the published protocol ----------------------------------------------------------------------------
def test_published_protocol_stages():
    published = build("published_san")
    assert not published.network.encoder.shared and published.hparams["attach"] == "concat"
    batch = make_batch()
    published.update(batch, 0.1)  # classifier alone
    assert all(p.grad is None for p in published.discriminator.parameters())
    assert published.network.classifier[1].weight.grad is not None
    logs = published.update(batch, 0.5)  # discriminator alone
    assert logs["lambda"] == 0.0 and all(p.grad is None for p in published.network.parameters())
    logs = published.update(batch, 0.9)  # encoders against the frozen discriminator
    assert logs["lambda"] == 1.0 and all(p.grad is None for p in published.discriminator.parameters())
    with pytest.raises(ValueError, match="stage_ends"):
        build("published_san", {"stage_ends": [0.7, 0.2]})


# --- with the training recipe of main (Mixup/CutMix per pair, token fusions, own generators) ----------
@pytest.mark.parametrize("name", ["san", "cdann", "groupdro", "vrex"])
def test_adversaries_and_per_river_losses_use_erms_mixup(name):
    algorithm = build(name, {"mixup_alpha": 0.4, "cutmix_alpha": 0.4, "mix_probability": 1.0})
    before = algorithm.mix_generator.get_state().clone()
    logs = algorithm.update(make_batch(), 0.5)
    assert not torch.equal(before, algorithm.mix_generator.get_state())  # a pair mix was drawn
    assert math.isfinite(logs["loss"])


def test_concat_attach_point_pools_the_tokens_of_a_token_fusion():
    san = build("san", {"attach": "concat", "fusion": "cross_attention", "fused_dim": 32})
    assert san.discriminator.layers[0].in_features == 2 * 512
    logs = san.update(make_batch(), 0.5)
    assert math.isfinite(logs["domain_loss"])


@pytest.mark.parametrize(("name", "hparams"), [("mixstyle", {"mixstyle_p": 1.0}), ("mixup", {})])
def test_mixing_algorithms_draw_from_their_own_generator(name, hparams):
    algorithm = build(name, hparams)
    before = algorithm.mix_generator.get_state().clone()
    torch.manual_seed(1)
    global_state = torch.get_rng_state()
    algorithm.update(make_batch(), 0.5)
    assert torch.equal(global_state, torch.get_rng_state())
    assert not torch.equal(before, algorithm.mix_generator.get_state())
