"""Data-quality studies: jobs per level through the benchmark runner, the hook check, the table and curve."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from runner_stubs import stub_record

from san.benchmark.jobs import GridError, JobExecutor
from san.benchmark.runner import run_jobs
from san.evaluation.metrics import classification_metrics
from san.runs.records import RESULTS_FILE, read_record, write_record
from san.studies.quality import (
    QualityExecutor,
    QualityHookMissing,
    QualityJob,
    collect,
    default_levels,
    expand_study,
    parse_levels,
    summarise,
    write_study,
)

RIVERS = ["yangtze", "yarlung", "pengqu"]


def test_jobs_are_named_by_factor_level_and_seed_and_carry_their_overrides():
    jobs = expand_study(["svm"], [("mixed", None)], RIVERS, [0, 1], "label-noise", [0.0, 0.2, 0.4])
    assert [j.name for j in jobs[:3]] == [
        "svm/mixed/clean/seed0",
        "svm/mixed/label-noise/0.2/seed0",
        "svm/mixed/label-noise/0.4/seed0",
    ]
    assert len(jobs) == 6  # level 0 flips nothing: it is the clean run, not run twice
    assert jobs[1].overrides == ("quality.factor=label-noise", "quality.level=0.2")
    assert jobs[0].overrides == ()
    assert jobs[1].run_dir("out") == Path("out/svm/mixed/label-noise/0.2/seed0")
    assert jobs[1].as_dict()["level"] == 0.2
    loro = expand_study(["san"], [("loro", None)], RIVERS, [0], "class-removal", ["Ap", "Zrn"])
    assert len(loro) == 3 * 3 and loro[1].name == "san/loro-yangtze/class-removal/Ap/seed0"


def test_levels_parse_check_and_default():
    assert parse_levels("size", "0.5, 0.1,0.5") == [0.5, 0.1]
    assert parse_levels("class-removal", "Ap,Zrn") == ["Ap", "Zrn"]
    assert default_levels("gaussian-noise", []) == [2.0, 8.0, 16.0]
    assert default_levels("class-removal", ["Ap", "Rt"]) == ["Ap", "Rt"]
    bad = [
        ("size", "0", "not a level of size"),
        ("salt-pepper", "lots", "not a level"),
        ("fog", "1", "--factor must be one of"),
    ]
    for factor, text, message in bad:
        with pytest.raises(GridError, match=message):
            parse_levels(factor, text)


@dataclass(frozen=True)
class FakeRuns:
    """Stands for JobExecutor: writes a record whose accuracy falls with the label-noise level; with
    ``apply=False`` the record has no extras.quality (as when the pipeline's hook is missing)."""

    overrides: tuple[str, ...] = ()
    apply: bool = True

    def __call__(self, job: QualityJob, run_dir: Path, resume: bool) -> dict[str, Any]:
        settings = dict(o.split("=", 1) for o in self.overrides)
        level = float(settings.get("quality.level", 0.0))
        accuracy = 0.9 - level + 0.01 * job.seed
        base = classification_metrics([0, 1, 1], [0, 1, 0], ["Ap", "Zrn"])
        metrics = {"test": base | {"accuracy": accuracy}}
        if job.target:
            metrics["target"] = base | {"accuracy": accuracy - 0.2}
        extras = {}
        if self.apply and "quality.factor" in settings:
            extras["quality"] = {
                "factor": settings["quality.factor"],
                "action": "flipped",
                "fraction_changed": level,
            }
        record = stub_record(job, run_dir, selection={}, metrics=metrics, extras=extras)
        write_record(record, run_dir, None)
        return record


def test_a_study_runs_each_level_once_resumably_and_writes_table_and_curve(tmp_path):
    levels = [0.0, 0.2, 0.4]
    jobs = expand_study(["svm"], [("loro", None)], RIVERS, [0, 1], "label-noise", levels)
    execute = QualityExecutor(FakeRuns())
    summary = run_jobs(jobs, tmp_path, execute, progress=False)
    assert summary.counts()["ran"] == len(jobs) == 3 * 3 * 2
    assert run_jobs(jobs, tmp_path, execute, progress=False).counts()["skipped"] == len(jobs)

    runs = collect(jobs, tmp_path)
    assert len(runs) == len(jobs)
    table = summarise(runs, levels, "label-noise").set_index("condition")
    noisy = table.loc["label-noise/0.2"]
    assert noisy["test_mean"] == pytest.approx(0.705) and noisy["test_seeds"] == 2
    assert noisy["test_std"] == pytest.approx(0.00707, abs=1e-4)
    assert noisy["target_mean"] == pytest.approx(0.505) and noisy["fraction_changed"] == pytest.approx(0.2)
    assert table.loc["clean", "test_mean"].tolist() == pytest.approx([0.905, 0.905])  # baseline and level 0

    markdown, paths = write_study(
        jobs, tmp_path, method="svm", protocol="loro", factor="label-noise", levels=levels
    )
    assert [p.name for p in paths] == [
        "svm-loro-label-noise.md",
        "svm-loro-label-noise.csv",
        "svm-loro-label-noise.png",
    ]
    assert all(p.stat().st_size > 0 for p in paths)
    lines = markdown.splitlines()
    assert "| clean | 0% | 0.905 ± 0.007 | 0.705 ± 0.007 |" in lines
    assert "| 0 (= clean) | 0% | 0.905 ± 0.007 | 0.705 ± 0.007 |" in lines
    assert "| 0.4 | 40% | 0.505 ± 0.007 | 0.305 ± 0.007 |" in lines
    assert len(pd.read_csv(paths[1])) == 1 + len(levels)


def test_a_run_that_ignored_its_factor_fails_and_leaves_no_complete_record(tmp_path):
    jobs = expand_study(["svm"], [("mixed", None)], RIVERS, [0], "label-noise", [0.3])
    summary = run_jobs(jobs, tmp_path, QualityExecutor(FakeRuns(apply=False)), progress=False)
    assert [o.status for o in summary.outcomes] == ["ran", "failed"]  # the clean run needs no hook
    assert "QualityHookMissing" in summary.outcomes[1].error
    assert read_record(jobs[1].run_dir(tmp_path)) is None
    assert not (jobs[1].run_dir(tmp_path) / RESULTS_FILE).exists()
    with pytest.raises(QualityHookMissing, match="san/runs/lifecycle.py"):
        QualityExecutor(FakeRuns(apply=False))(jobs[1], tmp_path / "again", False)


def test_the_executor_adds_the_condition_to_the_benchmark_overrides(tmp_path):
    job = expand_study(["san"], [("mixed", None)], RIVERS, [2], "blur", [2.0])[1]
    base = JobExecutor(data="rivers.csv", preset="cpu", out=str(tmp_path), overrides=("epochs=1",))
    with_condition = dataclasses.replace(base, overrides=(*base.overrides, *job.overrides))
    request = with_condition.request(job, job.run_dir(tmp_path))
    assert request.overrides == [
        "training.epoch_scores=true",
        "epochs=1",
        "quality.factor=blur",
        "quality.level=2",
    ]
    assert request.seed == 2 and request.protocol == "mixed"


# --------------------------------------------------------------------- end to end (needs the hook lines)


@pytest.fixture(scope="module")
def small_tree(tmp_path_factory, write_pair_tree) -> Path:
    root = tmp_path_factory.mktemp("quality_tree")
    write_pair_tree(root, "{domain}/{pol}/{label}/{name}", {"pengqu": {"Ap": 10, "Zrn": 10, "Rt": 10}})
    return root


def test_label_noise_reaches_a_real_classical_run(small_tree, tmp_path):
    jobs = expand_study(["knn"], [("mixed", None)], ["pengqu"], [0], "label-noise", [0.5])
    execute = QualityExecutor(
        JobExecutor(
            data=str(small_tree),
            preset="cpu",
            out=str(tmp_path),
            wandb_mode="disabled",
        )
    )
    summary = run_jobs(jobs, tmp_path, execute, progress=False)
    assert summary.counts()["ran"] == 2, summary.format(tmp_path)
    record = read_record(jobs[1].run_dir(tmp_path))
    quality = record["extras"]["quality"]
    train = record["data"]["split_counts"]["pengqu"]["train"]
    assert quality["n_changed"] == round(0.5 * train) and quality["n_train_before"] == train
    assert record["config"]["quality"]["level"] == 0.5
    split = pd.read_csv(jobs[1].run_dir(tmp_path) / "split.csv")
    assert (split["split"] != "unused").all()  # label noise removes nothing


def test_an_image_factor_reaches_a_real_deep_run(small_tree, tmp_path):
    jobs = expand_study(["erm"], [("mixed", None)], ["pengqu"], [0], "salt-pepper", [0.2])
    overrides = ("size=16", "epochs=1", "batch_size=8", "fused_dim=8")
    execute = QualityExecutor(
        JobExecutor(
            data=str(small_tree),
            preset="cpu",
            out=str(tmp_path),
            wandb_mode="disabled",
            overrides=overrides,
            device="cpu",
        )
    )
    summary = run_jobs(jobs, tmp_path, execute, progress=False)
    assert summary.counts()["ran"] == 2, summary.format(tmp_path)
    quality = read_record(jobs[1].run_dir(tmp_path))["extras"]["quality"]
    assert quality["images_applied"] is True and quality["fraction_changed"] == 1.0
    assert json.loads(json.dumps(quality)) == quality


def test_an_image_factor_reaches_a_real_classical_run(small_tree, tmp_path):
    jobs = expand_study(["knn"], [("mixed", None)], ["pengqu"], [0], "brightness", [4.0])
    execute = QualityExecutor(
        JobExecutor(
            data=str(small_tree),
            preset="cpu",
            out=str(tmp_path),
            wandb_mode="disabled",
        )
    )
    summary = run_jobs(jobs, tmp_path, execute, progress=False)
    assert summary.counts()["ran"] == 2, summary.format(tmp_path)
    assert read_record(jobs[1].run_dir(tmp_path))["extras"]["quality"]["images_applied"] is True
