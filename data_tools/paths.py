"""Where the project keeps generated data and caches."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "HEAVY_MINERALS_CACHE"


def cache_root() -> Path:
    """Root folder for generated datasets and decoded-image caches.

    ``$HEAVY_MINERALS_CACHE`` if set, else ``$XDG_CACHE_HOME/heavy-minerals``
    (``~/.cache/heavy-minerals`` by default). The folder is not created here.
    """
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "heavy-minerals"
