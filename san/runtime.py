"""Device choice and seeding."""

from __future__ import annotations

import logging
import os
import random

import numpy as np
import torch

log = logging.getLogger(__name__)
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` picks CUDA when present, else the CPU.

    Raises:
        ValueError: an unknown name, or ``cuda`` asked for on a machine without a GPU.
    """
    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {DEVICE_CHOICES}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was requested but no CUDA GPU is available; use --device auto or cpu")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); optionally ask for deterministic kernels.

    Our own code draws from explicit generators; this covers library code that uses global state
    (weight initialisation, dropout).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def loader_workers(setting: int | str, device: torch.device) -> int:
    """Data-loader processes: ``auto`` is 0 on CPU (decoding is cached; workers only add overhead
    on a 2-core machine) and min(4, cores) on a GPU machine."""
    if setting == "auto":
        return 0 if device.type == "cpu" else min(4, os.cpu_count() or 1)
    workers = int(setting)
    if workers < 0:
        raise ValueError(f"training.num_workers must be >= 0 or 'auto', got {setting!r}")
    return workers
