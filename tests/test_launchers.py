"""Where grid jobs run: --shard, the GPU each local worker sees, and the submitit launcher (on
submitit's local executor: real processes, no cluster), and W&B artifacts (a fake wandb, no network)."""

from __future__ import annotations

import json
import os
import queue
import sys
from pathlib import Path

import pytest
from launcher_stubs import WhereExecutor

from san.benchmark import runner
from san.benchmark.jobs import GridError, expand_grid
from san.benchmark.launchers import SubmititLauncher, parse_shard, shard_jobs, worker_gpus
from san.benchmark.runner import _init_worker, run_jobs
from san.cli import benchmark as benchmark_cli
from san.runs.records import read_record
from san.runs.saved_model import CLASSICAL_MODEL_FILE

ROOT = Path(__file__).resolve().parents[1]
RIVERS = ["yangtze", "yarlung", "pengqu"]


def grid():
    return expand_grid(["svm", "rf", "san"], [("mixed", None), ("loro", None)], RIVERS, [0, 1])


@pytest.mark.parametrize("count", [1, 2, 3, 5, 24, 30])
def test_shards_are_disjoint_cover_the_grid_and_are_balanced(count):
    jobs = grid()
    shards = [shard_jobs(jobs, i, count) for i in range(1, count + 1)]
    assert sorted(j.name for s in shards for j in s) == sorted(j.name for j in jobs)
    assert len({j.name for s in shards for j in s}) == len(jobs)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    assert shard_jobs(jobs, 1, count) == shard_jobs(list(jobs), 1, count)  # deterministic


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "a/b", "2", "1/2/3", "-1/2"])
def test_bad_shards_are_named(text):
    with pytest.raises(GridError, match=repr(text)):
        parse_shard(text)


def test_shard_flag_on_the_command_line(tmp_path, capsys, write_pair_tree):
    write_pair_tree(
        tmp_path / "tree", "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 2}, "yarlung": {"Ap": 2}}
    )
    base = ["--data", str(tmp_path / "tree"), "--methods", "svm,knn", "--seeds", "0", "--dry-run"]
    listed = []
    for shard in ("1/2", "2/2"):
        assert benchmark_cli.main([*base, "--out", str(tmp_path / "out"), "--shard", shard]) == 0
        listed.append([line.split("\t")[0] for line in capsys.readouterr().out.splitlines()])
    assert not set(listed[0]) & set(listed[1]) and len(listed[0]) + len(listed[1]) == 6
    with pytest.raises(SystemExit) as exit:
        benchmark_cli.main([*base, "--shard", "3/2"])
    assert exit.value.code == 2 and "'3/2'" in capsys.readouterr().err


def test_each_local_worker_gets_one_gpu_in_turn():
    assert worker_gpus(4, 2) == ["0", "1", "0", "1"]
    assert worker_gpus(3, 4) == ["0", "1", "2"]
    assert worker_gpus(3, 2, visible="5,7") == ["5", "7", "5"]  # the parent's own visible GPUs
    assert worker_gpus(2, 1, visible="3") == ["3", "3"]
    assert worker_gpus(4, 0) == [None] * 4  # no GPU: CUDA is left alone
    assert worker_gpus(1, 8) == [None]  # one process: it may use every GPU


