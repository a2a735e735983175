"""Comparison tables built only from run records (``results.json``), as Markdown, CSV or LaTeX.

:func:`load_runs` reads every complete record under some directories into a tidy DataFrame (one
row per run, split and river); :func:`build_tables` turns it into the mixed-protocol table, the
leave-one-river-out table and their per-class F1 tables; :func:`render` formats them. A value is
the mean ± sample standard deviation over seeds; a run that does not exist is shown as missing,
never as zero.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from data_tools.names import ordered_classes, ordered_domains
from san.benchmark.formats import FORMATS
from san.benchmark.runner import FAILURE_FILE
from san.benchmark.selection import (
    RULE_LABELS,
    SelectionError,
    auxiliary_key,
    check_rule,
    reselectable,
    select,
)
from san.evaluation.protocols import canonical_protocol
from san.evaluation.quantification import QUANTIFIERS
from san.methods import families, method_names
from san.runs.records import RESULTS_FILE

log = logging.getLogger(__name__)

OVERALL = "overall"
AVERAGE = "average"
MISSING = "—"
TIDY_COLUMNS = (
    "method",
    "protocol",
    "target",
    "sources",
    "seed",
    "split",
    "river",
    "accuracy",
    "macro_f1",
    "n",
    "selection",
    "classes",
    "per_class_f1",
    "confusion",
    "probe",
    "path",
    "assemblage",
)
FAILURE_COLUMNS = ("method", "protocol", "target", "seed", "name", "error", "path")
CSV_COLUMNS = ("table", "row", "method", "group", "metric", "mean", "std", "n_seeds", "best")
# Column metric -> its label and, for leave-one-river-out, the (split, record metric) it reads.
METRIC_LABELS = {
    "accuracy": "acc",
    "macro_f1": "macro-F1",
    "target_accuracy": "target acc",
    "target_macro_f1": "target macro-F1",
    "in_domain_accuracy": "in-domain acc",
    "f1": "",
    **{f"mae_{name}": f"{name} MAE (pp)" for name in QUANTIFIERS},
    "mae_chosen": "chosen MAE (pp)",
    "coverage_chosen": "chosen 95% coverage",
    "probe_accuracy": "probe acc",
    "probe_class_only": "class-only acc",
    "probe_majority": "majority",
    "probe_residual": "residual probe acc",
    "probe_residual_majority": "residual majority",
}
# River-probe table columns -> the record's river_probe keys (san.evaluation.river_probe).
PROBE_METRICS = {
    "probe_accuracy": "accuracy",
    "probe_class_only": "class_only",
    "probe_majority": "majority",
    "probe_residual": "residual_accuracy",
    "probe_residual_majority": "residual_majority",
}
LORO_METRICS = {
    "target_accuracy": ("target", "accuracy"),
    "target_macro_f1": ("target", "macro_f1"),
    "in_domain_accuracy": ("test", "accuracy"),
}
# Rows of the per-class tables: (family, label); a family with several methods shows its best one.
PER_CLASS_ROWS = (
    ("classical", "best classical"),
    ("cnn", "best CNN"),
    ("erm", "erm"),
    ("san", "san"),
    ("dg", "best DG"),
)
SELECTION_ATTR = "selection"  # DataFrame.attrs key: the rule the tidy frame was built under


# ---------------------------------------------------------------------------------------------- loading


def _record_paths(dirs: Iterable[str | Path]) -> list[Path]:
    paths: dict[Path, None] = {}
    for directory in map(Path, dirs):
        if not directory.exists():
            raise FileNotFoundError(f"results directory {str(directory)!r} does not exist")
        found = [directory] if directory.is_file() else sorted(directory.rglob(RESULTS_FILE))
        paths.update(dict.fromkeys(p.resolve() for p in found))  # overlapping directories count once
    return list(paths)


def _run_entry(path: Path, record: dict[str, Any]) -> dict[str, Any]:
    """One run's identity: ``loro`` with a single target river (``cross`` is its former name, as in
    older records) is leave-one-river-out; held-out runs with several targets are ``cross``."""
    targets = list(record.get("targets") or [])
    protocol = record["protocol"]
    if canonical_protocol(protocol) == "loro":
        protocol = "loro" if len(targets) == 1 else "cross"
    return {
        "method": record["method"],
        "protocol": protocol,
        "target": "+".join(targets),
        "sources": "+".join(record["sources"]),
        "seed": int(record["seed"]),
        "selection": (record.get("selection") or {}).get("rule", "not recorded"),
        "path": str(path),
        "mtime": path.stat().st_mtime,
        "record": record,
        "config": _fingerprint(record.get("config")),
        "manifest_hash": (record.get("data") or {}).get("manifest_hash"),
    }


def _keep_one(runs: pd.DataFrame, key: list[str], order: list[str], why: str) -> pd.DataFrame:
    """One run per ``key``: the first by ``order`` (descending); a warning names the ones dropped."""
    kept = []
    for _, group in runs.groupby(key, sort=False):
        group = group.sort_values(order, ascending=False, kind="stable")
        if len(group) > 1:
            first = group.iloc[0]
            target = f" -> {first['target']}" if first["target"] else ""
            log.warning(
                "%d runs of %s, %s%s, seed %d (%s): keeping %s, ignoring %s",
                len(group),
                first["method"],
                first["protocol"],
                target,
                first["seed"],
                why,
                first["path"],
                ", ".join(group["path"].iloc[1:]),
            )
        kept.append(group.iloc[:1])
    return pd.concat(kept, ignore_index=True)


def _fingerprint(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _warn_if_mixed(runs: pd.DataFrame, column: str, what: str) -> None:
    """Warn when one method's runs differ in ``column`` (a table should compare like with like)."""
    for method, group in runs.groupby("method"):
        if group[column].nunique() > 1:
            log.warning(
                "the runs of %s were made with %d different %s; the tables mix them (%s)",
                method,
                group[column].nunique(),
                what,
                ", ".join(group.drop_duplicates(column)["path"]),
            )


