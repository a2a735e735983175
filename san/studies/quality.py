"""Data-quality studies (He et al.): one factor, several levels, each an ordinary benchmark run.

A study job is a benchmark job plus a quality condition: ``quality.factor`` and ``quality.level`` are
passed to the run as config overrides, so each level is a normal run directory
``<out>/<method>/<task>/<factor>/<level>/seed<N>`` (the clean baseline: ``<out>/<method>/<task>/clean/
seed<N>``, shared by every factor of the same output folder). The benchmark runner makes the study
idempotent and resumable. Results are read back from the run records into a table and a curve of test
and target accuracy (mean ± std over seeds) against the level, with the clean baseline marked.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from data_tools.corruption import (
    CLEAN_LEVELS,
    DEFAULT_LEVELS,
    CorruptionError,
    QualitySetting,
)
from data_tools.plotting import save_figure, subplots
from data_tools.quality_factors import STUDY_FACTORS
from san.benchmark.jobs import GridError, Job, JobExecutor, expand_grid
from san.benchmark.tables import Stat, format_stat, stat_over_seeds
from san.runs.records import RESULTS_FILE, read_record

CLEAN = "clean"
LEVEL_LABELS: dict[str, str] = {
    "label-noise": "fraction of training labels flipped",
    "class-removal": "class removed from training",
    "size": "fraction of training pairs kept",
    "gaussian-noise": "Gaussian noise sigma (of 255)",
    "salt-pepper": "salt-and-pepper fraction of pixels",
    "brightness": "gamma",
    "blur": "Gaussian blur sigma (pixels)",
}
Level = float | str


def level_text(level: Level) -> str:
    """A level as it appears in directory names and tables: ``0.1``, ``16``, ``Zrn``."""
    return f"{level:g}" if isinstance(level, float | int) else str(level)


@dataclass(frozen=True)
class QualityJob(Job):
    """A benchmark job under one quality condition (``factor`` ``none``: the clean baseline)."""

    factor: str = "none"
    level: Level | None = None

    @property
    def condition(self) -> str:
        """``clean`` or ``<factor>/<level>`` (a part of the run directory)."""
        return CLEAN if self.factor == "none" else f"{self.factor}/{level_text(self.level)}"

    @property
    def name(self) -> str:
        """The job's run directory relative to the output folder, e.g. ``svm/mixed/label-noise/0.2/seed0``."""
        return f"{self.method}/{self.task}/{self.condition}/seed{self.seed}"

    def run_dir(self, out: str | Path) -> Path:
        """The job's run directory under ``out``."""
        return Path(out) / self.name

    @property
    def overrides(self) -> tuple[str, ...]:
        """The config overrides that put the run under this condition."""
        if self.factor == "none":
            return ()
        return (f"quality.factor={self.factor}", f"quality.level={level_text(self.level)}")


def default_levels(factor: str, classes: Sequence[str]) -> list[Level]:
    """The issue's levels of a factor; for ``class-removal`` every class in turn.

    Raises:
        GridError: an unknown factor.
    """
    if factor not in STUDY_FACTORS:
        raise GridError(f"--factor must be one of {', '.join(STUDY_FACTORS)}, got {factor!r}")
    return list(classes) if factor == "class-removal" else list(DEFAULT_LEVELS[factor])


def parse_levels(factor: str, text: str) -> list[Level]:
    """``0,0.1,0.2`` (class names for ``class-removal``) -> checked levels, in order, without repeats.

    Raises:
        GridError: an unknown factor, or a level that is not a number or out of its range.
    """
    default_levels(factor, [])  # checks the factor
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise GridError(f"--levels: expected a comma-separated list, got {text!r}")
    levels: list[Level] = []
    for item in items:
        try:
            level: Level = item if factor == "class-removal" else float(item)
            QualitySetting(factor, level)
        except (ValueError, CorruptionError) as error:
            raise GridError(f"--levels: {item!r} is not a level of {factor}: {error}") from error
        levels.append(level)
    return list(dict.fromkeys(levels))


def expand_study(
    methods: Sequence[str],
    protocols: Sequence[tuple[str, str | None]],
    rivers: Sequence[str],
    seeds: Sequence[int],
    factor: str,
    levels: Sequence[Level],
) -> list[QualityJob]:
    """The clean job and one job per level for every benchmark job of the grid (seed by seed). A level
    that changes nothing (label-noise 0, size 1, ...) is the clean job, run once.

    Raises:
        GridError: as :func:`san.benchmark.jobs.expand_grid`.
    """
    jobs: list[QualityJob] = []
    for base in expand_grid(methods, protocols, rivers, seeds):
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(Job)}
        jobs.append(QualityJob(**fields))
        jobs += [
            QualityJob(**fields, factor=factor, level=level)
            for level in levels
            if CLEAN_LEVELS.get(factor) != level
        ]
    return list(dict.fromkeys(jobs))


