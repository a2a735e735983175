"""Shared fixtures. Tests run on CPU with W&B disabled and caches under a temporary folder."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("WANDB_SILENT", "true")

SHARED_SANDSTONE = Path(__file__).resolve().parents[2] / "shared" / "data" / "sandstone-pairs"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every cache a test writes out of the user's home."""
    monkeypatch.setenv("HEAVY_MINERALS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session", autouse=True)
def _small_assemblage_budget() -> Iterator[None]:
    """Runs evaluate their assemblage under APP; a handful of samples is enough to test the path.
    Session-scoped, so module-scoped run fixtures get the small budget too."""
    import san.evaluation.assemblage_evaluation as evaluation
    import san.inference.prediction as prediction

    with pytest.MonkeyPatch.context() as patch:
        for name, value in (
            ("RECORD_SAMPLES", 6),
            ("RECORD_SELECTION_SAMPLES", 4),
            ("RECORD_COVERAGE_SAMPLES", 3),
            ("RECORD_DRAWS", 5),
        ):
            patch.setattr(evaluation, name, value)
        patch.setattr(prediction, "ASSEMBLAGE_DRAWS", 8)
        yield


@pytest.fixture
def sandstone_root() -> Path:
    """The real sandstone pairs beside the project; skips when they are absent (a user's checkout)."""
    if not SHARED_SANDSTONE.is_dir():
        pytest.skip(f"real sandstone pairs not found at {SHARED_SANDSTONE}")
    return SHARED_SANDSTONE


def _write_image(path: Path, seed: int, size: tuple[int, int] = (24, 20)) -> Path:
    """A random RGB image of (width, height) whose content is fixed by ``seed``; format from the suffix."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


class CodeRunningPayload:
    """Unpickling this creates ``marker``: the stand-in for a crafted file that runs code when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., object], tuple[str, str]]:
        return (open, (str(self.marker), "w"))


@pytest.fixture
def code_running_payload(tmp_path: Path) -> tuple[CodeRunningPayload, Path]:
    """(payload, marker): a picklable object whose unpickling writes ``marker`` (asserted absent after)."""
    marker = tmp_path / "CODE_RAN"
    return CodeRunningPayload(marker), marker


@pytest.fixture(scope="session")
def write_image() -> Callable[..., Path]:
    """``write_image(path, seed, size=(w, h))``: write a random image."""
    return _write_image


@pytest.fixture(scope="session")
def write_pair_tree() -> Callable[..., int]:
    """``write_pair_tree(root, template, {domain: {label: n}}, pols=, suffix=, split=)`` -> pairs written."""

    def write(
        root: Path,
        template: str,
        domains: dict[str, dict[str, int]],
        *,
        pols: tuple[str, str] = ("plane", "cross"),
        suffix: str = ".png",
        split: str = "train",
        seed: int = 0,
    ) -> int:
        count = 0
        for domain, classes in domains.items():
            for label, n in classes.items():
                for i in range(n):
                    for j, pol in enumerate(pols):
                        relative = template.format(
                            domain=domain, split=split, pol=pol, label=label, name=f"{label}_{i:03d}{suffix}"
                        )
                        _write_image(root / relative, seed=seed * 100_000 + count * 2 + j)
                    count += 1
        return count

    return write


@pytest.fixture(scope="module")
def single_torch_thread() -> Iterator[None]:
    """One torch thread for a module: tiny tensors run faster on one, and intra-op threads spin when
    the CPU is shared (use with ``pytestmark = pytest.mark.usefixtures("single_torch_thread")``)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
