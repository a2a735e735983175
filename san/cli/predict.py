"""Command lines of a trained model in use: ``scripts/predict.py`` and ``scripts/explain.py``.

Exit codes as in training (``san.cli.common``): 0 done, 1 failed (bad run, no readable pair, ``--strict``
with problems), 2 usage error.
"""

from __future__ import annotations

from typing import Any

from data_tools.commandline import (
    add_data_argument,
    command_parser,
    non_negative_int,
    positive_int,
    probability,
)
from san.cli.common import add_device_argument, configure_logging, run_command
from san.evaluation.quantifier_names import QUANTIFIER_CHOICES

SHOWN_PROBLEMS = 10


def _show_prediction(summary: dict[str, Any]) -> None:
    import pandas as pd

    model = summary["model"]
    print(
        f"\n{model['method']} run {model['run_dir']}: predicted {summary['n_predicted']} pair(s) of "
        f"{summary['input']} ({summary['n_uncertain']} uncertain, {summary['n_problems']} problem(s))"
    )
    name = summary["assemblage"]["quantifier"]
    print(f"quantifier: {summary['assemblage']['quantifier_note']}")
    table = pd.read_csv(f"{summary['output']}/assemblage.csv")
    indices = pd.read_csv(f"{summary['output']}/provenance.csv")
    for sample, rows in table.groupby("sample", sort=False):
        rows = rows[rows["count"] > 0].sort_values("count", ascending=False)
        print(f"sample {sample}:")
        shown = rows[["mineral", "count", "percent", "corrected_percent"]].rename(
            columns={"corrected_percent": f"{name} %", "percent": "raw %"}
        )
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.1f}"))
        values = indices[indices["sample"].astype(str) == str(sample)]
        print(
            "  indices: "
            + ", ".join(
                f"{r.index} {r.value:.1f} ({r.low:.1f}-{r.high:.1f})"
                if pd.notna(r.value)
                else f"{r.index} n/a"
                for r in values.itertuples()
            )
        )
        if (error := summary["assemblage"]["composition_error"].get(sample)) is not None:
            print(
                f"  vs labels: MAE raw {error['raw_mae_pp']:.2f} pp, "
                f"{name} {error['corrected_mae_pp']:.2f} pp"
            )
    if "metrics" in summary and "accuracy" in summary["metrics"]:
        metrics = summary["metrics"]
        print(
            f"labelled input: accuracy {metrics['accuracy']:.3f}"
            + (
                f" ({metrics['accuracy_adapted']:.3f} after EM prior adaptation)"
                if "accuracy_adapted" in metrics
                else ""
            )
            + f", macro-F1 {metrics['macro_f1']:.3f} (n={metrics['n']})"
        )
    print(f"report: {summary['output']}/report.html")
    print(f"output: {summary['output']}")