def _assemblage_cells(record: dict[str, Any], split: str) -> dict[str, float] | None:
    """A split's APP errors per quantifier from the record's ``assemblage`` entry (``mae_<name>``,
    ``mae_chosen``, ``coverage_chosen``), or None for a record without one."""
    entry = record.get("assemblage") or {}
    evaluated = entry.get("splits", {}).get(split)
    if not evaluated:
        return None
    cells = {f"mae_{name}": values["mae_pp"] for name, values in evaluated["quantifiers"].items()}
    chosen = entry.get("choice", {}).get("chosen")
    if chosen in evaluated["quantifiers"]:
        cells["mae_chosen"] = evaluated["quantifiers"][chosen]["mae_pp"]
    if "coverage" in evaluated.get("chosen_coverage", {}):
        cells["coverage_chosen"] = evaluated["chosen_coverage"]["coverage"]
    return cells


def _measured_probe(record: dict[str, Any]) -> dict[str, Any] | None:
    probe = (record.get("extras") or {}).get("river_probe") or {}
    return probe if probe.get("status") == "measured" else None


def _tidy_rows(run: pd.Series) -> list[dict[str, Any]]:
    record, rows = run["record"], []
    base = {k: run[k] for k in ("method", "protocol", "target", "sources", "seed", "selection", "path")}
    for split, metrics in record["metrics"].items():
        common = {**base, "split": split, "classes": list(record["classes"])}
        rows.append(
            {
                **common,
                "river": OVERALL,
                "accuracy": metrics["accuracy"],
                "macro_f1": metrics["macro_f1"],
                "n": metrics["n"],
                "per_class_f1": {c: v["f1"] for c, v in metrics["per_class"].items()},
                "confusion": metrics["confusion"],
                "assemblage": _assemblage_cells(record, split),
                "probe": _measured_probe(record) if split == "test" else None,
            }
        )
        rows += [
            {
                **common,
                "river": river,
                "accuracy": values["accuracy"],
                "macro_f1": values["macro_f1"],
                "n": values["n"],
                "per_class_f1": None,
                "confusion": None,
                "assemblage": None,
                "probe": None,
            }
            for river, values in metrics.get("per_domain", {}).items()
        ]
    return rows


def chosen_epochs(dirs: Sequence[str | Path]) -> pd.DataFrame:
    """Per deep run under ``dirs``: method, task, seed, the chosen epoch and the epochs run (from
    ``selection``); classical runs (no epochs) are left out."""
    rows = []
    for path in _record_paths(dirs):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            continue
        selection = record.get("selection") or {}
        if record.get("status") == "complete" and "epochs_run" in selection and not is_search_trial(record):
            rows.append(
                {
                    "method": record["method"],
                    "targets": "+".join(record.get("targets") or []) or "mixed",
                    "seed": record["seed"],
                    "epoch": int(selection["epoch"]),
                    "epochs_run": int(selection["epochs_run"]),
                    "plain_epoch": selection.get("plain_epoch"),
                }
            )
    return pd.DataFrame(rows, columns=["method", "targets", "seed", "epoch", "epochs_run", "plain_epoch"])


def chosen_epoch_histogram(epochs: pd.DataFrame) -> str:
    """Markdown: how many runs chose each epoch, per method, and how many chose one of the last three."""
    if epochs.empty:
        return "No deep runs.\n"
    lines = ["| method | runs | chosen epoch: runs | among the last 3 |", "|---|---|---|---|"]
    for method in method_order(epochs["method"]):
        frame = epochs[epochs["method"] == method]
        counts = frame["epoch"].value_counts().sort_index()
        late = int((frame["epoch"] > frame["epochs_run"] - 3).sum())
        histogram = ", ".join(f"{epoch}: {n}" for epoch, n in counts.items())
        lines.append(f"| {method} | {len(frame)} | {histogram} | {late} of {len(frame)} |")
    return "\n".join(lines) + "\n"


def method_order(methods: Iterable[str]) -> list[str]:
    """Distinct methods in the benchmark's order (classical, CNN, ERM, SAN), then others alphabetically."""
    present = set(methods)
    known = method_names()
    return [m for m in known if m in present] + sorted(present.difference(known))


def is_search_trial(record: dict[str, Any]) -> bool:
    """True for one trial of a hyper-parameter search (``san.benchmark.hparam_search``): the job's
    result is the chosen trial's copy, so tables skip the trials themselves."""
    return (record.get("hparam_search") or {}).get("role") == "trial"


#: Where each evaluation variant of a run record comes from, for the warning when none holds it.
VARIANT_SOURCES = {
    "tta": "runs evaluate it only when trained with evaluation.tta: true (--set evaluation.tta=true)",
    "plain": "only runs with weight averaging (training.averaging: ema or swa, or SWAD) record it",
}


