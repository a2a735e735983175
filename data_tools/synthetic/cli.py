"""The ``make_synthetic`` command: render the synthetic set, report the speed, draw a contact sheet."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from data_tools.commandline import EXIT_OK, add_jobs_argument, command_parser
from data_tools.synthetic.checks import MAX_SIZE, MIN_SIZE


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/make_synthetic.py."""
    parser = command_parser(
        "make_synthetic.py",
        "Render the synthetic three-river heavy-mineral dataset: "
        "OUT/<river>/{plane,cross}/<Class>/<id>.jpg for yangtze, yarlung and pengqu with the "
        "published per-river, per-class counts, plus OUT/dataset.json (version, seed, "
        "parameters, counts) and OUT/README.md. Exit codes: 0 done, 2 bad arguments.",
    )
    parser.add_argument("out", type=Path, metavar="OUT", help="output folder; must not exist or be empty")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="random seed; the same seed gives byte-identical files (default: 0)",
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="factor on the published counts (1,654 pairs at 1.0); a present class keeps at "
        "least one pair, absent classes stay absent (default: 1.0)",
    )
    parser.add_argument(
        "--size", type=int, default=128, help=f"image side in pixels, {MIN_SIZE}..{MAX_SIZE} (default: 128)"
    )
    parser.add_argument(
        "--shift",
        type=float,
        default=1.0,
        help="factor on every difference between rivers, in content (grain size, rounding, "
        "colour varieties) and acquisition (white balance, exposure, blur, noise, JPEG, "
        "vignetting, magnification, mounting medium); 0 draws all rivers from one "
        "distribution (default: 1.0)",
    )
    add_jobs_argument(
        parser,
        "processes to render with (default: the number of cores); the files written do not depend on it",
        default=None,
    )
    parser.add_argument(
        "--preview",
        type=Path,
        default=None,
        metavar="FILE.png",
        help="also write a contact sheet: one row per class, one column block per river, PPL above XPL",
    )
    parser.add_argument(
        "--preview-per-river",
        type=int,
        default=3,
        metavar="N",
        help="pairs per river and class on the contact sheet (default: 3)",
    )
    parser.add_argument(
        "--preview-tile",
        type=int,
        default=96,
        metavar="PX",
        help="contact-sheet tile side in pixels, >= 8 (default: 96)",
    )
    parser.add_argument(
        "--preview-colours",
        type=int,
        default=None,
        metavar="K",
        help="palette of K colours (2..256) for a small contact-sheet file (default: full colour)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_preview_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.preview is None:
        return
    if args.preview_per_river < 1:
        parser.error(f"--preview-per-river must be >= 1, got {args.preview_per_river}")
    if args.preview_tile < 8:
        parser.error(f"--preview-tile must be >= 8, got {args.preview_tile}")
    if args.preview_colours is not None and not 2 <= args.preview_colours <= 256:
        parser.error(f"--preview-colours must be from 2 to 256, got {args.preview_colours}")


def main(argv: list[str] | None = None) -> int:
    """Run make_synthetic; returns the exit code (argparse exits with 2 on bad arguments)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    _check_preview_arguments(parser, args)
    from data_tools.synthetic.generate import generate_dataset
    from data_tools.synthetic.preview import write_preview

    start = time.perf_counter()
    try:
        description = generate_dataset(
            args.out,
            seed=args.seed,
            scale=args.scale,
            size=args.size,
            shift=args.shift,
            workers=args.jobs,
            progress=not args.quiet,
        )
    except (ValueError, FileExistsError) as error:
        parser.error(str(error))
    elapsed = time.perf_counter() - start
    pairs = description["total_pairs"]
    per_river = ", ".join(f"{river} {sum(n.values())}" for river, n in description["counts"].items())
    print(
        f"wrote {pairs} pairs ({per_river}) to {args.out} in {elapsed:.1f} s: {pairs / elapsed:.1f} pairs/s"
    )
    if args.preview is not None:
        path = write_preview(
            args.out,
            args.preview,
            per_river=args.preview_per_river,
            tile=args.preview_tile,
            colours=args.preview_colours,
        )
        print(f"contact sheet: {path}")
    return EXIT_OK
