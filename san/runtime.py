"""Device choice, threads and seeding.

torch is imported inside the functions, so a command's ``--help`` (which validates ``--device``
names through :func:`data_tools.commandline.check_device_name`) never loads it.
"""

from __future__ import annotations

import functools
import logging
import os
import random
from typing import TYPE_CHECKING

from data_tools.commandline import DEVICE_HELP, check_device_name

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)
__all__ = [
    "DEVICE_HELP",
    "DeviceError",
    "cpu_has_native_bf16",
    "loader_workers",
    "resolve_device",
    "seed_everything",
]


class DeviceError(ValueError):
    """A device name that is malformed or names a device this machine does not have (a usage error)."""


@functools.cache
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX512-BF16 or AMX), so that bfloat16 autocast
    runs on hardware; elsewhere torch emulates bfloat16 and a training step was 13 times slower
    (docs/results/speed.md)."""
    import torch

    # torch exposes the checks only as private helpers; a torch without them counts as no support.
    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    checks = (getattr(torch.cpu, name, None) for name in names)
    return any(bool(check()) for check in checks if check is not None)


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device ``name`` stands for: ``auto`` picks CUDA when present, else the CPU; ``cpu``,
    ``cuda``, ``cuda:N`` and ``mps`` must exist on this machine.

    Raises:
        DeviceError: an unknown name, or a device this machine does not have (the message names it).
    """
    import torch

    try:
        name = check_device_name(name)
    except ValueError as error:
        raise DeviceError(str(error)) from None
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {name} was requested but no CUDA GPU is available; use --device auto or cpu"
            )
        index = int(name.partition(":")[2] or 0)
        if index >= (count := torch.cuda.device_count()):
            raise DeviceError(
                f"--device {name}: this machine has {count} CUDA GPU(s), numbered cuda:0 to cuda:{count - 1}"
            )
    if name == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("--device mps was requested but Apple's MPS backend is not available here")
    return torch.device(name)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA); optionally ask for deterministic kernels.

    Our own code draws from explicit generators; this covers library code that uses global state
    (weight initialisation, dropout).
    """
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        # Deterministic mode also fills every new tensor with NaN, a debugging aid against reads of
        # uninitialised memory that changes no result: aten::fill_ took 44 ms of a 1.2 s full-width CPU step.
        torch.utils.deterministic.fill_uninitialized_memory = False
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
