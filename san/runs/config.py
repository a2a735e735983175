"""Run configuration: YAML layers plus ``--set key=value`` overrides, strictly checked.

Layers, later ones winning: ``configs/base.yaml`` (every known key), ``configs/<method>.yaml``,
then either the user's ``--config FILE`` or, on a machine without a GPU, ``configs/presets/cpu.yaml``;
finally ``--set`` overrides. A preset (or ``--config`` file) may hold ``per_method: {<method>: layer}``,
merged after the rest of that file for that method only (e.g. the pair networks' CPU recipe, whose
hyper-parameters other methods do not have). A key that the base does not know is an error, never ignored.
Algorithm hyper-parameters live under ``hparams`` and are checked by the algorithm registry.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

# san/configs links to the repository's configs/ and is shipped in the wheel as package data.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
OPEN_SECTIONS = ("hparams",)  # checked by the algorithm, not against base.yaml
PER_METHOD = "per_method"  # in a method-independent file (a preset): layers applied to one method only


class ConfigError(ValueError):
    """A config file or override names an unknown key or has a bad value."""


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; raises ConfigError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from error
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return loaded


def _check_known(layer: Mapping[str, Any], known: Mapping[str, Any], source: str, prefix: str = "") -> None:
    for key, value in layer.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            raise ConfigError(f"{source}: unknown key {dotted!r}; known keys here: {sorted(known)}")
        if isinstance(known[key], dict) and key not in OPEN_SECTIONS:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {dotted!r} must be a mapping, got {value!r}")
            _check_known(value, known[key], source, dotted + ".")


def merge(base: dict[str, Any], layer: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``layer`` into a copy of ``base`` (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _leaf_paths(config: Mapping[str, Any], prefix: str = "") -> dict[str, list[str]]:
    leaves: dict[str, list[str]] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and key not in OPEN_SECTIONS:
            for leaf, paths in _leaf_paths(value, dotted + ".").items():
                leaves.setdefault(leaf, []).extend(paths)
        else:
            leaves.setdefault(key, []).append(dotted)
    return leaves


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``key=value``; the value is parsed as YAML (numbers, booleans, null, lists)."""
    if "=" not in text:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def format_override(key: str, value: Any) -> str:
    """The ``key=value`` text that :func:`parse_override` reads back as ``(key, value)``: the value in
    YAML flow style (strings quoted where YAML would read them as something else).

    Raises:
        ConfigError: the key is empty or holds ``=``, or the value is not plain data.
    """
    if not isinstance(key, str) or not key.strip() or "=" in key:
        raise ConfigError(f"override key must be a config key such as 'training.epochs', got {key!r}")
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    try:
        text = yaml.safe_dump(value, default_flow_style=True, width=float("inf")).strip()
    except yaml.YAMLError as error:
        raise ConfigError(f"override {key}: {value!r} is not plain data (numbers, text, lists)") from error
    return f"{key}={text.removesuffix('...').strip()}"


def override_strings(overrides: Mapping[str, Any] | Iterable[str] | None) -> list[str]:
    """Overrides as ``key=value`` strings: a mapping ``{"training.epochs": 1}`` is formatted with
    :func:`format_override`; strings are kept as they are."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        return [format_override(k, v) for k, v in overrides.items()]
    if isinstance(overrides, str):
        return [overrides]
    return list(overrides)


def _resolve_key(config: Mapping[str, Any], key: str, hparam_names: Iterable[str]) -> list[str]:
    """Dotted path of a key; a bare leaf name is accepted when it is unambiguous."""
    if "." in key:
        return key.split(".")
    leaves = _leaf_paths(config)
    for name in hparam_names:
        leaves.setdefault(name, []).append(f"hparams.{name}")
    paths = sorted(set(leaves.get(key, [])))
    if len(paths) == 1:
        return paths[0].split(".")
    if not paths:
        raise ConfigError(f"--set: unknown key {key!r}; see configs/base.yaml and the algorithm's hparams")
    raise ConfigError(f"--set: {key!r} is ambiguous, write one of {paths}")


def apply_overrides(
    config: dict[str, Any], overrides: Iterable[str], hparam_names: Iterable[str] = ()
) -> dict[str, Any]:
    """Apply ``key=value`` overrides (dotted or unambiguous leaf keys) to a copy of the config.

    Raises:
        ConfigError: a key is unknown or ambiguous.
    """
    config = copy.deepcopy(config)
    hparam_names = list(hparam_names)
    for text in overrides:
        key, value = parse_override(text)
        path = _resolve_key(config, key, hparam_names)
        node = config
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                raise ConfigError(f"--set: unknown key {key!r}")
            node = node[part]
        if path[0] not in OPEN_SECTIONS and path[-1] not in node:
            raise ConfigError(f"--set: unknown key {'.'.join(path)!r}; known here: {sorted(node)}")
        node[path[-1]] = value
    return config


def resolve_config(
    method: str,
    *,
    config_file: str | Path | None = None,
    use_cpu_preset: bool = False,
    overrides: Iterable[str] = (),
    hparam_names: Iterable[str] = (),
    config_dir: Path = CONFIG_DIR,
) -> tuple[dict[str, Any], list[str]]:
    """Build the run configuration of a method.

    Returns:
        The resolved config and the list of layers used (for the log and the run record).

    Raises:
        ConfigError: a file is missing or invalid, or a key is unknown.
    """
    base = read_yaml(config_dir / "base.yaml")
    config, layers = base, [str(config_dir / "base.yaml")]
    method_file = config_dir / f"{method}.yaml"
    extra = [method_file] if method_file.is_file() else []
    if config_file is not None:
        extra.append(Path(config_file))
    elif use_cpu_preset:
        extra.append(config_dir / "presets" / "cpu.yaml")
    for path in extra:
        layer = read_yaml(path)
        specific = layer.pop(PER_METHOD, None) or {}
        if not isinstance(specific, dict):
            raise ConfigError(f"{path}: {PER_METHOD!r} must map method names to config layers")
        for part, source in (
            (layer, str(path)),
            (specific.get(method) or {}, f"{path} ({PER_METHOD}.{method})"),
        ):
            _check_known(part, base, source)
            config = merge(config, part)
        layers.append(str(path))
    config["method"] = method
    config = apply_overrides(config, overrides, hparam_names)
    if overrides:
        layers.append("--set " + " ".join(overrides))
    return config, layers
