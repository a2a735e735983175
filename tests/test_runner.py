"""The benchmark runner: grid expansion, idempotency, resuming, failures, parallel workers, sweep files.

Most tests use a fast fake executor that writes a valid record (or raises); one runs a tiny real job.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from runner_stubs import driver_command, stub_grid, stub_record

from data_tools.atomic import append_line
from san.benchmark.claims import claim_path
from san.benchmark.jobs import (
    ALL_METHODS,
    GridError,
    Job,
    JobExecutor,
    expand_grid,
    parse_methods,
    parse_protocols,
    parse_seeds,
)
from san.benchmark.remaining_time import RemainingTime
from san.benchmark.runner import (
    FAILURE_FILE,
    claim_output_dir,
    job_state,
    run_job,
    run_jobs,
    threads_per_worker,
)
from san.cli import benchmark as benchmark_cli
from san.runs.config import CONFIG_DIR, resolve_config
from san.runs.lifecycle import CHECKPOINT_FILE, REQUEST_FILE
from san.runs.records import RESULTS_FILE, RESULTS_LOG, read_record, write_record

ROOT = Path(__file__).resolve().parents[1]
RIVERS = ["yangtze", "yarlung", "pengqu"]


@dataclass(frozen=True)
class FakeExecutor:
    """Writes a valid record at once and logs each call (method, task, seed, resume, torch threads) to
    ``calls.log`` in ``log_dir``; raises for the methods in ``fail``. Picklable for worker processes."""

    log_dir: str
    fail: tuple[str, ...] = ()

    def __call__(self, job: Job, run_dir: Path, resume: bool) -> dict[str, Any]:
        append_line(
            Path(self.log_dir) / "calls.log",
            json.dumps({"name": job.name, "resume": resume, "threads": torch.get_num_threads()}),
        )
        if job.method in self.fail:
            raise ValueError(f"{job.method} exploded\nsecond line of the message")
        record = stub_record(job, run_dir, selection={"rule": "fake"})
        write_record(record, run_dir, None)
        return record


def calls(log_dir: Path) -> list[dict[str, Any]]:
    path = log_dir / "calls.log"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def small_grid() -> list[Job]:
    return expand_grid(["svm", "san"], [("mixed", None), ("loro", None)], ["yangtze", "yarlung"], [0])


# ------------------------------------------------------------------------------------------- the grid


def test_grid_has_one_job_per_method_protocol_target_and_seed():
    jobs = expand_grid(["svm", "san"], parse_protocols("mixed,loro"), RIVERS, [0, 1])
    assert len(jobs) == 2 * (1 + 3) * 2
    assert len({job.name for job in jobs}) == len(jobs)
    loro = next(j for j in jobs if j.method == "san" and j.target == "yarlung" and j.seed == 1)
    assert loro.name == "san/loro-yarlung/seed1" and loro.sources == ("yangtze", "pengqu")
    assert loro.run_dir("runs/bench") == Path("runs/bench/san/loro-yarlung/seed1")
    mixed = next(j for j in jobs if j.protocol == "mixed")
    assert mixed.target is None and mixed.sources == tuple(RIVERS) and mixed.name == "svm/mixed/seed0"
    assert [j.seed for j in jobs[:8]] == [0] * 8  # seed-major, so early results cover every method


def test_targets_and_single_river_protocols_restrict_the_loro_jobs():
    jobs = expand_grid(["san"], parse_protocols("mixed,loro"), RIVERS, [0], targets=["YaJiang"])  # an alias
    assert [j.task for j in jobs] == ["mixed", "loro-yarlung"]
    single = expand_grid(["san"], parse_protocols("loro-pengqu"), RIVERS, [0])
    assert [j.task for j in single] == ["loro-pengqu"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: parse_methods("svm,transformer"), "transformer"),
        (lambda: parse_seeds("0,x"), "'x'"),
        (lambda: parse_protocols("mixed,kfold"), "kfold"),
        (lambda: expand_grid(["san"], [("loro", None)], ["sandstone"], [0]), "at least two rivers"),
        (lambda: expand_grid(["san"], [("loro", None)], RIVERS, [0], targets=["nile"]), "nile"),
    ],
)
def test_bad_grid_arguments_are_clear_errors(call, message):
    with pytest.raises(GridError, match=message):
        call()


def test_method_and_seed_lists():
    assert parse_methods("all") == list(ALL_METHODS)
    assert parse_methods("SAN, svm") == ["san", "svm"]
    assert parse_seeds("0-2,5,1") == [0, 1, 2, 5]


def test_deep_job_request_matches_what_train_san_would_build(tmp_path):
    job = expand_grid(["vgg16"], [("loro", "yarlung")], RIVERS, [3])[0]
    request = JobExecutor(data="rivers.csv", preset="cpu", out="runs/b", overrides=("epochs=1",)).request(
        job, tmp_path / "run"
    )
    assert (request.method, request.protocol, request.seed) == ("vgg16", "loro", 3)
    assert request.domains == ["yangtze", "pengqu"] and request.targets == ["yarlung"]
    assert request.config_file == str(CONFIG_DIR / "presets" / "cpu.yaml")
    assert request.run_dir == str(tmp_path / "run") and request.out == "runs/b"
    # Grid jobs score test and target every epoch (the loso and oracle rules need it); --set comes after.
    assert request.overrides == ["training.epoch_scores=true", "epochs=1"]
    assert request.progress is False


def test_paper_preset_overrides_nothing():
    assert yaml.safe_load((CONFIG_DIR / "presets" / "paper.yaml").read_text()) == {}


# ------------------------------------------------------------------------------------ idempotency


def test_second_invocation_runs_nothing(tmp_path):
    jobs = small_grid()
    first = run_jobs(jobs, tmp_path / "out", FakeExecutor(str(tmp_path)), progress=False)
    assert first.counts()["ran"] == len(jobs) == 6 and not first.failed
    assert all(job_state(j.run_dir(tmp_path / "out")) == "complete" for j in jobs)
    second = run_jobs(jobs, tmp_path / "out", FakeExecutor(str(tmp_path)), progress=False)
    assert second.counts() == {"skipped": 6}
    assert len(calls(tmp_path)) == 6
    assert "0 ran, 6 skipped (already complete), 0 failed" in second.format(tmp_path / "out")


def test_deleted_record_is_rerun(tmp_path):
    jobs, out = small_grid(), tmp_path / "out"
    run_jobs(jobs, out, FakeExecutor(str(tmp_path)), progress=False)
    (jobs[2].run_dir(out) / RESULTS_FILE).unlink()
    (jobs[2].run_dir(out) / "leftover.txt").write_text("from the first attempt")
    summary = run_jobs(jobs, out, FakeExecutor(str(tmp_path)), progress=False)
    assert summary.counts() == {"ran": 1, "skipped": 5}
    assert calls(tmp_path)[-1] == {"name": jobs[2].name, "resume": False, "threads": torch.get_num_threads()}
    assert not (jobs[2].run_dir(out) / "leftover.txt").exists()  # a rerun starts from an empty directory


def test_unfinished_run_with_a_checkpoint_is_resumed(tmp_path):
    job, out = small_grid()[0], tmp_path / "out"
    run_dir = job.run_dir(out)
    run_dir.mkdir(parents=True)
    (run_dir / CHECKPOINT_FILE).write_bytes(b"state")
    (run_dir / REQUEST_FILE).write_text("{}")
    assert job_state(run_dir) == "resumable"
    summary = run_jobs([job], out, FakeExecutor(str(tmp_path)), progress=False)
    assert summary.counts() == {"resumed": 1} and calls(tmp_path)[0]["resume"] is True
    assert (run_dir / CHECKPOINT_FILE).exists()  # kept for the executor (the real engine removes it)


def test_failing_job_is_recorded_and_the_others_go_on(tmp_path):
    jobs, out = small_grid(), tmp_path / "out"
    summary = run_jobs(jobs, out, FakeExecutor(str(tmp_path), fail=("svm",)), progress=False)
    assert summary.counts() == {"ran": 3, "failed": 3}
    assert [o.job.method for o in summary.failed] == ["svm"] * 3
    assert all(o.error == "ValueError: svm exploded" for o in summary.failed)
    failure = json.loads((jobs[0].run_dir(out) / FAILURE_FILE).read_text())
    assert failure["error_type"] == "ValueError" and "svm exploded" in failure["traceback"]
    assert failure["job"]["name"] == jobs[0].name and read_record(jobs[0].run_dir(out)) is None
    assert job_state(jobs[0].run_dir(out)) == "failed"
    report = summary.format(out)
    assert "3 ran, 0 skipped (already complete), 3 failed" in report
    assert "svm/loro-yarlung/seed0  ValueError: svm exploded" in report
    assert "san" in report and "svm" in report.split("time per method")[1]

    retry = run_jobs(jobs, out, FakeExecutor(str(tmp_path)), progress=False)  # fixed: failed jobs run again
    assert retry.counts() == {"ran": 3, "skipped": 3}
    assert not (jobs[0].run_dir(out) / FAILURE_FILE).exists()


def test_an_executor_that_writes_no_record_is_a_failure(tmp_path):
    job = small_grid()[0]
    summary = run_jobs([job], tmp_path, lambda job, run_dir, resume: {}, progress=False)
    assert summary.failed and "no complete results.json" in summary.failed[0].error


def test_parallel_workers_are_processes_with_a_share_of_the_threads(tmp_path):
    jobs, out = small_grid(), tmp_path / "out"
    summary = run_jobs(jobs, out, FakeExecutor(str(tmp_path), fail=("san",)), workers=2, progress=False)
    assert summary.counts() == {"ran": 3, "failed": 3}
    assert {c["threads"] for c in calls(tmp_path)} == {threads_per_worker(2)}
    assert all(job_state(j.run_dir(out)) == ("failed" if j.method == "san" else "complete") for j in jobs)


# ------------------------------------------------------------------- many runners, killed runners


def test_a_job_claimed_by_a_live_process_is_left_alone(tmp_path):
    job, out = small_grid()[0], tmp_path / "out"
    run_dir = job.run_dir(out)
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("being written by the other runner")
    claim_path(run_dir).write_text(json.dumps({"host": "node7", "pid": 4242, "time": "now"}))
    assert job_state(run_dir) == "running"
    outcome = run_job(job, out, FakeExecutor(str(tmp_path)))
    assert outcome.status == "elsewhere" and "pid 4242 on node7" in outcome.error
    assert (run_dir / "config.yaml").is_file() and not calls(tmp_path)  # not wiped, not run
    summary = run_jobs([job], out, FakeExecutor(str(tmp_path)), progress=False)
    assert "1 left to another process" in summary.format(out) and "node7" in summary.format(out)


def test_two_runners_on_one_folder_run_each_job_once(tmp_path):
    out, barrier = tmp_path / "out", tmp_path / "barrier"
    drivers = [
        subprocess.Popen(driver_command("slow", out, tmp_path, barrier, 2), stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    counts = [json.loads(d.communicate(timeout=120)[0].splitlines()[-1]) for d in drivers]
    assert all(d.returncode == 0 for d in drivers)
    names = [c["name"] for c in calls(tmp_path)]
    assert sorted(names) == sorted(j.name for j in stub_grid())  # every job ran exactly once
    assert sum(c.get("ran", 0) for c in counts) == 6 and not any(c.get("failed") for c in counts)
    lines = [json.loads(line) for line in (out / RESULTS_LOG).read_text().splitlines()]
    assert sorted(line["run_dir"] for line in lines) == sorted(str(j.run_dir(out)) for j in stub_grid())
    for job in stub_grid():
        run_dir = job.run_dir(out)
        assert job_state(run_dir) == "complete" and not claim_path(run_dir).exists()
        assert not (run_dir / FAILURE_FILE).exists() and not (run_dir / CHECKPOINT_FILE).exists()


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a killed worker re-parented to a non-reaping init)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_workers_die_when_the_runner_is_killed(tmp_path):
    runner = subprocess.Popen(driver_command("sleepy", tmp_path / "out", tmp_path, tmp_path / "barrier"))
    pids_log = tmp_path / "pids.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(pids_log.read_text().split() if pids_log.exists() else []) < 2:
        time.sleep(0.1)
    workers = [int(pid) for pid in pids_log.read_text().split()]
    assert len(workers) == 2 and runner.pid not in workers
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait(timeout=10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(_alive(pid) for pid in workers):
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # do not leave them behind when the assertion fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"workers {survivors} outlived their killed parent"


def test_output_folder_refuses_runs_of_other_settings(tmp_path):
    claim_output_dir(tmp_path, {"preset": "cpu", "overrides": ("epochs=1",), "manifest_hash": "abc"})
    claim_output_dir(tmp_path, {"preset": "cpu", "overrides": ["epochs=1"], "manifest_hash": "abc"})
    with pytest.raises(ValueError, match="preset: 'cpu' there, 'paper' now"):
        claim_output_dir(tmp_path, {"preset": "paper", "overrides": ["epochs=1"], "manifest_hash": "abc"})


# --------------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def benchmark_script():
    return benchmark_cli


@pytest.mark.parametrize("sweep_file", sorted((CONFIG_DIR / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_sweep_sets_only_flags_that_benchmark_accepts(sweep_file, benchmark_script):
    sweep = yaml.safe_load(sweep_file.read_text())
    assert (ROOT / sweep["program"]).is_file() and sweep["method"] == "grid"
    parser = benchmark_script.build_parser()
    fixed = [part for part in sweep["command"] if not part.startswith("${")]
    names = list(sweep["parameters"])
    choices = [spec.get("values", [spec.get("value")]) for spec in sweep["parameters"].values()]
    combinations = list(itertools.product(*choices))
    assert len(combinations) >= 9 * 4 * 3
    for combination in combinations:  # ${args} expands to --name=value for every parameter
        args = parser.parse_args([f"--{n}={v}" for n, v in zip(names, combination, strict=True)] + fixed)
        methods, protocols = parse_methods(args.methods), parse_protocols(args.protocols)
        assert len(methods) == 1 and len(protocols) == 1 and len(parse_seeds(args.seeds)) == 1
        jobs = expand_grid(methods, protocols, RIVERS, parse_seeds(args.seeds))
        assert len(jobs) == 1  # one agent run is exactly one job, so no two machines share a directory


def test_dry_run_lists_jobs_and_their_state(benchmark_script, tmp_path, capsys, write_pair_tree):
    write_pair_tree(
        tmp_path / "tree", "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 2}, "yarlung": {"Ap": 2}}
    )
    out = tmp_path / "out"
    code = benchmark_script.main(
        [
            "--data",
            str(tmp_path / "tree"),
            "--methods",
            "svm,san",
            "--seeds",
            "0",
            "--out",
            str(out),
            "--dry-run",
        ]
    )
    printed = capsys.readouterr().out.splitlines()
    assert code == 0 and printed == [
        f"{name}\tnew"
        for name in (
            "svm/mixed/seed0",
            "san/mixed/seed0",
            "svm/loro-yangtze/seed0",
            "san/loro-yangtze/seed0",
            "svm/loro-yarlung/seed0",
            "san/loro-yarlung/seed0",
        )
    ]
    assert not out.exists()
    assert benchmark_script.main(["--data", str(tmp_path / "tree"), "--methods", "svn", "--dry-run"]) == 2


def test_runs_made_with_an_edited_preset_are_refused_not_skipped(
    benchmark_script, tmp_path, capsys, write_pair_tree
):
    write_pair_tree(tmp_path / "tree", "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 2}})
    out = tmp_path / "out"
    argv = [
        "--data",
        str(tmp_path / "tree"),
        "--methods",
        "svm",
        "--seeds",
        "0,1",
        "--preset",
        "cpu",
        "--out",
        str(out),
    ]
    job = Job("svm", "mixed", None, 0, ("yangtze",))
    config, _ = resolve_config("svm", config_file=CONFIG_DIR / "presets" / "cpu.yaml")
    config["training"]["epochs"] += 5  # as if the preset said so when this run was made
    record = FakeExecutor(str(tmp_path))(job, job.run_dir(out), False)
    write_record(record | {"config": config}, job.run_dir(out), None)
    assert benchmark_script.main([*argv, "--dry-run"]) == 0
    expected_epochs = config["training"]["epochs"] - 5
    assert capsys.readouterr().out.splitlines()[-2:] == [
        f"svm/mixed/seed0\tstale: training.epochs: {expected_epochs + 5} in the run, {expected_epochs} now",
        "svm/mixed/seed1\tnew",
    ]
    assert benchmark_script.main(argv) == 2
    error = capsys.readouterr().err
    assert "1 complete run(s)" in error and "svm/mixed/seed0: training.epochs" in error
    assert not job.run_dir(out).with_name("seed1").exists()  # nothing ran


# ----------------------------------------------------------------------------- a real job, end to end


def test_tiny_real_job_runs_then_is_skipped(tmp_path, write_pair_tree):
    write_pair_tree(
        tmp_path / "tree",
        "{domain}/{pol}/{label}/{name}",
        {"yangtze": {"Ap": 5, "Zrn": 5}, "yarlung": {"Ap": 5, "Zrn": 5}},
    )
    jobs = expand_grid(["erm"], [("loro", "yangtze")], ["yangtze", "yarlung"], [0])
    execute = JobExecutor(
        data=str(tmp_path / "tree"),
        preset="cpu",
        out=str(tmp_path / "out"),
        wandb_mode="disabled",
        device="cpu",
        overrides=("size=16", "epochs=1", "batch_size=4", "fused_dim=8"),
    )
    first = run_jobs(jobs, tmp_path / "out", execute, progress=False)
    assert first.counts() == {"ran": 1}, first.format(tmp_path / "out")
    record = read_record(jobs[0].run_dir(tmp_path / "out"))
    assert record["status"] == "complete"
    assert record["targets"] == ["yangtze"] and record["sources"] == ["yarlung"]
    assert record["metrics"]["target"]["n"] == 10
    assert run_jobs(jobs, tmp_path / "out", execute, progress=False).counts() == {"skipped": 1}
    assert execute.changed_settings(jobs[0], record) == []  # bare override keys (fused_dim) are skipped
    record["config"]["training"]["schedule"] = "constant"
    assert execute.changed_settings(jobs[0], record) == [
        "training.schedule: 'constant' in the run, 'cosine' now"
    ]
    record["config"]["training"]["schedule"] = "cosine"
    # A key an older record lacks counts as its base.yaml value: not stale when the job keeps that
    # value, stale when the preset now sets another one.
    del record["config"]["data"]["border_fraction"]  # the CPU preset keeps base.yaml's value
    assert execute.changed_settings(jobs[0], record) == []
    del record["config"]["augmentation"]["vignetting"]  # the CPU preset keeps base.yaml's 0.0 too
    assert execute.changed_settings(jobs[0], record) == []
    recipe = dataclasses.replace(execute, preset="cpu-recipe")  # which sets 0.25
    assert "augmentation.vignetting: 0.0 in the run, 0.25 now" in recipe.changed_settings(jobs[0], record)


def test_grids_run_their_longest_jobs_first():
    jobs = expand_grid(["svm", "erm", "vgg16"], [("mixed", None), ("loro", "yarlung")], RIVERS, [0])
    ordered = [f"{j.method}/{j.protocol}" for j in sorted(jobs, key=lambda j: j.expected_cost, reverse=True)]
    assert ordered == ["vgg16/mixed", "vgg16/loro", "erm/mixed", "erm/loro", "svm/mixed", "svm/loro"]


def test_loso_jobs_cost_half_their_loro_job():
    loro = Job("erm", "loro", "yangtze", 0, ("yarlung", "pengqu"))
    loso = Job("erm", "loso", "pengqu", 0, ("yarlung",))
    assert loso.expected_cost == pytest.approx(loro.expected_cost / 2)


def test_remaining_time_weighs_jobs_by_their_expected_cost():
    jobs = sorted(
        expand_grid(["svm", "vgg16"], [("loro", "yarlung")], RIVERS, [0, 1]),
        key=lambda j: j.expected_cost,
        reverse=True,
    )
    remaining = RemainingTime(jobs)
    assert remaining.seconds(10.0) is None  # no rate before a job has finished
    for job in jobs[:2]:  # the two vgg16 jobs: 26 of 26.26 cost units
        remaining.finished(job)
    vgg, svm = jobs[0].expected_cost, jobs[-1].expected_cost
    assert remaining.seconds(100.0) == pytest.approx(100.0 * 2 * svm / (2 * vgg))
    assert remaining.seconds(100.0) < 2.0  # a job count would have said another 100 s
    for job in jobs[2:]:
        remaining.finished(job)
    assert remaining.seconds(150.0) == 0.0


def test_the_progress_bar_shows_the_expected_time_left(tmp_path, capsys):
    run_jobs(small_grid(), tmp_path / "out", FakeExecutor(str(tmp_path)), progress=True)
    shown = capsys.readouterr().err
    assert "6/6 jobs" in shown and "left=~0.0 s" in shown
