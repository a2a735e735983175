"""The command-line toolkit every command uses: run flags, the record summary, and the one mapping of
the library's errors to exit codes (0 done, 1 failed, 2 usage error; defined in
:mod:`data_tools.commandline`). Each command has its own module beside this one.

Only light modules are imported here, so a parser is built (and ``--help`` answers) before torch,
pandas or scikit-learn load; the error classes of the heavy modules are looked up when an error is
being mapped.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from data_tools.commandline import (
    DATA_METAVAR,
    DEVICE_HELP,
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    CommandParser,
    DeprecatedAlias,
    command_parser,
    configure_logging,
    device_name,
    non_negative_int,
)
from data_tools.names import parse_name_list
from san.evaluation.protocols import PROTOCOL_CHOICES, UsageError
from san.methods import UnknownMethodError
from san.runs.tracking import MODES, default_mode

if TYPE_CHECKING:
    from san.runs.lifecycle import RunRequest

PROTOCOL_HELP = (
    "mixed: train and test within the rivers; loro (leave-one-river-out): test on held-out rivers "
    "(cross is its former name); loso: a leave-one-source-out validation run (targets = the held-out "
    "source, scored without its in-domain test part; what benchmark.py --loso adds); default: loro "
    "when there are targets, else mixed"
)


def usage_errors() -> tuple[type[BaseException], ...]:
    """Library errors that mean the command line asked for something wrong (exit 2). They come first:
    several subclass ValueError, which is otherwise a failure."""
    from data_tools.layout import LayoutError
    from san.benchmark.jobs import GridError
    from san.runs.config import ConfigError
    from san.runtime import DeviceError

    return (UsageError, ConfigError, LayoutError, UnknownMethodError, GridError, DeviceError)


def failures() -> tuple[type[BaseException], ...]:
    """Library errors that mean the work failed (exit 1): bad data, unreadable files, diverged numbers."""
    from data_tools.images import ImageDecodeError
    from data_tools.manifest_io import ManifestError

    # OSError: FileNotFoundError, and unwritable or full output and cache folders.
    return (ManifestError, ImageDecodeError, FloatingPointError, ValueError, OSError)


def add_device_argument(parser: argparse.ArgumentParser, help: str = DEVICE_HELP) -> None:
    """``--device auto|cpu|cuda|cuda:N|mps`` (default auto); a malformed name is a usage error."""
    parser.add_argument("--device", type=device_name, default="auto", metavar="DEVICE", help=help)


def add_run_arguments(parser: CommandParser) -> None:
    """Data, protocol, seed, config, output, tracking and device flags."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        metavar=DATA_METAVAR,
        help="image tree or manifest CSV; default: the built-in synthetic dataset, generated on "
        "first use into the cache folder ($HEAVY_MINERALS_CACHE, else the user's cache folder)",
    )
    data.add_argument(
        "--layout",
        metavar="TEMPLATE",
        help="layout template of the tree, e.g. '{label}Data/{pol}/{name}' "
        "(default: detected; see build_manifest.py --help)",
    )
    data.add_argument("--domain", metavar="NAME", help="domain name for a tree without a domain level")
    data.add_argument(
        "--classes", metavar="A,B,...", help="use only these classes (default: all in the data)"
    )
    protocol = parser.add_argument_group("protocol")
    protocol.add_argument("--domains", metavar="A,B", help="source rivers (default: all rivers in the data)")
    protocol.add_argument(
        "--targets",
        metavar="C",
        help="target rivers, never used for training or model "
        "selection (default: the rivers not among --domains)",
    )
    protocol.add_argument("--protocol", choices=PROTOCOL_CHOICES, help=PROTOCOL_HELP)
    protocol.add_argument(
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the split, initialisation and data order (an integer >= 0)",
    )
    setup = parser.add_argument_group("configuration")
    setup.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="config layered over configs/base.yaml and the method's file; without it, a machine "
        "with no GPU uses configs/presets/cpu.yaml",
    )
    setup.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set training.epochs=5 or --set lr=0.003 (repeatable; "
        "unknown keys are errors)",
    )
    add_device_argument(setup)
    output = parser.add_argument_group("output and tracking")
    output.add_argument(
        "--out",
        default="runs",
        metavar="DIR",
        help="parent of the run directories; each run also appends to DIR/results.jsonl",
    )
    output.add_argument(
        "--run-dir", metavar="DIR", help="exact run directory (default: DIR/<method>-<protocol>-seedN)"
    )
    output.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue an interrupted run from its last checkpoint (its saved config is used)",
    )
    output.add_argument(
        "--wandb",
        choices=MODES,
        default=default_mode(),
        help="W&B mode: offline (default, or $WANDB_MODE when set; files under the run directory, no "
        "account needed, no network), "
        "online (sync; needs a login), disabled",
    )
    output.add_argument(
        "--wandb-artifacts",
        action="store_true",
        help="also log the model file and record as a W&B artifact (default: off)",
    )
    output.add_argument("--wandb-project", default="heavy-minerals", help="W&B project name")
    output.add_argument(
        "--wandb-group", help="W&B group (default: the protocol and targets, e.g. loro-yangtze)"
    )
    output.add_argument("--tags", metavar="A,B", help="extra W&B tags")
    output.add_argument("--quiet", action="store_true", help="no progress bars; log warnings only")


