"""Loading torch files without running code: tensors and plain containers only.

Checkpoints, saved models and backbone weights are pickles inside a zip; an unrestricted
``torch.load`` of a crafted one runs arbitrary code. Every torch file this project reads goes
through :func:`load_plain_torch` (``weights_only=True``), and what it refuses is reported as one
clear error naming the file, never as an unpickling traceback.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

_TORCH_BOILERPLATE = ("Weights only load failed", "Check the documentation", "Please file an issue")


class UnsafeFileError(ValueError):
    """A file was refused: it holds more than tensors and plain containers, or cannot be read."""


def _weights_only_reason(error: BaseException) -> str:
    """The specific line of torch's weights-only refusal (e.g. 'unsupported GLOBAL posix.system')."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    specific = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    return (" ".join(specific) or (lines[0] if lines else type(error).__name__)).rstrip(".")


def load_plain_torch(path: str | Path, *, map_location: Any = "cpu", what: str = "file") -> Any:
    """``torch.load(path, weights_only=True)``: tensors, numbers, strings and plain containers only.

    Args:
        path: the file.
        map_location: as for ``torch.load``.
        what: what the file is (``checkpoint``, ``model``...), for the error message.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        UnsafeFileError: the file holds other objects (loading them could run code) or is not a
            readable torch file; the message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _weights_only_reason(error)
        if "GLOBAL" not in reason:  # a stream the restricted unpickler cannot parse at all
            raise UnsafeFileError(f"{path}: cannot read this {what} (not a torch file: {reason})") from error
        raise UnsafeFileError(
            f"{path}: refused to load this {what}: it holds Python objects other than tensors and plain "
            f"containers, and unpickling them could run code ({reason}). This "
            "project never writes such files; it may come from an older version or another source"
        ) from error
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise UnsafeFileError(
            f"{path}: cannot read this {what} (truncated, corrupt or not a torch file: "
            f"{str(error) or 'empty file'})"
        ) from error