class QualityHookMissing(RuntimeError):
    """A run finished without applying its quality factor (the pipeline's hook is not in place)."""


@dataclass(frozen=True)
class QualityExecutor:
    """Runs a QualityJob with its condition's overrides added to the base executor's, and checks from the
    run record that the condition was applied (else the record is removed and the job fails)."""

    base: JobExecutor

    def __call__(self, job: QualityJob, run_dir: Path, resume: bool) -> dict[str, Any]:
        """Run (or resume) one job; returns its record.

        Raises:
            QualityHookMissing: the run did not apply its factor. Whatever the run raises.
        """
        executor = dataclasses.replace(self.base, overrides=(*self.base.overrides, *job.overrides))
        record = executor(job, run_dir, resume)
        if job.factor != "none" and (problem := _unapplied(job, record)):
            (run_dir / RESULTS_FILE).unlink(missing_ok=True)
            raise QualityHookMissing(f"{job.name}: the run ignored quality.factor={job.factor}; {problem}")
        return record


def _unapplied(job: QualityJob, record: dict[str, Any]) -> str | None:
    """Why a record shows that its job's factor was not applied, or None."""
    applied = (record.get("extras") or {}).get("quality") or {}
    if applied.get("factor") != job.factor:
        return "its record has no extras.quality of this factor (hook missing in san/runs/lifecycle.py)"
    if applied.get("action") == "degraded" and not applied.get("images_applied"):
        return (
            "its images were never degraded "
            "(hook missing in san/training/experiment.py or baselines/experiment.py)"
        )
    return None


RUN_COLUMNS = (
    "method",
    "task",
    "condition",
    "factor",
    "level",
    "seed",
    "test_accuracy",
    "test_macro_f1",
    "target_accuracy",
    "target_macro_f1",
    "fraction_changed",
)
SPLITS = ("test", "target")


def collect(jobs: Sequence[QualityJob], out: str | Path) -> pd.DataFrame:
    """One row per complete job (:data:`RUN_COLUMNS`): test and target accuracy and macro-F1 (NaN when the
    split is absent) and the fraction of the training split changed (0 for the clean job)."""
    rows = []
    for job in jobs:
        record = read_record(job.run_dir(out))
        if record is None or record.get("status") != "complete":
            continue
        metrics = record["metrics"]
        quality = (record.get("extras") or {}).get("quality") or {}
        changed = quality.get("fraction_changed", 0.0 if job.factor == "none" else math.nan)
        scores = {
            f"{split}_{metric}": metrics.get(split, {}).get(metric, math.nan)
            for split in SPLITS
            for metric in ("accuracy", "macro_f1")
        }
        rows.append(
            {
                "method": job.method,
                "task": job.task,
                "condition": job.condition,
                "factor": job.factor,
                "level": job.level,
                "seed": job.seed,
                **scores,
                "fraction_changed": changed,
            }
        )
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS))


def _condition(factor: str, level: Level) -> str:
    return CLEAN if CLEAN_LEVELS.get(factor) == level else f"{factor}/{level_text(level)}"


def summarise(runs: pd.DataFrame, levels: Sequence[Level], factor: str) -> pd.DataFrame:
    """Per condition (clean first, then the levels in order): test and target accuracy, mean and sample
    std over seeds, where a seed's value is the mean over its tasks (the held-out rivers of loro).

    Returns:
        Columns ``condition``, ``level`` (None for clean), ``fraction_changed`` and, per split (test,
        target), ``<split>_mean``, ``<split>_std`` and ``<split>_seeds``; NaN (0 seeds) when missing.
    """
    rows = []
    for condition, level in [(CLEAN, None), *((_condition(factor, lv), lv) for lv in levels)]:
        per_seed = (
            runs[runs["condition"] == condition]
            .groupby("seed")[["test_accuracy", "target_accuracy", "fraction_changed"]]
            .mean()
        )
        row: dict[str, Any] = {
            "condition": condition,
            "level": level,
            "fraction_changed": per_seed["fraction_changed"].mean(),
        }
        for split in SPLITS:
            stat = stat_over_seeds(per_seed[f"{split}_accuracy"])
            stat = stat or Stat(math.nan, math.nan, 0)
            row |= {f"{split}_mean": stat.mean, f"{split}_std": stat.std, f"{split}_seeds": stat.n_seeds}
        rows.append(row)
    return pd.DataFrame(rows)


