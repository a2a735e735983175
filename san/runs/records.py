"""Run records: ``results.json`` in the run directory and one line of ``<out>/results.jsonl``.

The record is the source of truth for every table. Keys (docs/architecture.md): method, protocol,
sources, targets, seed, classes, selection, metrics, timing, config, versions, data; plus
``status`` ('complete' or 'failed'), ``run_dir`` and ``extras`` (method-specific facts).
"""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from data_tools.atomic import append_line, atomic_write_text

RECORD_KEYS: tuple[str, ...] = (
    "method",
    "protocol",
    "sources",
    "targets",
    "seed",
    "classes",
    "selection",
    "metrics",
    "timing",
    "config",
    "versions",
    "data",
)
METRIC_KEYS: tuple[str, ...] = (
    "accuracy",
    "balanced_accuracy",
    "macro_f1",
    "kappa",
    "n",
    "per_class",
    "confusion",
    "per_domain",
)
RESULTS_FILE = "results.json"
RESULTS_LOG = "results.jsonl"


def package_versions() -> dict[str, str]:
    """Versions of Python, the key libraries and the code's git commit (if in a checkout)."""
    versions = {"python": platform.python_version()}
    for package in ("torch", "torchvision", "numpy", "scikit-learn", "albumentations", "pandas", "wandb"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
            check=False,
        ).stdout.strip()
        versions["git_commit"] = commit or "unknown"
    except (OSError, subprocess.SubprocessError):
        versions["git_commit"] = "unknown"
    return versions


def validate_record(record: dict[str, Any]) -> None:
    """Raise ValueError naming what is missing from a run record."""
    if missing := [k for k in RECORD_KEYS if k not in record]:
        raise ValueError(f"run record lacks key(s) {missing}")
    for split, values in record["metrics"].items():
        if missing := [k for k in METRIC_KEYS if k not in values]:
            raise ValueError(f"metrics of split {split!r} lack key(s) {missing}")


def write_record(record: dict[str, Any], run_dir: str | Path, results_log: str | Path | None) -> Path:
    """Write ``results.json`` atomically, then append the same object as one line to the log.

    Returns the path of results.json. The log line is appended last, so a crash leaves at worst a
    complete results.json without its log line, never half a record.
    """
    validate_record(record)
    text = json.dumps(record, sort_keys=True, default=str)
    path = atomic_write_text(Path(run_dir) / RESULTS_FILE, text + "\n")
    if results_log is not None:
        append_line(results_log, text)
    return path


def read_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The record in a run directory, or None if there is none (or it is unreadable)."""
    path = Path(run_dir) / RESULTS_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def summary_table(record: dict[str, Any]) -> pd.DataFrame:
    """In-domain test and target accuracy and macro-F1 per river (and overall), from a run record."""
    rows = []
    for split in ("test", "target"):
        if split not in record["metrics"]:
            continue
        values = record["metrics"][split]
        for domain, per_domain in values["per_domain"].items():
            rows.append(
                {"split": split, "river": domain, **{k: per_domain[k] for k in ("n", "accuracy", "macro_f1")}}
            )
        if len(values["per_domain"]) > 1:
            rows.append(
                {"split": split, "river": "(all)", **{k: values[k] for k in ("n", "accuracy", "macro_f1")}}
            )
    return pd.DataFrame(rows, columns=["split", "river", "n", "accuracy", "macro_f1"])
