"""Weights & Biases, configured in one place. Offline by default: no account, no network.

The local run record stays the source of truth; W&B mirrors it. ``online`` is used only when
the user asks for it; ``disabled`` creates no files at all.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
MODES = ("online", "offline", "disabled")
DEFAULT_MODE = "offline"


def default_mode() -> str:
    """The W&B mode a command uses unless told: ``WANDB_MODE`` from the environment when it names one
    of :data:`MODES` (so ``WANDB_MODE=disabled`` is respected), else offline."""
    mode = os.environ.get("WANDB_MODE", "").strip().lower()
    return mode if mode in MODES else DEFAULT_MODE


class Tracker:
    """A W&B run (or nothing, when disabled) with the few calls the engine needs."""

    def __init__(
        self,
        mode: str,
        run_dir: Path,
        *,
        project: str,
        group: str | None,
        name: str,
        tags: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"W&B mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.run = None
        if mode == "disabled":
            return
        os.environ.setdefault("WANDB_SILENT", "true")
        try:
            import wandb
        except ImportError:
            log.warning("wandb is not installed: W&B tracking is off (the local run record is unaffected)")
            self.mode = "disabled"
            return
        self._wandb = wandb
        if mode != "online":
            # The process-wide settings must say offline too: W&B's telemetry exporter is built from
            # them (not from the run's) and otherwise probes its server (a DNS lookup and an HTTPS post).
            wandb.setup(settings=wandb.Settings(mode=mode))
        self.run = wandb.init(
            mode=mode,
            dir=str(run_dir),
            project=project,
            group=group,
            name=name,
            tags=list(tags),
            config=dict(config or {}),
            reinit="finish_previous",
        )
        where = "synced to the W&B server" if mode == "online" else f"offline files under {run_dir}/wandb"
        log.info("W&B %s run %s (%s)", mode, name, where)

    def log(self, values: Mapping[str, float], step: int) -> None:
        """Log scalars at a step (the epoch)."""
        if self.run is not None:
            self.run.log(dict(values), step=step)

    def log_confusion(self, key: str, confusion: Sequence[Sequence[int]], class_names: Sequence[str]) -> None:
        """Log a confusion matrix as a table (true, predicted, count)."""
        if self.run is None:
            return
        rows = [
            [class_names[i], class_names[j], int(count)]
            for i, row in enumerate(confusion)
            for j, count in enumerate(row)
            if count
        ]
        self.run.log({key: self._wandb.Table(columns=["true", "predicted", "count"], data=rows)})

    def log_artifact(self, name: str, paths: Sequence[Path], kind: str = "model") -> None:
        """Log files (a run's model and record) as one W&B artifact; characters W&B refuses in a name
        become ``-``. Offline, the artifact waits in the offline run until it is synced."""
        if self.run is None:
            return
        artifact = self._wandb.Artifact(re.sub(r"[^A-Za-z0-9_.-]+", "-", name), type=kind)
        for path in paths:
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def log_image(self, key: str, path: Path) -> None:
        """Log a PNG written by the run."""
        if self.run is not None:
            self.run.log({key: self._wandb.Image(str(path))})

    def summary(self, values: Mapping[str, Any]) -> None:
        """Set final values in the run summary."""
        if self.run is not None:
            self.run.summary.update(dict(values))

    def finish(self, failed: bool = False) -> None:
        """Close the run (exit code 1 marks it failed)."""
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None