def _cell(row: pd.Series, split: str, n_seeds: int) -> str:
    if not row[f"{split}_seeds"]:
        return format_stat(None, n_seeds)
    return format_stat(Stat(row[f"{split}_mean"], row[f"{split}_std"], int(row[f"{split}_seeds"])), n_seeds)


def render_markdown(summary: pd.DataFrame, *, method: str, protocol: str, factor: str) -> str:
    """A Markdown table: level, share of the training split changed, test (and, for loro, target) accuracy."""
    splits = [s for s in SPLITS if summary[f"{s}_seeds"].any()]
    n_seeds = int(summary[[f"{s}_seeds" for s in SPLITS]].to_numpy().max()) if len(summary) else 0
    header = ["level", "training split changed", *(f"{s} accuracy" for s in splits)]
    lines = [
        f"**{method}, {protocol}: {LEVEL_LABELS[factor]}** (mean ± std over {n_seeds} seed(s); "
        "clean = no corruption)",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join([":---", *["---:"] * (len(header) - 1)]) + "|",
    ]
    for _, row in summary.iterrows():
        baseline = pd.isna(row["level"])  # the clean run's own row (a None level reads back as NaN)
        label = CLEAN if baseline else level_text(row["level"])
        if not baseline and row["condition"] == CLEAN:
            label += " (= clean)"
        changed = "—" if pd.isna(row["fraction_changed"]) else f"{row['fraction_changed']:.0%}"
        lines.append("| " + " | ".join([label, changed, *(_cell(row, s, n_seeds) for s in splits)]) + " |")
    return "\n".join(lines) + "\n"


def plot_study(summary: pd.DataFrame, path: str | Path, *, method: str, protocol: str, factor: str) -> Path:
    """Test (and target) accuracy against the level with ± std bars; the clean baseline as a dashed line
    with its ± std band. Class removal is plotted per removed class."""
    levels = summary[summary["level"].notna()]
    clean = summary[summary["level"].isna()].iloc[0]
    categorical = factor == "class-removal"
    x = list(range(len(levels))) if categorical else levels["level"].astype(float).tolist()
    figure, axis = subplots(figsize=(6.4, 4.0))
    for split, colour in (("test", "tab:blue"), ("target", "tab:orange")):
        if not levels[f"{split}_seeds"].any() and not clean[f"{split}_seeds"]:
            continue
        axis.errorbar(
            x,
            levels[f"{split}_mean"],
            yerr=levels[f"{split}_std"].fillna(0.0),
            marker="o",
            capsize=3,
            color=colour,
            label=f"{split} accuracy",
        )
        if clean[f"{split}_seeds"]:
            mean, std = clean[f"{split}_mean"], clean[f"{split}_std"]
            std = 0.0 if pd.isna(std) else std
            axis.axhline(mean, color=colour, linestyle="--", linewidth=1, label=f"clean {split}")
            axis.axhspan(mean - std, mean + std, color=colour, alpha=0.1, linewidth=0)
    if categorical:
        axis.set_xticks(x, [level_text(v) for v in levels["level"]], rotation=45)
    elif factor in ("brightness", "blur"):  # levels double from one to the next
        axis.set_xscale("log", base=2)
    axis.set(
        xlabel=LEVEL_LABELS[factor],
        ylabel="accuracy",
        ylim=(0.0, 1.0),
        title=f"{method}, {protocol}: {factor} (mean ± std over seeds)",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    return save_figure(figure, path, dpi=110)


def write_study(
    jobs: Sequence[QualityJob],
    out: str | Path,
    *,
    method: str,
    protocol: str,
    factor: str,
    levels: Sequence[Level],
) -> tuple[str, list[Path]]:
    """Read the jobs' records and write ``<out>/<method>-<protocol>-<factor>.{md,csv,png}``.

    Returns:
        The Markdown table and the paths written (no PNG when no run is complete).
    """
    stem = Path(out) / f"{method}-{protocol}-{factor}"
    summary = summarise(collect(jobs, out), levels, factor)
    markdown = render_markdown(summary, method=method, protocol=protocol, factor=factor)
    paths = [stem.with_suffix(".md"), stem.with_suffix(".csv")]
    paths[0].write_text(markdown, encoding="utf-8")
    summary.to_csv(paths[1], index=False, float_format="%.6g")
    if summary[[f"{s}_seeds" for s in SPLITS]].to_numpy().any():
        paths.append(
            plot_study(summary, stem.with_suffix(".png"), method=method, protocol=protocol, factor=factor)
        )
    return markdown, paths