def test_the_worker_initializer_sets_its_gpu(monkeypatch):
    # In this process, "die with the parent" would arm a watchdog and a death signal on pytest itself.
    monkeypatch.setattr(runner, "die_with_parent", lambda parent_pid: None)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    slots = queue.Queue()
    slots.put("1")
    slots.put(None)
    _init_worker(1, os.getppid(), slots)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    _init_worker(1, os.getppid(), slots)  # None: left as it was
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_local_processes_each_see_their_own_gpu(tmp_path, monkeypatch):
    """Two spawned workers sharing two (pretend) GPUs: every job of one worker saw the same GPU, and
    the two workers saw different ones. No GPU is touched: only CUDA_VISIBLE_DEVICES is read."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    )
    jobs = expand_grid(["svm", "rf"], [("mixed", None)], RIVERS, [0, 1, 2])
    summary = run_jobs(jobs, tmp_path, WhereExecutor(), workers=2, progress=False, gpus=2)
    assert summary.counts() == {"ran": 6}
    seen = {}
    for job in jobs:
        extras = read_record(job.run_dir(tmp_path))["extras"]
        assert seen.setdefault(extras["pid"], extras["gpu"]) == extras["gpu"]
    assert set(seen.values()) <= {"0", "1"} and len(set(seen.values())) == len(seen)


@pytest.fixture
def importable_stubs(monkeypatch):
    """Processes submitit starts import the project and the stub executor through PYTHONPATH."""
    paths = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def test_submitit_local_executor_runs_the_jobs_claims_and_records_failures(tmp_path, importable_stubs):
    """Four jobs through submitit's local executor (one process each): two run, one fails and is
    recorded, and one that another live runner (this test) has claimed is left alone."""
    pytest.importorskip("submitit")
    from san.benchmark.claims import try_claim

    jobs = expand_grid(["svm", "knn", "dt", "rf"], [("mixed", None)], ["yangtze"], [0])
    launcher = SubmititLauncher(tmp_path / "submitit", cluster="local", timeout_min=10, cpus_per_job=1)
    out = tmp_path / "out"
    held = try_claim(jobs[3].run_dir(out), label="another runner")
    assert held is not None
    summary = run_jobs(jobs, out, WhereExecutor(fail=("dt",)), progress=False, launcher=launcher)
    assert summary.counts() == {"ran": 2, "failed": 1, "elsewhere": 1}, summary.format(out)
    pids = {read_record(j.run_dir(out))["extras"]["pid"] for j in jobs[:2]}
    assert len(pids) == 2 and os.getpid() not in pids  # one process per job, none of them this one
    failure = json.loads((jobs[2].run_dir(out) / "failure.json").read_text())
    assert failure["message"] == "dt exploded"
    assert read_record(jobs[3].run_dir(out)) is None  # the claimed job was not run
    logs = "".join(p.read_text() for p in (tmp_path / "submitit").glob("*_log.err"))
    assert all(f"running {job.name}" in logs for job in jobs[:3])  # each job logs progress to its console
    held.release()
    again = run_jobs(jobs, out, WhereExecutor(), progress=False, launcher=launcher)
    assert again.counts() == {"skipped": 2, "ran": 2}  # complete jobs are never resubmitted


def test_submitit_flags_build_the_launcher(tmp_path):
    args = benchmark_cli.build_parser().parse_args(
        ["--launcher", "submitit", "--partition", "gpu", "--time", "90", "--gpus-per-job", "1", "--jobs", "8"]
    )
    launcher = benchmark_cli._launcher(args, str(tmp_path))
    assert launcher == SubmititLauncher(
        tmp_path / "submitit", partition="gpu", timeout_min=90, gpus_per_job=1, cpus_per_job=4, parallel=8
    )
    assert benchmark_cli._launcher(benchmark_cli.build_parser().parse_args([]), "x") is None


class _FakeArtifact:
    def __init__(self, name: str, type: str) -> None:
        self.name, self.type, self.files = name, type, []

    def add_file(self, path: str) -> None:
        self.files.append(Path(path).name)


class _FakeRun:
    def __init__(self) -> None:
        self.artifacts: list[_FakeArtifact] = []

    def log_artifact(self, artifact: _FakeArtifact) -> None:
        self.artifacts.append(artifact)

    def log(self, *args, **kwargs) -> None:
        pass

    summary: dict = {}

    def finish(self, **kwargs) -> None:
        pass


class _FakeWandb:
    """Just enough of the wandb module for the tracker; nothing is written or sent."""

    Artifact = _FakeArtifact

    def __init__(self) -> None:
        self.run = _FakeRun()

    def init(self, **kwargs) -> _FakeRun:
        return self.run

    def setup(self, **kwargs) -> None:
        pass

    def Settings(self, **kwargs):  # noqa: N802 (wandb's names)
        return kwargs

    def Table(self, **kwargs):  # noqa: N802 (wandb's names)
        return kwargs

    def Image(self, path):  # noqa: N802
        return path


def test_tracker_logs_an_artifact_under_a_name_wandb_accepts(tmp_path, monkeypatch):
    from san.runs.tracking import Tracker

    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    (tmp_path / "model.joblib").write_text("m")
    tracker = Tracker("offline", tmp_path, project="p", group=None, name="n")
    tracker.log_artifact("svm-loro-yangtze+pengqu-seed0", [tmp_path / "model.joblib"])
    (artifact,) = fake.run.artifacts
    assert (artifact.name, artifact.type, artifact.files) == (
        "svm-loro-yangtze-pengqu-seed0",
        "model",
        ["model.joblib"],
    )
    Tracker("disabled", tmp_path, project="p", group=None, name="n").log_artifact(
        "x", [tmp_path / "model.joblib"]
    )
    assert len(fake.run.artifacts) == 1


@pytest.mark.parametrize("asked", [False, True])
def test_a_run_logs_its_model_and_record_as_an_artifact_only_when_asked(
    asked, tmp_path, monkeypatch, write_pair_tree
):
    from baselines.experiment import run_classical_experiment
    from san.runs.lifecycle import RunRequest

    fake = _FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    write_pair_tree(tmp_path / "tree", "{domain}/{pol}/{label}/{name}", {"yangtze": {"Ap": 6, "Zrn": 6}})
    request = RunRequest(
        method="knn",
        data=str(tmp_path / "tree"),
        overrides=["feature_size=32", "cv_folds=2"],
        out=str(tmp_path / "runs"),
        wandb_mode="offline",
        wandb_artifacts=asked,
        device="cpu",
        progress=False,
    )
    record = run_classical_experiment(request)
    logged = [(a.name, sorted(a.files)) for a in fake.run.artifacts]
    assert logged == ([("knn-mixed-seed0", sorted([CLASSICAL_MODEL_FILE, "results.json"]))] if asked else [])
    assert (Path(record["run_dir"]) / "train.log").is_file()