def variant_records(record: dict[str, Any], variants: Sequence[str]) -> list[dict[str, Any]]:
    """The record, then one record per requested evaluation variant it holds (``record['variants']``:
    ``tta`` = the 8 dihedral views averaged, ``plain`` = the raw weights beside the averaged ones),
    named ``<method>+<variant>`` so that a table shows it as a row beside the plain figure."""
    held = record.get("variants") or {}
    extra = [
        {**record, "method": f"{record['method']}+{name}", "metrics": held[name]}
        for name in variants
        if name in held
    ]
    return [record, *extra]


def _auxiliary_runs(entries: list[dict[str, Any]]) -> dict[tuple[str, int, str, str], dict[str, Any]]:
    """The leave-one-source-out validation records (protocol ``loso``) by their key, newest first."""
    found: dict[tuple[str, int, str, str], dict[str, Any]] = {}
    for entry in sorted(entries, key=lambda e: e["mtime"]):
        record = entry["record"]
        found[auxiliary_key(record["method"], record["seed"], record["sources"], record["targets"][0])] = (
            record
        )
    return found


def _reselected(
    entry: dict[str, Any], rule: str, auxiliary: dict, left_out: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The entry with its test and target figures at the epoch ``rule`` picks; the entry itself when the
    run cannot follow a rule (classical, SWAD's average, mixed); None when it could but the rule's
    inputs are missing (e.g. no leave-one-source-out runs), with the reason under its method in
    ``left_out``."""
    record = entry["record"]
    if rule == "training" or entry["protocol"] == "mixed" or not reselectable(record):
        return entry
    try:
        chosen = select(record, rule, auxiliary)
    except SelectionError as error:
        left_out.setdefault(entry["method"], []).append(f"{entry['path']}: {error}")
        return None
    metrics = {split: dict(values) for split, values in record["metrics"].items()}
    for split, scores in chosen.scores.items():
        # Per-epoch scores are overall figures: per-river, per-class and confusion are not recorded.
        n = scores.get("n", metrics[split]["n"])
        metrics[split] = {**scores, "n": n, "per_class": {}, "confusion": None, "per_domain": {}}
    selected = {**record, "metrics": metrics, "selection": {"rule": chosen.rule, "epoch": chosen.epoch}}
    return {**entry, "record": selected, "selection": chosen.rule}


def load_runs(
    dirs: Sequence[str | Path], selection: str = "training", *, variants: Sequence[str] = ()
) -> pd.DataFrame:
    """Every complete run record under ``dirs`` (searched recursively; a results.json path also works),
    with the requested evaluation ``variants`` as rows ``<method>+<variant>`` (:func:`variant_records`),
    under the model-selection rule ``selection`` (:mod:`san.benchmark.selection`).

    Duplicate runs (same method, protocol, sources, targets and seed) are reported and the newest
    file is kept; runs of the same method, protocol, target and seed trained on different sources
    are reported and the one with the most sources is kept. Records not marked complete and
    unreadable files are skipped with a warning. A warning also names a method's runs made with
    different configurations or data: they are kept, but a table would mix them. Leave-one-source-out
    validation runs (protocol ``loso``) are no rows of their own: the ``loso`` rule reads them. Under
    ``loso`` and ``oracle`` a cross-domain deep run's test and target figures are those of the chosen
    epoch (overall figures only); runs that cannot follow the rule keep their own selection, which
    the tables' notes name; the rule is in the frame's ``attrs["selection"]``.

    Returns:
        A tidy DataFrame with :data:`TIDY_COLUMNS`: one row per run, split and river, where river
        :data:`OVERALL` holds the split's overall metrics (with ``per_class_f1`` and ``confusion``)
        and the other rivers the split's ``per_domain`` metrics. ``protocol`` is ``mixed``, ``loro``
        (cross with one target) or ``cross``; ``target`` is empty for mixed runs.

    Raises:
        FileNotFoundError: a directory does not exist.
        ValueError: an unknown rule.
    """
    check_rule(selection)
    if variants and selection != "training":
        # A variant's figures come from the selected weights only: there are no per-epoch scores of it.
        log.warning("evaluation variants are shown under the training-domain selection only; ignored")
        variants = ()
    entries, skipped, held_variants = [], [], set()
    for path in _record_paths(dirs):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("status") != "complete":
                skipped.append(f"{path} (status {record.get('status')!r})")
                continue
            if is_search_trial(record):
                continue  # the job's chosen trial is its own record
            entries.extend(_run_entry(path, r) for r in variant_records(record, variants))
            held_variants.update(record.get("variants") or {})
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            skipped.append(f"{path} (unreadable: {type(error).__name__} {error})")
    if skipped:
        log.warning(
            "ignored %d result file(s) that are not complete runs: %s", len(skipped), "; ".join(skipped)
        )
    for name in (v for v in variants if v not in held_variants):
        log.warning(
            "variant %r: no run record holds it, so it has no rows; %s",
            name,
            VARIANT_SOURCES.get(name, "unknown variant"),
        )
    auxiliary = _auxiliary_runs([e for e in entries if e["protocol"] == "loso"])
    entries = [e for e in entries if e["protocol"] != "loso"]
    left_out: dict[str, list[str]] = {}
    entries = [
        chosen for e in entries if (chosen := _reselected(e, selection, auxiliary, left_out)) is not None
    ]
    for method, reasons in left_out.items():  # one line per method: a grid can leave out dozens of runs
        log.warning(
            "%s: %d run(s) left out of the %s tables, e.g. %s", method, len(reasons), selection, reasons[0]
        )
    if not entries:
        empty = pd.DataFrame(columns=list(TIDY_COLUMNS))
        empty.attrs[SELECTION_ATTR] = selection
        return empty
    runs = _keep_one(
        pd.DataFrame(entries), ["method", "protocol", "sources", "target", "seed"], ["mtime"], "duplicates"
    )
    runs["n_sources"] = runs["sources"].str.count(r"\+") + 1
    runs = _keep_one(
        runs, ["method", "protocol", "target", "seed"], ["n_sources", "mtime"], "trained on different rivers"
    )
    _warn_if_mixed(runs, "config", "configurations")
    _warn_if_mixed(runs, "manifest_hash", "datasets (manifest hashes)")
    rows = [row for _, run in runs.iterrows() for row in _tidy_rows(run)]
    tidy = pd.DataFrame(rows, columns=list(TIDY_COLUMNS))
    rank = {m: i for i, m in enumerate(method_order(tidy["method"]))}
    tidy = tidy.sort_values(
        ["method", "protocol", "target", "seed", "split", "river"],
        key=lambda c: c.map(rank) if c.name == "method" else c,
        kind="stable",
        ignore_index=True,
    )
    tidy.attrs[SELECTION_ATTR] = selection
    return tidy


def load_failures(dirs: Sequence[str | Path], tidy: pd.DataFrame | None = None) -> pd.DataFrame:
    """Benchmark jobs that failed (their ``failure.json``) and have no complete run in ``tidy``.

    Returns:
        A DataFrame with :data:`FAILURE_COLUMNS`, one row per failed job.
    """
    done = (
        set()
        if tidy is None
        else set(zip(tidy["method"], tidy["protocol"], tidy["target"], tidy["seed"], strict=True))
    )
    rows = []
    for directory in map(Path, dirs):
        for path in sorted(directory.rglob(FAILURE_FILE)) if directory.is_dir() else []:
            try:
                failure = json.loads(path.read_text(encoding="utf-8"))
                job = failure["job"]
                row = {
                    "method": job["method"],
                    "protocol": job["protocol"],
                    "target": job["target"] or "",
                    "seed": int(job["seed"]),
                    "name": job["name"],
                    "error": f"{failure['error_type']}: {failure['message']}",
                    "path": str(path),
                }
            except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                log.warning("ignored an unreadable failure record: %s", path)
                continue
            if (row["method"], row["protocol"], row["target"], row["seed"]) not in done:
                rows.append(row)
    return pd.DataFrame(rows, columns=list(FAILURE_COLUMNS))


def count_runs(tidy: pd.DataFrame) -> int:
    """Number of distinct runs in a tidy frame."""
    return int(tidy["path"].nunique())


# ------------------------------------------------------------------------------------------ aggregation


@dataclass(frozen=True)
class Stat:
    """A value over seeds: mean, sample standard deviation (NaN for one seed) and the number of seeds."""

    mean: float
    std: float
    n_seeds: int


@dataclass(frozen=True)
class Column:
    """A table column: a group (a river, overall, average or a class) and a metric."""

    group: str
    metric: str

    @property
    def label(self) -> str:
        return f"{self.group} {METRIC_LABELS[self.metric]}".strip()


@dataclass
class Table:
    """A comparison table, independent of the output format.

    ``cells`` maps (row, column index) to a Stat (absent = missing); ``headline`` is the column a
    family's best method is chosen by; ``row_methods`` names the method behind a row label.
    """

    key: str
    title: str
    notes: list[str]
    rows: list[str]
    columns: list[Column]
    n_seeds: int
    headline: int | None = None
    cells: dict[tuple[str, int], Stat] = field(default_factory=dict)
    row_methods: dict[str, str] = field(default_factory=dict)
    lower_is_better: bool = False
    unranked: tuple[int, ...] = ()  # columns without a best value (e.g. coverage: nearest 95% is right)
    signed: bool = False  # means printed with their sign (tables of differences)


def stat_over_seeds(values: pd.Series) -> Stat | None:
    """Mean and sample std (ddof=1) of per-seed values; None when there are none (a missing cell)."""
    values = values.dropna()
    if values.empty:
        return None
    std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
    return Stat(float(values.mean()), std, len(values))


def per_seed(frame: pd.DataFrame, method: str, metric: str, **where: str) -> pd.Series:
    """One method's ``metric`` indexed by seed, in the rows matching ``where`` (column = value)."""
    chosen = frame[frame["method"] == method]
    for column, value in where.items():
        chosen = chosen[chosen[column] == value]
    return chosen.set_index("seed")[metric]


def _range_text(values: Iterable[int]) -> str:
    """``120``, or ``118–121`` when runs differ; empty when there are none."""
    distinct = sorted(set(int(v) for v in values))
    if not distinct:
        return ""
    return str(distinct[0]) if len(distinct) == 1 else f"{distinct[0]}–{distinct[-1]}"


def _selection_note(frame: pd.DataFrame) -> str:
    by_rule: dict[str, list[str]] = {}
    for method in method_order(frame["method"]):
        for rule in frame.loc[frame["method"] == method, "selection"].unique():
            by_rule.setdefault(rule, []).append(method)
    rules = "; ".join(f"{', '.join(methods)}: {rule}" for rule, methods in by_rule.items())
    return f"Model selection: {rules or MISSING}."


def _seed_note(seeds: Sequence[int]) -> str:
    listed = ", ".join(map(str, seeds))
    if len(seeds) == 1:
        return f"1 seed ({listed}): single values, no spread."
    return (
        f"Mean ± std over {len(seeds)} seeds ({listed}); std is the sample standard deviation; "
        "a cell from fewer seeds says how many."
    )


BEST_NOTE = f"Best value per column in bold; {MISSING} = no complete run (never counted as zero)."


def mixed_table(tidy: pd.DataFrame, methods: Sequence[str]) -> Table | None:
    """Mixed protocol: per method, test accuracy and macro-F1 per river and overall; None without runs."""
    test = tidy[(tidy["protocol"] == "mixed") & (tidy["split"] == "test")]
    if test.empty:
        return None
    rivers = ordered_domains(test.loc[test["river"] != OVERALL, "river"])
    groups = [*rivers, OVERALL] if len(rivers) > 1 else rivers
    columns = [Column(g, m) for g in groups for m in ("accuracy", "macro_f1")]
    seeds = sorted(test["seed"].unique())
    samples = ", ".join(f"{g} {_range_text(test.loc[test['river'] == g, 'n'])}" for g in groups)
    notes = [
        _selection_note(test),
        _seed_note(seeds),
        f"Trained on the train part of every river; samples per run (test split): {samples}.",
        BEST_NOTE,
    ]
    table = Table(
        "mixed",
        "Mixed protocol: test accuracy and macro-F1 per river",
        notes,
        list(methods),
        columns,
        len(seeds),
        headline=columns.index(Column(groups[-1], "accuracy")),
    )
    for method in methods:
        for index, column in enumerate(columns):
            if stat := stat_over_seeds(per_seed(test, method, column.metric, river=column.group)):
                table.cells[(method, index)] = stat
    return table


def river_average_per_seed(
    frame: pd.DataFrame, method: str, metric: str, split: str, rivers: Sequence[str]
) -> pd.Series:
    """Per seed the mean over the held-out ``rivers`` of one method's ``metric`` on ``split`` (seeds
    with a run for every river only; empty when no seed has them all)."""
    chosen = frame[(frame["method"] == method) & (frame["split"] == split)]
    wide = chosen.pivot_table(index="seed", columns="target", values=metric, aggfunc="first")
    if wide.empty or set(rivers) - set(wide.columns):
        return pd.Series(dtype=float)
    return wide[list(rivers)].dropna().mean(axis=1)


def _river_average(
    frame: pd.DataFrame, method: str, metric: str, split: str, rivers: Sequence[str]
) -> Stat | None:
    """Per seed the mean over the held-out rivers (seeds with a run for every river only), then over seeds."""
    return stat_over_seeds(river_average_per_seed(frame, method, metric, split, rivers))


def loro_table(tidy: pd.DataFrame, methods: Sequence[str]) -> Table | None:
    """Leave-one-river-out: per method and held-out river, target accuracy and macro-F1 with the same
    runs' in-domain test accuracy beside them, and their average over rivers; None without runs."""
    loro = tidy[(tidy["protocol"] == "loro") & (tidy["river"] == OVERALL)]
    if loro.empty:
        return None
    target, test = loro[loro["split"] == "target"], loro[loro["split"] == "test"]
    rivers = ordered_domains(target["target"])
    columns = [Column(g, m) for g in [*rivers, AVERAGE] for m in LORO_METRICS]
    seeds = sorted(loro["seed"].unique())
    target_n = ", ".join(f"{r} {_range_text(target.loc[target['target'] == r, 'n'])}" for r in rivers)
    test_n = ", ".join(
        f"{r} held out {_range_text(test.loc[test['target'] == r, 'n'])}"
        for r in rivers
        if (test["target"] == r).any()
    )
    notes = [
        _selection_note(loro),
        _seed_note(seeds),
        "Each run trains on every other river. Target = all samples of the held-out river, never "
        "used for training or model selection; in-domain = the same runs' test split of their "
        "training rivers. "
        f"Average = per seed the mean over the {len(rivers)} held-out rivers, then over seeds "
        f"({MISSING} unless every river has a run).",
        f"Samples per run: target {target_n}; in-domain test {test_n or MISSING}.",
        BEST_NOTE,
    ]
    table = Table(
        "loro",
        "Leave-one-river-out: target accuracy and macro-F1 per held-out river",
        notes,
        list(methods),
        columns,
        len(seeds),
        headline=columns.index(Column(AVERAGE, "target_accuracy")),
    )
    for method in methods:
        for index, column in enumerate(columns):
            split, metric = LORO_METRICS[column.metric]
            if column.group == AVERAGE:
                stat = _river_average(loro, method, metric, split, rivers)
            else:
                stat = stat_over_seeds(per_seed(loro, method, metric, split=split, target=column.group))
            if stat:
                table.cells[(method, index)] = stat
    return table


def _aligned_confusion(
    confusion: Sequence[Sequence[int]], classes: Sequence[str], order: Sequence[str]
) -> np.ndarray:
    """A confusion matrix re-indexed to ``order`` (classes a run did not know stay zero)."""
    position = [order.index(c) for c in classes]
    aligned = np.zeros((len(order), len(order)), dtype=np.int64)
    aligned[np.ix_(position, position)] = np.asarray(confusion, dtype=np.int64)
    return aligned


def pooled_confusions(
    frame: pd.DataFrame, method: str, split: str, classes: Sequence[str], rivers: Sequence[str] | None = None
) -> dict[int, np.ndarray]:
    """Per seed, the confusion matrix of ``split`` summed over the method's runs (over ``rivers`` for
    leave-one-river-out: a seed lacking any of them is left out). Rows true, columns predicted."""
    chosen = frame[(frame["method"] == method) & (frame["split"] == split) & (frame["river"] == OVERALL)]
    pooled: dict[int, np.ndarray] = {}
    for seed, runs in chosen.groupby("seed"):
        if rivers is not None and set(rivers) - set(runs["target"]):
            continue
        matrices = [_aligned_confusion(r.confusion, r.classes, classes) for r in runs.itertuples()]
        pooled[int(seed)] = np.sum(matrices, axis=0)
    return pooled


def per_class_f1(confusion: np.ndarray) -> np.ndarray:
    """F1 per class, 2 TP / (2 TP + FP + FN); NaN for a class with no true sample."""
    true_positive = np.diag(confusion).astype(float)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, 2 * true_positive / (support + predicted), np.nan)


def _best_of_family(headline: Table, methods: Sequence[str], family: str) -> str | None:
    """The family's method with the highest headline mean (None if none of them has one)."""
    scored = {
        m: headline.cells[(m, headline.headline)].mean
        for m in methods
        if families().get(m) == family and (m, headline.headline) in headline.cells
    }
    return max(scored, key=scored.get, default=None)


def per_class_table(tidy: pd.DataFrame, headline: Table | None, methods: Sequence[str]) -> Table | None:
    """Per-class F1 of the best classical method, the best CNN, ERM and SAN under the headline table's
    protocol (mixed: test split; loro: target split pooled over the held-out rivers); None without runs."""
    if headline is None:
        return None
    loro = headline.key == "loro"
    split = "target" if loro else "test"
    frame = tidy[(tidy["protocol"] == headline.key) & (tidy["split"] == split) & (tidy["river"] == OVERALL)]
    rivers = ordered_domains(frame["target"]) if loro else None
    classes = ordered_classes(c for known in frame["classes"] for c in known)
    rows, row_methods = [], {}
    for family, label in PER_CLASS_ROWS:
        best = _best_of_family(headline, methods, family)
        row = label if family in ("erm", "san") else f"{label} ({best or 'no runs'})"
        rows.append(row)
        if best is not None:
            row_methods[row] = best
    pooled = {m: pooled_confusions(frame, m, split, classes, rivers) for m in row_methods.values()}
    supports = [
        _range_text(matrix[i].sum() for per_seed in pooled.values() for matrix in per_seed.values())
        for i in range(len(classes))
    ]
    where = (
        f"target split pooled per seed over the {len(rivers)} held-out rivers (seeds with every river)"
        if loro
        else "test split of every river"
    )
    notes = [
        _selection_note(frame[frame["method"].isin(row_methods.values())]),
        _seed_note(sorted(frame["seed"].unique())),
        f"F1 per class on the {where}, from the runs' confusion matrices; best classical and best "
        f"CNN = highest mean {headline.columns[headline.headline].label} in the table above. "
        "Support per seed: "
        + (", ".join(f"{c} {s}" for c, s in zip(classes, supports, strict=True) if s) or MISSING)
        + ".",
        BEST_NOTE,
    ]
    title = f"Per-class F1 ({'leave-one-river-out' if loro else 'mixed protocol'})"
    table = Table(
        f"per_class_{headline.key}",
        title,
        notes,
        rows,
        [Column(c, "f1") for c in classes],
        frame["seed"].nunique(),
        row_methods=row_methods,
    )
    for row, method in row_methods.items():
        scores = pd.DataFrame(
            {seed: per_class_f1(matrix) for seed, matrix in pooled[method].items()}, index=classes
        ).T
        for index, name in enumerate(classes):
            if stat := stat_over_seeds(scores[name]):
                table.cells[(row, index)] = stat
    return table


def probe_table(tidy: pd.DataFrame, methods: Sequence[str]) -> Table | None:
    """The linear river probe of the leave-one-river-out runs (record key ``extras.river_probe``: the frozen
    features of the source rivers' test split), per method: mean ± std over seeds of the average
    over the held-out rivers; None without probes."""
    frame = tidy[(tidy["protocol"] == "loro") & (tidy["split"] == "test") & (tidy["river"] == OVERALL)]
    frame = frame[frame["probe"].notna()]
    if frame.empty:
        return None
    rivers = ordered_domains(frame["target"])
    columns = [Column(AVERAGE, metric) for metric in PROBE_METRICS]
    notes = [
        "Linear probe (standardised logistic regression, 5-fold) predicting the source river from the "
        "frozen features the class head sees, on the source rivers' in-domain test split of each "
        "leave-one-river-out run; lower is more river-invariant. class-only = the same probe on the "
        "class alone (the rivers' class mixes differ); residual = the probe on features minus their "
        "class's mean (classes of at least two rivers), against that subset's majority share.",
        _seed_note(sorted(frame["seed"].unique())),
        f"Average = per seed the mean over the {len(rivers)} held-out rivers ({', '.join(rivers)}), "
        f"then over seeds ({MISSING} unless every river has a run). Not ranked: the class-only and "
        "majority columns are references, not competitors.",
    ]
    probed = set(frame["method"])
    table = Table(
        "probe",
        "River probe of the features (leave-one-river-out runs)",
        notes,
        [m for m in methods if m in probed],
        columns,
        frame["seed"].nunique(),
        unranked=tuple(range(len(columns))),
    )
    for metric, key in PROBE_METRICS.items():
        values = frame.assign(value=[p.get(key) for p in frame["probe"]]).dropna(subset=["value"])
        values = values.assign(value=values["value"].astype(float))
        for method in methods:
            if stat := _river_average(values, method, "value", "test", rivers):
                table.cells[(method, columns.index(Column(AVERAGE, metric)))] = stat
    return table if table.cells else None


def _failure_note(failures: pd.DataFrame, protocol: str, limit: int = 12) -> str | None:
    names = sorted(failures.loc[failures["protocol"] == protocol, "name"])
    if not names:
        return None
    shown = ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
    return f"Failed jobs without a record (see their failure.json), shown as {MISSING}: {shown}."


def assemblage_table(tidy: pd.DataFrame, methods: Sequence[str]) -> Table | None:
    """Leave-one-river-out assemblage error: per method and quantifier the mean absolute error (pp)
    of the held-out river's APP samples, averaged over the held-out rivers, with the run's chosen
    quantifier and its interval coverage; None without runs that evaluated it."""
    loro = tidy[(tidy["protocol"] == "loro") & (tidy["river"] == OVERALL) & (tidy["split"] == "target")]
    loro = loro[loro["assemblage"].notna()]
    if loro.empty:
        return None
    cells = pd.DataFrame(list(loro["assemblage"]), index=loro.index)
    frame = pd.concat([loro.drop(columns="assemblage"), cells], axis=1)
    metrics = [f"mae_{name}" for name in QUANTIFIERS] + ["mae_chosen", "coverage_chosen"]
    columns = [Column(AVERAGE, m) for m in metrics if m in frame]
    rivers = ordered_domains(frame["target"])
    seeds = sorted(frame["seed"].unique())
    notes = [
        "Artificial prevalence protocol on each held-out river: samples of 200-300 grains whose class mix "
        "is the river's own or drawn from a flat Dirichlet over its classes; mean absolute error over "
        "the classes, in percentage points. Quantifiers are fitted on calibration rows of the training "
        "rivers only (classical: out-of-fold on train; deep: val); chosen = the run's default, picked "
        "on those rows. Coverage: share of (sample, class) true percentages inside the chosen "
        "quantifier's 95% bootstrap interval (ideal 0.95, not ranked).",
        _seed_note(seeds),
        f"Average = per seed the mean over the {len(rivers)} held-out rivers ({', '.join(rivers)}), then "
        f"over seeds ({MISSING} unless every river has a run).",
        "Lowest error per column in bold.",
    ]
    table = Table(
        "assemblage",
        "Leave-one-river-out assemblage error per method and quantifier (APP, held-out river)",
        notes,
        list(methods),
        columns,
        len(seeds),
        lower_is_better=True,
        unranked=tuple(i for i, c in enumerate(columns) if c.metric == "coverage_chosen"),
    )
    for method in methods:
        for index, column in enumerate(columns):
            if stat := _river_average(frame, method, column.metric, "target", rivers):
                table.cells[(method, index)] = stat
    return table


def _rule_note(rule: str) -> str:
    if rule == "training":
        return (
            f"Selection rule: {RULE_LABELS[rule]} (DomainBed's default): each deep run's epoch with the best "
            "val accuracy of its training rivers. Other rules: make_tables.py --selection loso | oracle."
        )
    if rule == "loso":
        return (
            f"Selection rule: {RULE_LABELS[rule]}: per run, the epoch with the best mean accuracy of runs "
            "that each trained without one of its source rivers, on that river (its test part excluded); "
            "with two sources those runs see one river, where an adversary has nothing to do."
        )
    return (
        f"Selection rule: {RULE_LABELS[rule]}, NOT a domain-generalisation result: per run, the epoch "
        "with the best accuracy on a stratified 20% of the held-out river; target figures are those "
        "of the other 80%. It bounds what choosing the checkpoint on the target (as the published "
        "release did) can buy."
    )


def build_tables(tidy: pd.DataFrame, failures: pd.DataFrame | None = None) -> list[Table]:
    """The mixed table, the leave-one-river-out table, their per-class F1 tables and the assemblage
    error table (those with runs).

    Every method with a run or a failed job (``failures``, from :func:`load_failures`) is a row of the
    mixed and LORO tables, so a missing run shows; failed jobs are listed under their table. Under the
    ``loso`` and ``oracle`` rules (``tidy.attrs["selection"]``, see :func:`load_runs`) only the LORO
    table is built (per-epoch scores are overall figures; the rules are about held-out rivers).
    """
    rule = tidy.attrs.get(SELECTION_ATTR, "training")
    failures = failures if failures is not None else pd.DataFrame(columns=list(FAILURE_COLUMNS))
    methods = method_order([*tidy["method"], *failures["method"]])
    mixed = mixed_table(tidy, methods) if rule == "training" else None
    loro = loro_table(tidy, methods)
    for table in (mixed, loro):
        if table is None:
            continue
        if note := _failure_note(failures, table.key):
            table.notes.insert(-1, note)
        table.notes.insert(0, _rule_note(rule))
    if loro is not None and rule != "training":
        loro.key = f"loro_{rule}"
        loro.title = f"{loro.title} — selection: {RULE_LABELS[rule]}"
    if rule != "training":
        return [t for t in (loro,) if t is not None]
    tables = [
        mixed,
        loro,
        per_class_table(tidy, mixed, methods),
        per_class_table(tidy, loro, methods),
        assemblage_table(tidy, methods),
        probe_table(tidy, methods),
    ]
    return [t for t in tables if t is not None]


# ------------------------------------------------------------------------------------------- rendering


def best_rows(table: Table, index: int) -> set[str]:
    """Rows holding a column's best (highest, or lowest for an error table, at the 3 decimals shown)
    value; none with fewer than two or in an unranked column."""
    means = {row: round(stat.mean, 3) for (row, i), stat in table.cells.items() if i == index}
    if len(means) < 2 or index in table.unranked:
        return set()
    top = min(means.values()) if table.lower_is_better else max(means.values())
    return {row for row, mean in means.items() if mean == top}


def format_stat(stat: Stat | None, n_seeds: int, *, signed: bool = False) -> str:
    """``0.812 ± 0.021``; ``0.812`` for one seed; `` (k seeds)`` when not the table's count; missing: —.
    ``signed``: ``+0.012 ± 0.021`` (a difference)."""
    if stat is None:
        return MISSING
    mean = f"{stat.mean:+.3f}" if signed else f"{stat.mean:.3f}"
    text = mean if stat.n_seeds == 1 else f"{mean} ± {stat.std:.3f}"
    if stat.n_seeds != n_seeds:
        text += f" ({stat.n_seeds} seed{'s' * (stat.n_seeds != 1)})"
    return text


def _cell_texts(table: Table) -> list[list[tuple[str, bool]]]:
    """Per row: (row label, False) then each cell's (text, is the column's best)."""
    best = [best_rows(table, i) for i in range(len(table.columns))]
    return [
        [
            (row, False),
            *(
                (format_stat(table.cells.get((row, i)), table.n_seeds, signed=table.signed), row in best[i])
                for i in range(len(table.columns))
            ),
        ]
        for row in table.rows
    ]


def _markdown(table: Table) -> str:
    grid = [["method", *(c.label for c in table.columns)]]
    grid += [[f"**{text}**" if best else text for text, best in line] for line in _cell_texts(table)]
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]

    def line(cells: Sequence[str]) -> str:  # first column left-aligned, numbers right-aligned
        return (
            "| "
            + " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )
            + " |"
        )

    rule = line([":" + "-" * (widths[0] - 1), *("-" * (w - 1) + ":" for w in widths[1:])])
    return "\n".join(
        [
            f"### {table.title}",
            "",
            *(f"- {note}" for note in table.notes),
            "",
            line(grid[0]),
            rule,
            *map(line, grid[1:]),
        ]
    )


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "—": "---",
    "–": "--",
}


