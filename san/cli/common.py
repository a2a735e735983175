"""The command-line toolkit every command uses: run flags, the record summary, and the one mapping of
the library's errors to exit codes (0 done, 1 failed, 2 usage error; defined in
:mod:`data_tools.commandline`). Each command has its own module beside this one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from data_tools.commandline import EXIT_FAILED, EXIT_OK, EXIT_USAGE, configure_logging
from data_tools.images import ImageDecodeError
from data_tools.layout import LayoutError
from data_tools.manifest_io import ManifestError
from data_tools.names import parse_name_list
from san.benchmark.jobs import GridError
from san.evaluation.protocols import PROTOCOLS, UsageError
from san.methods import UnknownMethodError
from san.runs.config import ConfigError
from san.runs.lifecycle import RunRequest
from san.runs.records import summary_table
from san.runs.tracking import MODES
from san.runtime import DEVICE_CHOICES

# Usage errors first: several of them subclass ValueError, which is otherwise a failure.
USAGE_ERRORS: tuple[type[BaseException], ...] = (
    UsageError,
    ConfigError,
    LayoutError,
    UnknownMethodError,
    GridError,
)
FAILURES: tuple[type[BaseException], ...] = (
    ManifestError,
    ImageDecodeError,
    FileNotFoundError,
    FloatingPointError,
    ValueError,
)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Data, protocol, seed, config, output, tracking and device flags."""
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        metavar="ROOT|MANIFEST.csv",
        help="image tree or manifest CSV; default: the built-in synthetic dataset, generated on "
        "first use into the cache folder ($HEAVY_MINERALS_CACHE or ~/.cache/heavy-minerals)",
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
    protocol.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="mixed: train and test within the rivers; cross: test on held-out rivers "
        "(default: cross when there are targets, else mixed)",
    )
    protocol.add_argument(
        "--seed", type=int, default=0, help="seed of the split, initialisation and data order"
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
    setup.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default="auto",
        help="auto uses a CUDA GPU when present, else the CPU",
    )
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
        default="offline",
        help="W&B mode: offline (default; files under the run directory, no account needed), "
        "online (sync; needs a login), disabled",
    )
    output.add_argument("--wandb-project", default="heavy-minerals", help="W&B project name")
    output.add_argument(
        "--wandb-group", help="W&B group (default: the protocol and targets, e.g. cross-to-yangtze)"
    )
    output.add_argument("--tags", metavar="A,B", help="extra W&B tags")
    output.add_argument("--quiet", action="store_true", help="no progress bars; log warnings only")


def request_from_args(args: argparse.Namespace, method: str) -> RunRequest:
    """The RunRequest described by parsed arguments."""
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
        tags=parse_name_list(args.tags),
        device=args.device,
        progress=not args.quiet,
    )


def print_record_summary(record: dict[str, Any]) -> None:
    """The closing table: in-domain test and target accuracy and macro-F1 per river."""
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
    their exit code (:data:`USAGE_ERRORS` -> 2, :data:`FAILURES` -> 1), never a traceback."""
    try:
        result = job()
    except USAGE_ERRORS + FAILURES as error:
        return report_error(error)
    show(result)
    return EXIT_OK


def report_error(error: BaseException) -> int:
    """Print ``error:`` and the message on stderr; return its exit code (2 usage, 1 failure)."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_USAGE if isinstance(error, USAGE_ERRORS) else EXIT_FAILED


def run_cli(run: Callable[[], dict[str, Any]]) -> int:
    """:func:`run_command` for a training run: prints the record's summary table."""
    return run_command(run, print_record_summary)


__all__ = [
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "FAILURES",
    "USAGE_ERRORS",
    "add_run_arguments",
    "configure_logging",
    "print_record_summary",
    "report_error",
    "request_from_args",
    "run_cli",
    "run_command",
]
