"""``scripts/find_label_errors.py``: rank likely label errors by confident learning."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from data_tools.commandline import add_data_argument, command_parser
from san import methods
from san.cli.common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_device_argument, configure_logging

if TYPE_CHECKING:
    from san.studies.label_errors import FoldModel

METHODS = tuple(m for m in methods.method_names() if methods.get_method(m).label_errors)
SVM_FOLDS = 3  # inner grid-search folds of each out-of-fold SVM (the benchmark uses 5; 3 keeps it quick)
FEATURE_SIZE = 128  # as the classical benchmark (CLASSICAL_HPARAMS feature_size)


def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = command_parser(
        "find_label_errors.py",
        "Rank likely label errors. Within each river, the pairs outside the test split of a "
        "mixed split get class probabilities from a model fitted on the other stratified folds; "
        "cleanlab's confident learning flags unlikely labels, ranked by self-confidence. Writes "
        "the ranked issues (CSV), a review sheet (PNG) and summary.json into OUT. With --flip, "
        "labels are flipped on purpose first and the precision/recall of finding them is printed. "
        "Exit codes: 0 done, 1 failed, 2 usage error.",
    )
    add_data_argument(
        parser, "image tree or manifest CSV (default: the built-in synthetic dataset)", positional="DATA"
    )
    parser.add_argument(
        "--method",
        choices=METHODS,
        default="svm",
        help="svm: tuned SVM on the cached hand-crafted features (default); erm: the Siamese "
        "network trained from scratch per fold (slow on CPU; shorten with --set)",
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (default: runs/label-errors-<method>)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mixed split and the folds")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds per river (default 5)")
    parser.add_argument("--top", type=int, default=24, help="pairs shown on the review sheet (default 24)")
    parser.add_argument(
        "--flip",
        type=float,
        default=0.0,
        metavar="FRACTION",
        help="flip this fraction of each river's examined labels on purpose, then score "
        "how many flips rank in the top k (k = number flipped)",
    )
    parser.add_argument("--flip-seed", type=int, default=0, metavar="S", help="seed of the planted flips")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="erm: config override, e.g. --set epochs=3 --set size=32 (repeatable)",
    )
    add_device_argument(parser, "erm: auto, cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument("--quiet", action="store_true", help="only warnings")
    return parser


def _fold_model(method: str, dataset, config: dict, n_classes: int, device: str, quiet: bool) -> FoldModel:
    import numpy as np

    from baselines.classical import fit_classical
    from baselines.feature_table import feature_columns
    from baselines.features import extract_features
    from san.studies.label_errors import classifier_fold_model, erm_fold_model

    if method == "erm":
        return erm_fold_model(dataset, config, n_classes, device)
    table = extract_features(
        dataset.manifest, dataset.root, size=FEATURE_SIZE, crop=config["data"]["crop"], progress=not quiet
    )
    features = table[feature_columns(table)].to_numpy(dtype=np.float64)
    return classifier_fold_model(
        features,
        lambda X, y, seed: fit_classical("svm", X, y, seed=seed, cv_folds=SVM_FOLDS).estimator,
        n_classes,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the finder; returns the exit code."""
    args = build_parser().parse_args(argv)
    configure_logging(quiet=args.quiet)
    if not 0.0 <= args.flip < 1.0 or args.folds < 2 or args.top < 1:
        print("error: --flip must be in [0, 1), --folds at least 2, --top at least 1", file=sys.stderr)
        return EXIT_USAGE
    from data_tools.manifest_io import ManifestError
    from data_tools.names import ordered_classes
    from san.algorithms.registry import default_hparams
    from san.runs.config import ConfigError, resolve_config
    from san.runs.lifecycle import RunRequest, open_request_data
    from san.runtime import DeviceError, resolve_device
    from san.studies.label_errors import (
        ISSUES_FILE,
        SHEET_FILE,
        find_label_errors,
        planted_scores,
        save_issues_csv,
        save_review_sheet,
    )

    try:
        device = resolve_device(args.device)
        config, _ = resolve_config(
            args.method,
            use_cpu_preset=device.type == "cpu",
            overrides=args.overrides,
            hparam_names=default_hparams("erm") if args.method == "erm" else (),
        )
        dataset, _ = open_request_data(RunRequest(data=args.data, progress=not args.quiet))
    except (ConfigError, DeviceError, FileNotFoundError, ManifestError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    n_classes = len(ordered_classes(dataset.manifest["label"]))
    model = _fold_model(args.method, dataset, config, n_classes, str(device), args.quiet)
    try:
        result = find_label_errors(
            dataset.manifest,
            model,
            seed=args.seed,
            folds=args.folds,
            data_config=config["data"],
            plant=args.flip,
            plant_seed=args.flip_seed,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_FAILED
    out = Path(args.out or f"runs/label-errors-{args.method}")
    out.mkdir(parents=True, exist_ok=True)
    csv_path = save_issues_csv(result, out / ISSUES_FILE)
    sheet = save_review_sheet(result, dataset, out / SHEET_FILE, top=args.top)
    summary = {
        "method": args.method,
        "data": str(dataset.root),
        "seed": args.seed,
        "folds": args.folds,
        "examined": len(result.table),
        "flagged": int(result.table["flagged"].sum()),
    }
    print(f"{summary['examined']} pairs examined (train+val of every river), {summary['flagged']} flagged")
    print(
        result.suspects.head(10)[
            ["rank", "sample_id", "domain", "given", "suggested", "self_confidence"]
        ].to_string(index=False)
    )
    if args.flip > 0:
        scores = planted_scores(result)
        summary |= {"flip": args.flip, "flip_seed": args.flip_seed, **scores}
        print(
            f"planted {scores['planted']} flips ({args.flip:.0%} of each river's examined labels): "
            f"{scores['found_at_k']} in the top {scores['k']} -> precision@k = recall@k = "
            f"{scores['precision_at_k']:.3f}; cleanlab flagged {scores['flagged']}: precision "
            f"{scores['precision_flagged']:.3f}, recall {scores['recall_flagged']:.3f}"
        )
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {csv_path}" + (f" and {sheet}" if sheet else ""))
    return EXIT_OK
