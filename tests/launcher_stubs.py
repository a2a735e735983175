"""A picklable job executor for the launcher tests: it writes a complete results.json at once,
saying which process ran it and which GPU that process saw, and fails for the methods in ``fail``.
It lives in its own module so that processes started by submitit can import it."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class WhereExecutor:
    fail: tuple[str, ...] = ()

    def __call__(self, job: Any, run_dir: Path, resume: bool) -> dict[str, Any]:
        logging.getLogger("san.stub").info("running %s", job.name)
        if job.method in self.fail:
            raise ValueError(f"{job.method} exploded")
        record = {
            "status": "complete",
            "method": job.method,
            "seed": job.seed,
            "extras": {"pid": os.getpid(), "gpu": os.environ.get("CUDA_VISIBLE_DEVICES")},
        }
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        (Path(run_dir) / "results.json").write_text(json.dumps(record), encoding="utf-8")
        return record