def predict_main(argv: list[str] | None = None) -> int:
    """``scripts/predict.py``: classify an input with a trained run; returns the exit code."""
    parser = command_parser(
        "predict.py",
        "Classify PPL/XPL pairs with a trained run (deep or classical): the model, "
        "preprocessing, normalisation, class list and temperature all come from RUN_DIR. Writes "
        "predictions.csv (with each grain's EM prior-adapted class), problems.csv, the assemblage "
        "(assemblage.csv/.md/.png: count and % per mineral with 95% intervals, raw and estimated by "
        "--quantifier), provenance.csv (ZTR, GZi, ATi, RZi, MZi with intervals), report.html (one page "
        "per run: charts, indices, uncertain grains) and, for labelled input, metrics.json. Unreadable or "
        "unpaired files are reported by name and the other pairs are still predicted, unless --strict. "
        "A run folder from someone else is data, not code: model.pt is read as tensors only and "
        "model.skops without unpickling, so loading either runs no code; an old classical run's "
        "model.joblib is a pickle and is refused unless you pass --trust-run. "
        "Exit codes: 0 done, 1 failed, 2 usage error.",
    )
    parser.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="a run directory holding model.pt (deep) or model.skops (classical)",
    )
    add_data_argument(
        parser,
        "the pairs to classify: an image tree ({pol}/{name}, {sample}/{pol}/{name}, or a "
        "labelled training layout) or a manifest CSV",
        positional="INPUT",
        required=True,
        metavar="INPUT",
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/predict/<input name>)")
    parser.add_argument(
        "--layout", metavar="TEMPLATE", help="layout template of the tree (default: detected)"
    )
    parser.add_argument(
        "--sample", metavar="NAME", help="sample name of a {pol}/{name} tree (default: its folder)"
    )
    parser.add_argument(
        "--tta",
        action="store_true",
        help="average over the 8 flips/90-degree rotations of each pair (both images alike)",
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        default=0.5,
        metavar="P",
        help="flag a pair as uncertain when its top-1 probability is below P (default 0.5)",
    )
    parser.add_argument(
        "--batch-size", type=positive_int, default=64, metavar="N", help="pairs per batch (default 64)"
    )
    add_device_argument(parser)
    parser.add_argument("--strict", action="store_true", help="fail on any bad input instead of skipping it")
    parser.add_argument(
        "--trust-run",
        action="store_true",
        help="also load an old classical run's model.joblib: a pickle, which runs whatever code it "
        "holds when loaded; only for a run you made yourself or whose source you trust",
    )
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the assemblage bootstrap (default 0)"
    )
    parser.add_argument(
        "--quantifier",
        choices=QUANTIFIER_CHOICES,
        default="auto",
        help="how the assemblage is estimated: cc (classify and count), acc, pcc, pacc, emq (EM/SLD), hdy, "
        "all fitted on the run's calibration rows (quantification.npz); auto (default) is the one the "
        "run chose on those rows, never on its test split or a target river",
    )
    parser.add_argument(
        "--draws",
        type=positive_int,
        metavar="N",
        help="bootstrap draws of the assemblage and index intervals (default 200)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars; log warnings only")
    args = parser.parse_args(argv)
    configure_logging(quiet=args.quiet)
    from san.inference.prediction import PredictionSettings, run_prediction

    settings = PredictionSettings(
        tta=args.tta,
        threshold=args.threshold,
        batch_size=args.batch_size,
        strict=args.strict,
        seed=args.seed,
        progress=not args.quiet,
        quantifier=args.quantifier,
        draws=args.draws,
    )
    return run_command(
        lambda: run_prediction(
            args.run_dir,
            args.data,
            args.out,
            layout=args.layout,
            sample=args.sample,
            device=args.device,
            settings=settings,
            trust_run=args.trust_run,
        ),
        _show_prediction,
    )


def _show_explanation(summary: dict[str, Any]) -> None:
    print(f"\nGrad-CAM grids ({summary['split']}): {', '.join(sorted(summary['gradcam']))}")
    for run_dir, probe in summary["probes"].items():
        if probe.get("status") == "measured":
            print(
                f"river probe {run_dir}: accuracy {probe['accuracy']:.3f} +- {probe['accuracy_std']:.3f} "
                f"(chance {probe['chance']:.3f}, {probe['folds']}-fold, n={probe['n']})"
            )
        else:
            print(f"river probe {run_dir}: {probe.get('reason', 'skipped')}")
    print(f"output: {summary['output']}")


def explain_main(argv: list[str] | None = None) -> int:
    """``scripts/explain.py``: Grad-CAM grids, feature-space figure and river probe; returns the exit code."""
    parser = command_parser(
        "explain.py",
        "Explain a deep run: Grad-CAM heat maps of the PPL and XPL branches (per class, "
        "correct and wrong predictions side by side), a t-SNE of the fused features of the test and target "
        "pairs coloured by river and by class (beside --compare's, e.g. ERM beside SAN), and the "
        "accuracy of a linear probe predicting the river from frozen features (written to each run's "
        "results.json). Exit codes: 0 done, 1 failed, 2 usage error.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a deep run directory")
    add_data_argument(parser, "the run's data (default: from its request.json)")
    parser.add_argument("--layout", metavar="TEMPLATE", help="layout template of --data")
    parser.add_argument(
        "--domain", metavar="NAME", help="domain name of a --data tree without a domain level"
    )
    parser.add_argument("--split", choices=("test", "target"), default="test", help="pairs shown by Grad-CAM")
    parser.add_argument(
        "--n", type=positive_int, default=24, help="about how many pairs to show (default 24)"
    )
    parser.add_argument("--out", metavar="DIR", help="output folder (default: RUN_DIR/explain-<split>)")
    parser.add_argument(
        "--compare", metavar="RUN_DIR", help="another deep run shown beside (e.g. the ERM run)"
    )
    add_device_argument(parser)
    parser.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the example choice, t-SNE and probe folds"
    )
    parser.add_argument("--quiet", action="store_true", help="log warnings only")
    args = parser.parse_args(argv)
    configure_logging(quiet=args.quiet)
    from san.studies.explain import explain_run

    return run_command(
        lambda: explain_run(
            args.run_dir,
            data=args.data,
            layout=args.layout,
            domain=args.domain,
            split=args.split,
            n=args.n,
            out=args.out,
            compare=args.compare,
            device=args.device,
            seed=args.seed,
            progress=not args.quiet,
        ),
        _show_explanation,
    )