def request_from_args(args: argparse.Namespace, method: str) -> RunRequest:
    """The RunRequest described by parsed arguments."""
    from san.runs.lifecycle import RunRequest

    return RunRequest(
        method=method,
        data=args.data,
        layout=args.layout,
        domain=args.domain,
        domains=parse_name_list(args.domains) or None,
        targets=parse_name_list(args.targets) or None,
        classes=parse_name_list(args.classes) or None,
        protocol=args.protocol,
        seed=args.seed,
        config_file=args.config,
        overrides=list(args.overrides),
        out=args.out,
        run_dir=args.run_dir,
        wandb_mode=args.wandb,
        wandb_project=args.wandb_project,
        wandb_group=args.wandb_group,
        wandb_artifacts=args.wandb_artifacts,
        tags=parse_name_list(args.tags),
        device=args.device,
        progress=not args.quiet,
    )


def print_record_summary(record: dict[str, Any]) -> None:
    """The closing table: in-domain test and target accuracy and macro-F1 per river."""
    from san.runs.records import summary_table

    table = summary_table(record)
    print(
        f"\n{record['method']} | {record['protocol']} | sources {','.join(record['sources'])}"
        + (f" | targets {','.join(record['targets'])}" if record["targets"] else "")
        + f" | seed {record['seed']} | selection: {record['selection']['rule']}"
    )
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"run directory: {record['run_dir']}")


def run_command(job: Callable[[], Any], show: Callable[[Any], None]) -> int:
    """Call ``job``, then ``show`` its result; expected errors become one ``error:`` line on stderr and
    their exit code (:func:`usage_errors` -> 2, :func:`failures` -> 1), never a traceback."""
    try:
        result = job()
    except Exception as error:
        if not isinstance(error, usage_errors() + failures()):
            raise
        return report_error(error)
    show(result)
    return EXIT_OK


def report_error(error: BaseException) -> int:
    """Print ``error:`` and the message on stderr; return its exit code (2 usage, 1 failure)."""
    message = os_error_message(error) if isinstance(error, OSError) else str(error)
    print(f"error: {message}", file=sys.stderr)
    return EXIT_USAGE if isinstance(error, usage_errors()) else EXIT_FAILED


def os_error_message(error: OSError) -> str:
    """One line for a file-system error: what failed, where, and for a refused write what to check."""
    from data_tools.paths import CACHE_ENV_VAR

    where = f": {error.filename}" if error.filename else ""
    message = f"{error.strerror or error}{where}"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.ENOSPC):
        message += f" (the output folder --out and the cache folder ${CACHE_ENV_VAR} must be writable)"
    return message


def run_cli(run: Callable[[], dict[str, Any]]) -> int:
    """:func:`run_command` for a training run: prints the record's summary table."""
    return run_command(run, print_record_summary)


__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "DeprecatedAlias",
    "add_device_argument",
    "add_run_arguments",
    "command_parser",
    "configure_logging",
    "failures",
    "print_record_summary",
    "report_error",
    "request_from_args",
    "run_cli",
    "run_command",
    "usage_errors",
]
