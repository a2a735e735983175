"""SAN: Siamese Adversarial Network for heavy-mineral grains from paired PPL/XPL micrographs.

The Python API (docs/python-api.md)::

    import san
    record = san.train("san", data="micrographs", domains=["yarlung", "pengqu"])
    run = san.load_run(record["run_dir"])
    predictions = run.predict("new_sample")
    table = san.assemblage(predictions, run)

``import san`` imports nothing heavy: the API names load their module on first use (PEP 562), and
submodules are imported directly (``from san.algorithms.registry import build_algorithm``).
"""

import importlib as _importlib

from data_tools import __version__

# The package is the API's facade: the one place a lower layer names san.api (tests/test_layers.py).
_API = ("Run", "assemblage", "load_run", "train")
__all__ = [*_API, "__version__"]


def __getattr__(name: str) -> object:
    if name in _API:
        return getattr(_importlib.import_module("san.api"), name)
    raise AttributeError(f"module 'san' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
