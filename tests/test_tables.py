"""Comparison tables from run records: a golden Markdown file, missing runs, duplicates, formats, figures.

The golden file ``tests/golden/benchmark_tables.md`` is the exact output of ``make_tables.py`` on the
hand-written records below. After an intended change of the rendering, regenerate it with
``UPDATE_GOLDEN=1 python -m pytest tests/test_tables.py`` and review the diff.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from san.benchmark.figures import save_figures
from san.benchmark.jobs import Job
from san.benchmark.runner import write_failure
from san.benchmark.tables import (
    MISSING,
    Stat,
    build_tables,
    format_stat,
    load_failures,
    load_runs,
    per_class_f1,
    render,
    tables_frame,
)
from san.cli.tables import main as make_tables_main
from san.evaluation.metrics import classification_metrics
from san.runs.records import RESULTS_FILE, write_record

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "benchmark_tables.md"
CLASSES = ["Ep", "Grt", "Zrn"]
SVM_RULE = "GridSearchCV, 5-fold stratified within the training split (training rivers only)"
SAN_RULE = "best val accuracy (training rivers only)"

# (method, held-out river or None, seed) -> {split: {river: confusion (rows true Ep, Grt, Zrn)}}.
# Two methods, mixed and leave-one-river-out on two rivers, two seeds; svm -> yarlung seed 1 is missing.
RECORDS: dict[tuple[str, str | None, int], dict[str, dict[str, list[list[int]]]]] = {
    ("svm", None, 0): {
        "test": {"yangtze": [[8, 1, 1], [2, 6, 2], [1, 1, 8]], "yarlung": [[7, 2, 1], [1, 7, 2], [2, 1, 7]]}
    },
    ("svm", None, 1): {
        "test": {"yangtze": [[7, 2, 1], [1, 7, 2], [1, 2, 7]], "yarlung": [[8, 1, 1], [2, 7, 1], [1, 2, 7]]}
    },
    ("san", None, 0): {
        "test": {"yangtze": [[9, 1, 0], [1, 8, 1], [0, 1, 9]], "yarlung": [[8, 1, 1], [1, 8, 1], [1, 0, 9]]}
    },
    ("san", None, 1): {
        "test": {"yangtze": [[9, 0, 1], [1, 9, 0], [0, 1, 9]], "yarlung": [[9, 1, 0], [1, 7, 2], [1, 1, 8]]}
    },
    ("san", "yangtze", 0): {
        "test": {"yarlung": [[8, 1, 1], [1, 8, 1], [0, 1, 9]]},
        "target": {"yangtze": [[6, 2, 2], [2, 6, 2], [1, 2, 7]]},
    },
    ("san", "yangtze", 1): {
        "test": {"yarlung": [[9, 1, 0], [1, 9, 0], [1, 1, 8]]},
        "target": {"yangtze": [[7, 2, 1], [2, 6, 2], [2, 1, 7]]},
    },
    ("san", "yarlung", 0): {
        "test": {"yangtze": [[9, 1, 0], [0, 9, 1], [1, 1, 8]]},
        "target": {"yarlung": [[6, 3, 1], [2, 6, 2], [2, 2, 6]]},
    },
    ("san", "yarlung", 1): {
        "test": {"yangtze": [[8, 1, 1], [1, 8, 1], [0, 1, 9]]},
        "target": {"yarlung": [[7, 1, 2], [3, 5, 2], [1, 2, 7]]},
    },
    ("svm", "yangtze", 0): {
        "test": {"yarlung": [[7, 2, 1], [2, 7, 1], [1, 2, 7]]},
        "target": {"yangtze": [[5, 3, 2], [3, 4, 3], [2, 3, 5]]},
    },
    ("svm", "yangtze", 1): {
        "test": {"yarlung": [[8, 1, 1], [2, 7, 1], [2, 1, 7]]},
        "target": {"yangtze": [[4, 3, 3], [2, 6, 2], [3, 2, 5]]},
    },
    ("svm", "yarlung", 0): {
        "test": {"yangtze": [[8, 1, 1], [1, 7, 2], [1, 1, 8]]},
        "target": {"yarlung": [[5, 2, 3], [3, 5, 2], [2, 3, 5]]},
    },
}


def split_metrics(by_river: dict[str, list[list[int]]]) -> dict[str, Any]:
    """The shared metrics of a split whose samples are given as one confusion matrix per river."""
    truth, predicted, domain = [], [], []
    rivers = list(by_river)
    for index, confusion in enumerate(by_river.values()):
        for true_class, row in enumerate(confusion):
            for predicted_class, count in enumerate(row):
                truth += [true_class] * count
                predicted += [predicted_class] * count
                domain += [index] * count
    return classification_metrics(truth, predicted, CLASSES, domain, rivers)


def make_record(method: str, target: str | None, seed: int, splits: dict[str, dict[str, Any]]) -> dict:
    rivers = ["yangtze", "yarlung"]
    return {
        "status": "complete",
        "method": method,
        "protocol": "cross" if target else "mixed",
        "sources": [r for r in rivers if r != target],
        "targets": [target] if target else [],
        "seed": seed,
        "classes": CLASSES,
        "selection": {"rule": SVM_RULE if method == "svm" else SAN_RULE},
        "metrics": {split: split_metrics(by_river) for split, by_river in splits.items()},
        "timing": {},
        "config": {},
        "versions": {},
        "data": {},
        "run_dir": "",
    }


def write_records(out: Path, records=RECORDS) -> Path:
    for (method, target, seed), splits in records.items():
        run_dir = out / method / (f"loro-{target}" if target else "mixed") / f"seed{seed}"
        write_record(make_record(method, target, seed, splits), run_dir, out / "results.jsonl")
    return out


@pytest.fixture
def results(tmp_path) -> Path:
    return write_records(tmp_path / "runs")


def test_markdown_matches_the_golden_file(results, tmp_path):
    out = tmp_path / "tables.md"
    assert make_tables_main([str(results), "--out", str(out)]) == 0
    rendered = out.read_text(encoding="utf-8")
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(rendered, encoding="utf-8")
    assert rendered == GOLDEN.read_text(encoding="utf-8")


def test_values_are_means_and_sample_stds_over_seeds(results):
    frame = tables_frame(build_tables(load_runs([results])))
    cell = frame[
        (frame["table"] == "mixed")
        & (frame["method"] == "san")
        & (frame["group"] == "yangtze")
        & (frame["metric"] == "accuracy")
    ].iloc[0]
    accuracies = [26 / 30, 27 / 30]  # seed 0: 9+8+9 correct of 30; seed 1: 9+9+9
    assert cell["mean"] == pytest.approx(np.mean(accuracies))
    assert cell["std"] == pytest.approx(np.std(accuracies, ddof=1))
    cell = frame[
        (frame["table"] == "loro")
        & (frame["method"] == "san")
        & (frame["group"] == "yangtze")
        & (frame["metric"] == "target_accuracy")
    ].iloc[0]
    assert cell["mean"] == pytest.approx(np.mean([19 / 30, 20 / 30]))
    in_domain = frame[
        (frame["table"] == "loro")
        & (frame["method"] == "svm")
        & (frame["group"] == "yangtze")
        & (frame["metric"] == "in_domain_accuracy")
    ].iloc[0]
    assert in_domain["mean"] == pytest.approx(np.mean([21 / 30, 22 / 30]))


def test_a_missing_run_is_missing_never_zero(results):
    shutil.rmtree(results / "svm" / "loro-yarlung")  # svm now has no run holding yarlung out
    runs = load_runs([results])
    frame = tables_frame(build_tables(runs))
    loro = frame[(frame["table"] == "loro") & (frame["method"] == "svm")]
    for group in ("yarlung", "average"):
        assert loro.loc[loro["group"] == group, "mean"].isna().all()
        assert (loro.loc[loro["group"] == group, "n_seeds"] == 0).all()
    markdown = render(build_tables(runs), "md")
    svm_row = next(
        line for line in markdown.split("### Leave-one-river-out")[1].splitlines() if line.startswith("| svm")
    )
    assert [cell.strip() for cell in svm_row.split("|")[5:-1]] == [MISSING] * 6
    csv = pd.read_csv(io.StringIO(render(build_tables(runs), "csv")))
    average = csv[(csv["table"] == "loro") & (csv["method"] == "svm") & (csv["group"] == "average")]
    assert len(average) == 3 and average["mean"].isna().all()


def test_a_cell_from_fewer_seeds_says_so(results):
    frame = tables_frame(build_tables(load_runs([results])))
    cell = frame[
        (frame["table"] == "loro")
        & (frame["method"] == "svm")
        & (frame["group"] == "average")
        & (frame["metric"] == "target_accuracy")
    ].iloc[0]
    assert cell["n_seeds"] == 1  # only seed 0 has both held-out rivers
    assert cell["mean"] == pytest.approx(np.mean([14 / 30, 15 / 30]))
    assert format_stat(Stat(0.8123, float("nan"), 1), 2) == "0.812 (1 seed)"
    assert format_stat(Stat(0.8123, 0.0214, 2), 2) == "0.812 ± 0.021"
    assert format_stat(Stat(0.8123, float("nan"), 1), 1) == "0.812"
    assert format_stat(None, 2) == MISSING


def test_best_value_per_column_is_marked(results):
    frame = tables_frame(build_tables(load_runs([results])))
    for _, cells in frame.groupby(["table", "group", "metric"]):
        present = cells.dropna(subset=["mean"])
        if len(present) < 2:
            assert not cells["best"].any()
            continue
        top = present.loc[present["mean"].round(3) == present["mean"].round(3).max(), "row"]
        assert set(cells.loc[cells["best"], "row"]) == set(top)


def test_duplicates_are_reported_and_the_newest_kept(results, tmp_path, caplog):
    copy = tmp_path / "machine2" / "san-mixed-seed0"
    record = make_record(
        "san",
        None,
        0,
        {
            "test": {
                "yangtze": [[10, 0, 0], [0, 10, 0], [0, 0, 10]],
                "yarlung": [[10, 0, 0], [0, 10, 0], [0, 0, 10]],
            }
        },
    )
    write_record(record, copy, None)
    older = (results / "san" / "mixed" / "seed0" / RESULTS_FILE).stat().st_mtime
    os.utime(copy / RESULTS_FILE, (older + 60, older + 60))
    with caplog.at_level(logging.WARNING, logger="san.benchmark.tables"):
        runs = load_runs([results, tmp_path / "machine2"])
    assert "2 runs of san, mixed, seed 0 (duplicates)" in caplog.text and str(copy) in caplog.text
    kept = runs[
        (runs["method"] == "san")
        & (runs["protocol"] == "mixed")
        & (runs["seed"] == 0)
        & (runs["split"] == "test")
        & (runs["river"] == "overall")
    ]
    assert kept["accuracy"].tolist() == [1.0]


def test_several_directories_combine_and_incomplete_records_are_ignored(results, tmp_path, caplog):
    second = tmp_path / "machine2"
    shutil.move(results / "svm", second / "svm")
    (results / "san" / "mixed" / "seed1" / RESULTS_FILE).write_text('{"status": "failed", "method": "san"}')
    with caplog.at_level(logging.WARNING, logger="san.benchmark.tables"):
        runs = load_runs([results, second])
    assert "ignored 1 result file(s)" in caplog.text
    assert runs["path"].nunique() == len(RECORDS) - 1
    assert set(runs["method"]) == {"svm", "san"}


def test_failed_jobs_show_as_missing_rows_and_are_listed(results):
    job = Job("knn", "mixed", None, 1, ("yangtze", "yarlung"))
    write_failure(job.run_dir(results), job, ValueError("no features"), 1.0)
    done = Job("san", "mixed", None, 0, ("yangtze", "yarlung"))  # failed once, complete elsewhere: not listed
    write_failure(results / "old_attempt" / "san", done, ValueError("old"), 1.0)
    runs = load_runs([results])
    failures = load_failures([results], runs)
    assert failures["name"].tolist() == ["knn/mixed/seed1"]
    markdown = render(build_tables(runs, failures), "md")
    mixed = markdown.split("### Leave-one-river-out")[0]
    assert "Failed jobs without a record (see their failure.json), shown as —: knn/mixed/seed1." in mixed
    knn_row = next(line for line in mixed.splitlines() if line.startswith("| knn"))
    assert [cell.strip() for cell in knn_row.split("|")[2:-1]] == [MISSING] * 6


def test_runs_of_one_method_with_different_configs_are_reported(tmp_path, caplog):
    record = make_record("san", None, 0, RECORDS[("san", None, 0)])
    write_record(record, tmp_path / "a", None)
    write_record(record | {"seed": 1, "config": {"training": {"epochs": 2}}}, tmp_path / "b", None)
    with caplog.at_level(logging.WARNING, logger="san.benchmark.tables"):
        load_runs([tmp_path])
    assert "the runs of san were made with 2 different configurations" in caplog.text


def test_per_class_f1_from_a_confusion_matrix():
    f1 = per_class_f1(np.array([[2, 1, 0], [0, 3, 0], [0, 0, 0]]))
    assert f1[:2] == pytest.approx([2 * 2 / (2 * 2 + 1), 2 * 3 / (2 * 3 + 1)])
    assert np.isnan(f1[2])  # no true sample: undefined, not zero


def test_csv_and_latex_formats(results):
    tables = build_tables(load_runs([results]))
    csv = pd.read_csv(io.StringIO(render(tables, "csv")))
    assert list(csv.columns) == [
        "table",
        "row",
        "method",
        "group",
        "metric",
        "mean",
        "std",
        "n_seeds",
        "best",
    ]
    assert set(csv["table"]) == {"mixed", "loro", "per_class_mixed", "per_class_loro"}
    assert pd.api.types.is_float_dtype(csv["mean"]) and pd.api.types.is_float_dtype(csv["std"])
    tex = render(tables, "tex")
    assert tex.count(r"\toprule") == 4 and tex.count(r"\bottomrule") == 4 and r"\textbf{" in tex
    assert "$\\pm$" in tex and "—" not in tex and "±" not in tex
    with pytest.raises(ValueError, match="html"):
        render(tables, "html")


def test_figures_are_written(results, tmp_path):
    written = save_figures(load_runs([results]), tmp_path / "figures")
    assert [p.name for p in written] == [
        "target_accuracy.png",
        "per_class_recall.png",
        "mixed_accuracy.png",
        "mixed_per_class_recall.png",
    ]
    assert all(p.stat().st_size > 10_000 for p in written)


def test_make_tables_fails_clearly_without_runs(tmp_path, capsys):
    assert make_tables_main([str(tmp_path)]) == 1
    assert "no complete run record" in capsys.readouterr().err
    assert make_tables_main([str(tmp_path / "absent")]) == 2


def _assemblage_entry(mae: dict[str, float], chosen: str, coverage: float) -> dict[str, Any]:
    return {
        "status": "evaluated",
        "choice": {"chosen": chosen},
        "splits": {
            "target": {
                "quantifiers": {name: {"mae_pp": value} for name, value in mae.items()},
                "chosen_coverage": {"coverage": coverage},
            }
        },
    }


def test_the_assemblage_table_averages_rivers_bolds_the_lowest_error_and_never_ranks_coverage(tmp_path):
    quantifiers = ["cc", "acc", "pcc", "pacc", "emq", "hdy"]
    errors = {
        ("san", "yangtze"): [4.0, 3.0, 4.0, 2.0, 3.5, 5.0],
        ("san", "yarlung"): [2.0, 1.0, 2.0, 2.0, 1.5, 3.0],
        ("svm", "yangtze"): [3.0, 3.0, 3.0, 3.0, 3.0, 3.0],
        ("svm", "yarlung"): [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    }
    for (method, target, seed), splits in RECORDS.items():
        record = make_record(method, target, seed, splits)
        if target and seed == 0 and (method, target) in errors:
            mae = dict(zip(quantifiers, errors[(method, target)], strict=True))
            record["assemblage"] = _assemblage_entry(mae, "pacc", 0.9 if method == "san" else 0.99)
        run_dir = tmp_path / method / (f"loro-{target}" if target else "mixed") / f"seed{seed}"
        write_record(record, run_dir, tmp_path / "results.jsonl")
    table = next(t for t in build_tables(load_runs([tmp_path])) if t.key == "assemblage")
    labels = [c.label for c in table.columns]
    assert labels[:6] == [f"average {q} MAE (pp)" for q in quantifiers]
    column = {label: i for i, label in enumerate(labels)}
    # san, seed 0 only: mean over its two held-out rivers.
    assert table.cells[("san", column["average pacc MAE (pp)"])].mean == pytest.approx(2.0)
    assert table.cells[("san", column["average acc MAE (pp)"])].mean == pytest.approx(2.0)
    assert table.cells[("san", column["average chosen MAE (pp)"])].mean == pytest.approx(2.0)
    # svm seed 1 has no assemblage entry: one seed counted, said so, never a zero.
    assert table.cells[("svm", column["average cc MAE (pp)"])].n_seeds == 1
    markdown = render([table], "md")
    svm_line = next(line for line in markdown.splitlines() if line.startswith("| svm"))
    san_line = next(line for line in markdown.splitlines() if line.startswith("| san"))
    assert svm_line.count("**2.000**") == 7  # lowest error in every MAE column (ties with san on pacc)
    assert "**3.000**" not in san_line and "**2.000**" in san_line  # san's pacc ties the best
    assert "**0.990**" not in svm_line and "0.990" in svm_line  # coverage is never ranked


def test_paired_table_differences_per_seed_against_the_baseline(results):
    from san.benchmark.paired import paired_table

    table = paired_table(load_runs([results]), "san")
    assert table is not None and table.rows == ["svm"]
    labels = [column.label for column in table.columns]
    assert labels == ["mixed overall acc", "LORO average target acc", "LORO average in-domain acc"]
    # Mixed: svm 43/60 and san 51/60 correct at both seeds.
    mixed = table.cells[("svm", 0)]
    assert mixed.n_seeds == 2 and mixed.mean == pytest.approx(-8 / 60) and mixed.std == pytest.approx(0.0)
    # LORO: svm has both held-out rivers at seed 0 only (29/60 against san's 37/60).
    target = table.cells[("svm", 1)]
    assert target.n_seeds == 1 and target.mean == pytest.approx(-8 / 60)
    with pytest.raises(ValueError, match="no run of the baseline method 'erm'; methods with runs: svm, san"):
        paired_table(load_runs([results]), "erm")


def test_make_tables_paired_against_prints_signed_differences(results, capsys):
    assert make_tables_main([str(results), "--paired-against", "svm"]) == 0
    printed = capsys.readouterr().out
    assert "### Paired against svm" in printed and "+0.133 ± 0.000" in printed
    assert make_tables_main([str(results), "--paired-against", "erm"]) == 2
    assert "--paired-against: no run of the baseline method 'erm'" in capsys.readouterr().err
