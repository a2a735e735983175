"""``scripts/train_san.py`` and ``scripts/train_baseline.py``: one training run, from flags to a record."""

from __future__ import annotations

import argparse
import sys

from san import methods
from san.cli.common import (
    EXIT_USAGE,
    DeprecatedAlias,
    add_run_arguments,
    command_parser,
    configure_logging,
    request_from_args,
    run_cli,
)

SAN_METHODS = (*methods.method_names("san"), *methods.method_names("erm"))
CLASSICAL_METHODS = tuple(methods.method_names("classical"))
CNN_METHODS = tuple(methods.method_names("cnn"))
INPUT_MODES = ("plane", "cross", "stack", "pair")


def _resume(args: argparse.Namespace) -> int:
    from san.training.experiment import resume_experiment

    return run_cli(lambda: resume_experiment(args.resume, device=args.device, progress=not args.quiet))


def make_san_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/train_san.py."""
    parser = command_parser(
        "train_san.py",
        "Train the Siamese Adversarial Network on PPL/XPL pairs. With --domains a,b the other "
        "rivers are held out as targets (leave-one-river-out when one remains). Ends with a table "
        "of in-domain test and target accuracy and macro-F1 per river. Exit codes: 0 done, "
        "1 failed (data or training error), 2 usage error.",
    )
    parser.add_argument(
        "--method",
        choices=SAN_METHODS,
        default="san",
        help="san (default) or erm: the identical network with the adversary off (old name: --algorithm)",
    )
    parser.add_argument(
        "--algorithm", dest="method", choices=SAN_METHODS, action=DeprecatedAlias, replacement="--method"
    )
    add_run_arguments(parser)
    return parser


def train_san_main(argv: list[str] | None = None) -> int:
    """``scripts/train_san.py``: train SAN or ERM; returns the exit code."""
    args = make_san_parser().parse_args(argv)
    configure_logging(quiet=args.quiet)
    if args.resume:
        return _resume(args)
    from san.training.experiment import run_experiment

    return run_cli(lambda: run_experiment(request_from_args(args, args.method)))


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/train_baseline.py (the run flags are shared with train_san.py)."""
    parser = command_parser(
        "train_baseline.py",
        "Train a baseline on the same splits, metrics and run records as SAN. Classical methods "
        "(svm, rf, knn, dt = entropy tree, cart = Gini tree) use hand-crafted features with grid "
        "search inside the training split; CNNs (vgg16, resnet34) use the deep engine. Exit codes: "
        "0 done, 1 failed, 2 usage error.",
    )
    parser.add_argument(
        "--method", required=True, choices=(*CLASSICAL_METHODS, *CNN_METHODS), help="which baseline"
    )
    parser.add_argument(
        "--input",
        choices=INPUT_MODES,
        help="CNN input: plane or cross (one image), stack (6-channel early fusion), pair (late "
        "fusion: ERM on the Siamese network with this backbone); default from the config",
    )
    parser.add_argument(
        "--features",
        metavar="FILE.csv",
        help="classical methods: train on this feature table (sample_id, domain, label, optional "
        "split, then feature columns) instead of extracting features; no images needed",
    )
    parser.add_argument(
        "--use-given-split",
        action="store_true",
        help="use the data's own split (a split column or train/val folders; val -> test) "
        "instead of drawing one",
    )
    add_run_arguments(parser)
    return parser


def _usage_problem(args: argparse.Namespace) -> str | None:
    classical = args.method in CLASSICAL_METHODS
    if classical and args.input:
        return f"--input applies to the CNN baselines only; {args.method} uses features of both images"
    if not classical and args.features:
        return f"--features applies to the classical methods only, not to {args.method}"
    return None


def train_baseline_main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    parser = make_parser()
    args = parser.parse_args(argv)
    configure_logging(quiet=args.quiet)
    if problem := _usage_problem(args):
        parser.print_usage()
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if args.resume:
        return _resume(args)
    request = request_from_args(args, args.method)
    request.features = args.features
    if args.input:
        request.overrides.append(f"hparams.input={args.input}")
    if args.use_given_split:
        request.overrides.append("data.use_given_split=true")
    return run_cli(lambda: methods.run_method(request))
