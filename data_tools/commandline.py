"""What every command line of the project shares, defined once: exit codes, argument types, the
parser (with ``--version``, ``--data`` and deprecated aliases), and logging.

It sits in the lowest package so that the data commands and ``san.cli`` (which adds the mapping of
the library's errors to these exit codes) use the same vocabulary. It imports only the standard
library, so ``--help`` answers before any heavy package loads.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_CODES_HELP = "Exit codes: 0 done, 1 failed, 2 usage error."
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Largest image side a command accepts. One 8192 x 8192 RGB image is 192 MiB; preprocessing holds
# a pair per worker thread and the cache a stack of them, so a side of 100,000 px (28 GiB an image)
# would end in the out-of-memory killer rather than in an error.
MAX_SIDE = 8192
DISTRIBUTION = "heavy-minerals-san"
DATA_METAVAR = "ROOT|MANIFEST.csv"
DEVICE_HELP = "auto (a CUDA GPU when present, else the CPU), cpu, cuda, cuda:N or mps"
_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not str(text).strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def non_negative_int(text: str) -> int:
    """An argparse type: a whole number of at least 0 (seeds, counts)."""
    if not str(text).strip().isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 0, got {text!r}")
    return int(text)


def probability(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1], got {text!r}")
    return value


def side_problem(size: int) -> str | None:
    """Why ``size`` is not a usable image side in pixels, or None."""
    if not 1 <= size <= MAX_SIDE:
        return f"image side must be 1..{MAX_SIDE} px, got {size}"
    return None


def image_side(text: str) -> int:
    """An image side in pixels, 1..:data:`MAX_SIDE`."""
    size = positive_int(text)
    if problem := side_problem(size):
        raise argparse.ArgumentTypeError(problem)
    return size


def check_device_name(name: str) -> str:
    """``name`` if it is a device name (:data:`DEVICE_HELP`); whether it exists is checked when it is
    used (``san.runtime.resolve_device``).

    Raises:
        ValueError: any other text (the message names it and the accepted forms).
    """
    if not isinstance(name, str) or not _DEVICE_PATTERN.fullmatch(name.strip().lower()):
        raise ValueError(f"device must be {DEVICE_HELP}; got {name!r}")
    return name.strip().lower()


def device_name(text: str) -> str:
    """An argparse type: :func:`check_device_name`."""
    try:
        return check_device_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def package_version() -> str:
    """The installed distribution's version; from a source checkout, ``data_tools.__version__``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        from data_tools import __version__

        return __version__


class _VersionAction(argparse.Action):
    """``--version``: print ``<prog> <version>`` and exit 0 (the version is looked up only then)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        kwargs.setdefault("help", "show the version and exit")
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None):
        print(f"{parser.prog} {package_version()}")
        parser.exit()


class DeprecatedAlias(argparse.Action):
    """An old flag that still works and says which one replaces it (``replacement=``)."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, replacement: str, **kwargs: Any) -> None:
        self.replacement = replacement
        kwargs.setdefault("help", argparse.SUPPRESS)  # the replacement's help names it
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option: Any = None):
        print(f"warning: {option} is deprecated and will be removed; use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, values)


class CommandParser(argparse.ArgumentParser):
    """The parser of every command: ``--version``, and checks run right after parsing (a usage error
    found there exits 2 with the usage line, like argparse's own)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.checks: list[Callable[[argparse.Namespace], str | None]] = []
        self.add_argument("--version", action=_VersionAction)

    def parse_known_args(self, args=None, namespace=None):
        namespace, extras = super().parse_known_args(args, namespace)
        for check in self.checks:
            if problem := check(namespace):
                self.error(problem)
        return namespace, extras


def command_parser(prog: str, description: str, **kwargs: Any) -> CommandParser:
    """The parser of a command named ``prog`` (``scripts/<prog>``)."""
    return CommandParser(prog=prog, description=description, **kwargs)


def add_data_argument(
    parser: CommandParser,
    help: str,
    *,
    positional: str | None = None,
    required: bool = False,
    metavar: str = DATA_METAVAR,
    **kwargs: Any,
) -> None:
    """``--data``; with ``positional`` (its metavar), the positional form older command lines used is
    kept as an alias of it. Either way the value ends up in ``args.data``."""
    parser.add_argument("--data", metavar=metavar, help=help, **kwargs)
    if positional is None:
        if required:
            parser.checks.append(lambda args: None if args.data is not None else "--data is required")
        return
    parser.add_argument("data_positional", nargs="?", metavar=positional, help="the same as --data", **kwargs)

    def merge(args: argparse.Namespace) -> str | None:
        given = args.__dict__.pop("data_positional")
        if given is not None and args.data is not None and given != args.data:
            return f"the data are given twice ({given} and --data {args.data}); give --data only"
        args.data = args.data if args.data is not None else given
        if required and args.data is None:
            return f"the data are required: --data {metavar} (or {positional} as the first argument)"
        return None

    parser.checks.append(merge)


def add_jobs_argument(parser: argparse.ArgumentParser, help: str, *, default: int | None = 1) -> None:
    """``--jobs N`` (parallel processes or threads); ``--workers`` is its deprecated alias."""
    parser.add_argument(
        "--jobs", type=positive_int, default=default, metavar="N", help=f"{help} (old name: --workers)"
    )
    parser.add_argument(
        "--workers",
        dest="jobs",
        type=positive_int,
        action=DeprecatedAlias,
        replacement="--jobs",
        default=argparse.SUPPRESS,
        metavar="N",
    )


def configure_logging(*, quiet: bool = False, verbose: bool = True, timestamps: bool = True) -> None:
    """Log lines on stderr: warnings only when ``quiet`` or not ``verbose``, else progress messages too."""
    level = logging.INFO if verbose and not quiet else logging.WARNING
    logging.basicConfig(
        level=level,
        format=LOG_FORMAT if timestamps else "%(levelname)s: %(message)s",
        datefmt="%H:%M:%S",
    )


@contextmanager
def log_to_file(path: str | Path) -> Iterator[Path]:
    """While the block runs, append every log line the console shows to ``path`` too (same format)."""
    root = logging.getLogger()
    path = Path(path)
    handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    added = [handler]
    if console := next((h.formatter for h in root.handlers if h.formatter is not None), None):
        handler.setFormatter(console)
    elif not root.handlers and logging.lastResort is not None:
        # Logging is not configured (a library call, a worker process): the console shows warnings
        # through logging's last resort, which a handler on the root would silence; keep it showing.
        handler.setLevel(logging.lastResort.level)
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        added.append(logging.lastResort)
    for each in added:
        root.addHandler(each)
    try:
        yield path
    finally:
        for each in added:
            root.removeHandler(each)
        handler.close()
