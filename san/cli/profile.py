"""``scripts/profile_training.py``: where a training step's time goes, for a run's exact settings."""

from __future__ import annotations

import argparse
import sys
import tempfile

from data_tools.commandline import EXIT_USAGE, command_parser, configure_logging, positive_int
from san import methods
from san.cli.common import add_run_arguments, request_from_args, run_command

DEEP_METHODS = tuple(methods.method_names(deep=True))


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/profile_training.py."""
    parser = command_parser(
        "profile_training.py",
        "Profile a few training steps of a deep run with the same flags as train_san.py (the same "
        "data, split, config and network): per step the time spent waiting for the data loader, "
        "and the update split into forward, backward and optimizer (torch.profiler), with the "
        "operators that cost most. Writes nothing outside a temporary folder. Exit codes: 0 done, "
        "1 failed, 2 usage error.",
    )
    parser.add_argument(
        "--method", choices=DEEP_METHODS, default="san", help="deep method to profile (default: san)"
    )
    parser.add_argument(
        "--steps", type=positive_int, default=20, help="profiled steps, after 3 warm-up steps (default: 20)"
    )
    add_run_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``scripts/profile_training.py``; returns the exit code."""
    args = make_parser().parse_args(argv)
    configure_logging(quiet=args.quiet)
    if args.resume or args.run_dir:
        print("error: --resume and --run-dir do not apply to profiling", file=sys.stderr)
        return EXIT_USAGE

    def job() -> str:
        import torch

        from san.training.experiment import Experiment
        from san.training.profiling import format_profile, profile_steps

        with tempfile.TemporaryDirectory(prefix="profile-") as folder:
            args.out, args.wandb = folder, "disabled"
            experiment = Experiment(request_from_args(args, args.method))
            trainer = experiment.trainer(experiment.prepare())
            header = (
                f"{args.method}, batch {trainer.settings.batch_size}, input "
                f"{experiment.context.config['data']['size']} px, device {trainer.device}, "
                f"{torch.get_num_threads()} torch threads"
            )
            return header + "\n" + format_profile(profile_steps(trainer, args.steps))

    return run_command(job, print)
