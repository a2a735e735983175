"""Importing the library never chooses or changes matplotlib's backend (Jupyter's inline one survives)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil
    import matplotlib
    matplotlib.use("svg")
    names = []
    for package in ("san", "data_tools", "baselines"):
        module = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(module.__path__, prefix=package + "."):
            importlib.import_module(info.name)
            names.append(info.name)
    from data_tools.plotting import save_figure, subplots
    figure, axis = subplots(figsize=(2, 2))
    axis.plot([0, 1], [0, 1])
    save_figure(figure, OUT)
    print(len(names), matplotlib.get_backend())
    """
)


def test_importing_every_module_and_saving_a_figure_leaves_the_backend_alone(tmp_path: Path) -> None:
    out = tmp_path / "figure.png"
    result = subprocess.run(
        [sys.executable, "-c", f"OUT = {str(out)!r}\n" + SCRIPT],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "", "NO_ALBUMENTATIONS_UPDATE": "1", "WANDB_MODE": "disabled"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    count, backend = result.stdout.split()
    assert int(count) > 50  # every module of the three packages was imported
    assert backend == "svg"
    assert out.read_bytes().startswith(b"\x89PNG")
