"""Claim files: at most one process works on a run directory at a time, on one machine or many.

A claim on ``<dir>`` is the file ``<dir>.claim`` beside it, created with ``O_CREAT | O_EXCL`` (atomic,
also on NFS) and holding its owner: host, pid, the process's start time and a label. Nobody but the
owner removes a live claim. A claim is *stale* only when its owner is provably gone: the same host,
and no process with that pid (or one started at another time, so a reused pid is not mistaken for
the owner). A claim from another host is never judged stale here; the message names the host so a
person can remove the file once that machine is known to be down.

Breaking a stale claim is itself guarded by ``<dir>.claim.break`` (the same O_EXCL dance), so two
processes that both find the same stale claim cannot both take it over.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CLAIM_SUFFIX = ".claim"
_BREAK_SUFFIX = ".break"


def claim_path(target: str | Path) -> Path:
    """The claim file of ``target``: ``<target>.claim`` beside it (outside it, so clearing the
    directory never removes its own claim)."""
    target = Path(target)
    return target.with_name(target.name + CLAIM_SUFFIX)


def _process_start(pid: int) -> str | None:
    """The kernel's start time of ``pid`` in clock ticks since boot (Linux), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may hold spaces


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def this_owner(label: str = "") -> dict[str, Any]:
    """The owner record of the calling process."""
    return {
        "host": platform.node(),
        "pid": os.getpid(),
        "started": _process_start(os.getpid()),
        "label": label,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def owner_gone(owner: Mapping[str, Any]) -> bool:
    """True only when the owner is provably not running: same host and its process is gone."""
    if owner.get("host") != platform.node() or not isinstance(owner.get("pid"), int):
        return False
    pid = owner["pid"]
    if not _pid_alive(pid):
        return True
    started = owner.get("started")
    return started is not None and _process_start(pid) not in (None, started)


def describe_owner(owner: Mapping[str, Any]) -> str:
    """``pid 123 on host-a (since 2026-...)``."""
    return f"pid {owner.get('pid')} on {owner.get('host')} (since {owner.get('time', '?')})"


@dataclass(frozen=True)
class Claim:
    """A claim this process holds; :meth:`release` removes it (only while it is still ours)."""

    path: Path
    owner: dict[str, Any]

    def release(self) -> None:
        """Remove the claim file if it still holds this owner (never someone else's)."""
        if read_owner(self.path) == self.owner:
            self.path.unlink(missing_ok=True)


def read_owner(path: str | Path) -> dict[str, Any] | None:
    """The owner recorded in a claim file; None if there is none. An unreadable or half-written file
    (a crash between create and write) is reported as an owner of unknown host, so it is never stale."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        owner = json.loads(text)
    except json.JSONDecodeError:
        owner = None
    return owner if isinstance(owner, dict) else {"host": None, "pid": None, "unreadable": text[:80]}


def _create(path: Path, owner: dict[str, Any]) -> bool:
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(owner) + "\n")
    return True


def _break_stale(path: Path, stale: Mapping[str, Any]) -> None:
    """Remove the stale claim ``path`` if it still holds ``stale``, under the break guard."""
    guard = path.with_name(path.name + _BREAK_SUFFIX)
    if not _create(guard, this_owner("breaking a stale claim")):
        if (breaker := read_owner(guard)) is not None and owner_gone(breaker):
            guard.unlink(missing_ok=True)  # a breaker died mid-break; the next attempt retries
        return
    try:
        if read_owner(path) == stale:
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def try_claim(target: str | Path, label: str = "") -> Claim | None:
    """Claim ``target`` for this process; None when another live (or unknown) owner holds it.

    A stale claim (its owner provably gone, see :func:`owner_gone`) is taken over. Creates the
    parent folder if needed.
    """
    path = claim_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = this_owner(label)
    for _ in range(3):  # an owner may release or a stale claim be broken between our steps
        if _create(path, owner):
            return Claim(path, owner)
        current = read_owner(path)
        if current is None:
            continue
        if not owner_gone(current):
            return None
        _break_stale(path, current)
    return None


def holder(target: str | Path) -> dict[str, Any] | None:
    """The live (or unknown) owner of ``target``'s claim; None when unclaimed or the claim is stale."""
    owner = read_owner(claim_path(target))
    return None if owner is None or owner_gone(owner) else owner


@contextmanager
def claimed(target: str | Path, label: str = "") -> Iterator[Claim | None]:
    """``with claimed(dir) as claim:`` — the claim (None if held elsewhere), released on exit."""
    claim = try_claim(target, label)
    try:
        yield claim
    finally:
        if claim is not None:
            claim.release()
