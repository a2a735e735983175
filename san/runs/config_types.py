"""Type checks of a resolved config: every value has the type of its default, a few have a range.

The defaults are the schema: ``configs/base.yaml`` for the sections, the method's
``DEFAULT_HPARAMS`` for ``hparams``. Written by hand rather than with OmegaConf's structured configs
because the defaults already live in YAML and in the algorithms, and a second schema would repeat
them; the rule is small (``bool`` is only ``bool``, ``int`` only ``int``, ``float`` takes an ``int``,
a ``None`` default takes anything).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from san.runs.config import CONFIG_DIR, ConfigError, read_yaml

# Checks beyond the type, by dotted key: a message when the value is out of range, else None.
_POSITIVE = ("must be >= 1", lambda v: v >= 1)
_FRACTION = ("must be in [0, 1)", lambda v: 0 <= v < 1)
_NON_NEGATIVE = ("must be >= 0", lambda v: v >= 0)
RANGES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "data.size": _POSITIVE,
    "data.test_fraction": _FRACTION,
    "data.val_fraction": _FRACTION,
    "training.epochs": _POSITIVE,
    "training.batch_size": _POSITIVE,
    "training.eval_batch_size": _POSITIVE,
    "training.warmup_epochs": _NON_NEGATIVE,
    "hparams.lr": ("must be > 0", lambda v: v > 0),
    "hparams.weight_decay": _NON_NEGATIVE,
    "hparams.label_smoothing": _FRACTION,
}

# Keys whose default is a word but which also take a number (checked instead of the type).
ALTERNATIVES: dict[str, Callable[[Any], bool]] = {
    "training.num_workers": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,  # or 'auto'
}


def _type_name(value: Any) -> str:
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def type_problem(default: Any, value: Any) -> str | None:
    """Why ``value`` cannot stand where ``default`` does (None: it can)."""
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    elif isinstance(default, (list, tuple)):
        ok = isinstance(value, (list, tuple))
    elif isinstance(default, Mapping):
        ok = isinstance(value, Mapping)
    else:
        ok = isinstance(value, type(default))
    return None if ok else f"expected {_type_name(default)} like its default {default!r}, got {value!r}"


def config_problems(
    config: Mapping[str, Any], base: Mapping[str, Any], hparam_defaults: Mapping[str, Any]
) -> list[str]:
    """Every value of ``config`` whose type differs from its default, or which is out of range.

    Returns:
        Lines like ``training.epochs: expected an integer like its default 30, got 'two'``.
    """
    problems = []
    schema = {**base, "hparams": hparam_defaults}
    for section, defaults in schema.items():
        values = config.get(section)
        if not isinstance(defaults, Mapping) or not isinstance(values, Mapping):
            continue
        for key, value in values.items():
            dotted = f"{section}.{key}"
            if dotted in ALTERNATIVES and ALTERNATIVES[dotted](value):
                continue
            if key in defaults and (problem := type_problem(defaults[key], value)):
                problems.append(f"{dotted}: {problem}")
            elif dotted in RANGES and value is not None:
                message, check = RANGES[dotted]
                if not check(value):
                    problems.append(f"{dotted}: {message}, got {value!r}")
    return problems


def check_config_types(config: Mapping[str, Any], hparam_defaults: Mapping[str, Any]) -> None:
    """Raise ``san.runs.config.ConfigError`` naming every mistyped or out-of-range value of ``config``."""
    if problems := config_problems(config, read_yaml(CONFIG_DIR / "base.yaml"), hparam_defaults):
        raise ConfigError("bad config value(s):\n  " + "\n  ".join(problems))
