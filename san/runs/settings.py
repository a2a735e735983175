"""Was a finished run made with the settings a benchmark would give it now?

Job names carry neither the preset nor its contents, so after someone edits
``configs/presets/cpu.yaml`` (or a method's yaml) a rerun of the same grid would skip the old runs as
complete and mix them into the tables. Comparing each complete run's recorded config with the one
the job would resolve today catches that. Keys set by ``--set`` overrides are left out: the
overrides themselves are checked per output folder (``benchmark.json``) and per job name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from san.runs.config import parse_override

MISSING = "<absent>"


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"training.epochs": 10, ...}``; lists and scalars are leaves, and an empty
    section has none (so ``hparams: {}`` equals no ``hparams``)."""
    leaves: dict[str, Any] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            leaves.update(flatten(value, dotted + "."))
        else:
            leaves[dotted] = value
    return leaves


def _set_by(overrides: Iterable[str]) -> list[str]:
    """The keys the overrides set: dotted paths, or bare leaf names (which match any section)."""
    return [parse_override(text)[0] for text in overrides]


def _overridden(key: str, override_keys: list[str]) -> bool:
    return any(key == k or ("." not in k and key.rsplit(".", 1)[-1] == k) for k in override_keys)


def settings_changes(
    recorded: Mapping[str, Any],
    expected: Mapping[str, Any],
    overrides: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
) -> list[str]:
    """The settings whose value in a finished run differs from what the job would use now.

    Args:
        recorded: the run record's ``config``.
        expected: the config the job resolves to today, without its overrides.
        overrides: the job's ``--set`` overrides (keys they set are not compared).
        defaults: dotted key -> the value the code uses when a config does not set it (e.g. the
            method's ``hparams.*``); a key absent on one side is compared with its default, so a
            config that writes a default out and one that leaves it to the code are the same.

    Returns:
        One line per difference, e.g. ``training.epochs: 10 in the run, 20 now``; empty when equal.
    """
    override_keys = _set_by(overrides)
    old, new = flatten(recorded), flatten(expected)
    changes = []
    for key in sorted(old.keys() | new.keys()):
        fallback = (defaults or {}).get(key, MISSING)
        before, now = old.get(key, fallback), new.get(key, fallback)
        if before != now and not _overridden(key, override_keys):
            changes.append(f"{key}: {before!r} in the run, {now!r} now")
    return changes
