"""Comparing a finished run's recorded config with the config its job would resolve now."""

from __future__ import annotations

from san.runs.settings import flatten, settings_changes


def test_flatten_gives_dotted_leaves_and_drops_empty_sections():
    assert flatten({"training": {"epochs": 10, "lr": {"base": 0.1}}, "hparams": {}, "method": "san"}) == {
        "training.epochs": 10,
        "training.lr.base": 0.1,
        "method": "san",
    }


def test_equal_configs_have_no_changes():
    config = {"training": {"epochs": 10}, "data": {"size": 64}}
    assert settings_changes(config, config) == []


def test_changed_added_and_removed_settings_are_each_named():
    recorded = {"training": {"epochs": 10, "old_key": 1}, "data": {"size": 64}}
    expected = {"training": {"epochs": 20}, "data": {"size": 64, "crop": "center"}}
    assert settings_changes(recorded, expected) == [
        "data.crop: '<absent>' in the run, 'center' now",
        "training.epochs: 10 in the run, 20 now",
        "training.old_key: 1 in the run, '<absent>' now",
    ]


def test_keys_set_by_overrides_are_not_compared():
    recorded = {"training": {"epochs": 1}, "hparams": {"lambda_max": 0.3}, "quality": {"factor": "size"}}
    expected = {"training": {"epochs": 10}, "hparams": {}, "quality": {"factor": "none"}}
    overrides = ["epochs=1", "lambda_max=0.3", "quality.factor=size"]
    assert settings_changes(recorded, expected, overrides) == []
    assert settings_changes({"hparams": {"gamma": 10}}, {"hparams": {}}) == [
        "hparams.gamma: 10 in the run, '<absent>' now"
    ]


def test_a_default_written_out_equals_one_left_to_the_code():
    recorded = {"hparams": {"lr": 0.01, "backbone": "resnet18"}, "training": {"epochs": 10}}
    expected = {"hparams": {}, "training": {"epochs": 10}}
    defaults = {"hparams.lr": 0.01, "hparams.backbone": "resnet18"}
    assert settings_changes(recorded, expected, (), defaults) == []
    assert settings_changes(recorded, expected) != []  # without the defaults they differ
    changed = settings_changes({"hparams": {"lr": 0.1}}, {"hparams": {}}, (), defaults)
    assert changed == ["hparams.lr: 0.1 in the run, 0.01 now"]
