"""Claim files: one owner per run directory; stale only when the owner is provably gone."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from san.benchmark.claims import claim_path, claimed, holder, read_owner, this_owner, try_claim


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The pid of a process that has exited (reaped)."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def write_owner(target, **owner) -> None:
    claim_path(target).parent.mkdir(parents=True, exist_ok=True)
    claim_path(target).write_text(json.dumps(owner))


def test_a_claim_is_exclusive_and_released_by_its_owner(tmp_path):
    target = tmp_path / "san" / "mixed" / "seed0"
    claim = try_claim(target, label="san/mixed/seed0")
    assert claim is not None and claim.path == tmp_path / "san" / "mixed" / "seed0.claim"
    assert read_owner(claim.path)["label"] == "san/mixed/seed0"
    assert try_claim(target) is None  # held by a live process (this one)
    assert holder(target) == claim.owner
    claim.release()
    assert not claim.path.exists() and holder(target) is None
    with claimed(target) as again:
        assert again is not None
    assert not claim_path(target).exists()


def test_a_claim_whose_owner_died_on_this_host_is_taken_over(tmp_path, dead_pid):
    write_owner(tmp_path / "run", host=platform.node(), pid=dead_pid, started=None)
    assert holder(tmp_path / "run") is None
    claim = try_claim(tmp_path / "run")
    assert claim is not None and read_owner(claim.path)["pid"] == this_owner()["pid"]


def test_a_reused_pid_is_not_mistaken_for_the_owner(tmp_path):
    # this process is alive, but it started at another time than the recorded owner
    write_owner(tmp_path / "run", host=platform.node(), pid=this_owner()["pid"], started="1")
    assert try_claim(tmp_path / "run") is not None


@pytest.mark.parametrize(
    "owner",
    [
        {"host": "another-machine", "pid": 1},  # cannot tell whether it is alive: never stale
        {"host": platform.node(), "pid": 1},  # alive (init)
    ],
)
def test_a_claim_of_a_live_or_unknown_owner_is_left_alone(tmp_path, owner):
    write_owner(tmp_path / "run", **owner)
    assert try_claim(tmp_path / "run") is None
    assert holder(tmp_path / "run")["pid"] == 1
    assert read_owner(claim_path(tmp_path / "run")) == owner


def test_an_unreadable_claim_is_never_stale(tmp_path):
    claim_path(tmp_path / "run").write_text("")  # a crash between create and write
    assert try_claim(tmp_path / "run") is None


def test_release_never_removes_another_owners_claim(tmp_path):
    claim = try_claim(tmp_path / "run")
    write_owner(tmp_path / "run", host="another-machine", pid=7)
    claim.release()
    assert read_owner(claim_path(tmp_path / "run"))["host"] == "another-machine"