def latex_escape(text: str) -> str:
    """Text with LaTeX's special characters (and ±, dashes) written as LaTeX."""
    return "".join(_LATEX_ESCAPES.get(char, char) for char in text)


def _latex(table: Table) -> str:
    header = " & ".join(latex_escape(t) for t in ["method", *(c.label for c in table.columns)]) + r" \\"
    body = [
        " & ".join(rf"\textbf{{{latex_escape(text)}}}" if best else latex_escape(text) for text, best in line)
        + r" \\"
        for line in _cell_texts(table)
    ]
    caption = latex_escape(f"{table.title}. " + " ".join(table.notes))
    return "\n".join(
        [
            r"\begin{table}[ht]",
            r"\centering",
            rf"\caption{{{caption}}}",
            rf"\begin{{tabular}}{{l{'r' * len(table.columns)}}}",
            r"\toprule",
            header,
            r"\midrule",
            *body,
            r"\bottomrule",
            r"\end{tabular}",
            r"\end{table}",
        ]
    )


def tables_frame(tables: Sequence[Table]) -> pd.DataFrame:
    """Every cell as numbers, one row each, with :data:`CSV_COLUMNS`; a missing cell has empty mean and
    std and n_seeds 0 (never a zero value)."""
    rows = []
    for table in tables:
        best = [best_rows(table, i) for i in range(len(table.columns))]
        for row in table.rows:
            for index, column in enumerate(table.columns):
                stat = table.cells.get((row, index))
                rows.append(
                    {
                        "table": table.key,
                        "row": row,
                        "method": table.row_methods.get(row, row),
                        "group": column.group,
                        "metric": column.metric,
                        "mean": stat.mean if stat else math.nan,
                        "std": stat.std if stat else math.nan,
                        "n_seeds": stat.n_seeds if stat else 0,
                        "best": row in best[index],
                    }
                )
    return pd.DataFrame(rows, columns=list(CSV_COLUMNS))


def render(tables: Sequence[Table], fmt: str = "md", *, n_runs: int | None = None) -> str:
    """The tables as Markdown (``md``), CSV (``csv``: numbers only, see :func:`tables_frame`) or LaTeX
    (``tex``: booktabs), ending with a newline.

    Raises:
        ValueError: an unknown format.
    """
    if fmt == "csv":
        return tables_frame(tables).to_csv(index=False, float_format="%.6f", lineterminator="\n")
    if fmt == "md":
        intro = [f"Built from {n_runs} complete run record(s)."] if n_runs is not None else []
        return "\n\n".join([*intro, *map(_markdown, tables)]) + "\n"
    if fmt == "tex":
        return "\n\n".join([r"% needs \usepackage{booktabs}", *map(_latex, tables)]) + "\n"
    raise ValueError(f"unknown table format {fmt!r}; expected one of {', '.join(FORMATS)}")
