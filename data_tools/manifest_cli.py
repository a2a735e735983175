"""The ``build_manifest`` command: scan a tree, print its summary and problems, write the CSV."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from data_tools.class_map import CLASS_MAP_FORMAT
from data_tools.commandline import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    add_data_argument,
    add_jobs_argument,
    command_parser,
)
from data_tools.names import fold_name

if TYPE_CHECKING:
    import pandas as pd


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/build_manifest.py."""
    parser = command_parser(
        "build_manifest.py",
        "Pair the PPL and XPL images of a tree, validate every file, and write a manifest "
        "CSV (one row per pair). Exit codes: 0 clean (warnings allowed), 1 problems found "
        "(listed; nothing written unless --allow-problems), 2 usage error.",
    )
    add_data_argument(
        parser, "top folder of the image tree", positional="ROOT", required=True, metavar="ROOT", type=Path
    )
    parser.add_argument(
        "--layout",
        metavar="TEMPLATE",
        help="path template with fields {domain} {split} {pol} {label} {name}, e.g. "
        "'{label}Data/{pol}/{name}'. Default: detect {domain}/{pol}/{label}/{name} "
        "or {domain}/{split}/{pol}/{label}/{name}",
    )
    parser.add_argument(
        "--domain", metavar="NAME", help="domain (river) name for a tree without a domain level"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="FILE.csv",
        help="manifest CSV to write (default: ROOT/manifest.csv); image paths in it are "
        "relative to its folder",
    )
    parser.add_argument(
        "--allow-problems",
        action="store_true",
        help="write the manifest anyway, without the bad pairs, and write the problems to "
        "FILE.problems.csv beside it (exit 0)",
    )
    parser.add_argument(
        "--class-map",
        type=Path,
        metavar="FILE",
        help=f"what each label folder is, over the built-in aliases: {CLASS_MAP_FORMAT}, e.g. 'Cpx: Px' "
        "and 'Opx: Px' to merge them, or 'Spl: Spl' and 'Spn: Spn' to keep them apart. Distinct folder "
        "names that would become one class are an error without it. Folder names match in any case",
    )
    add_jobs_argument(parser, "threads for decoding (default: the number of cores)", default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _print_folder_names(table: pd.DataFrame, class_map: dict[str, str]) -> None:
    """How every domain and label folder name was mapped, and the notes a mineralogist needs."""
    if table.empty:
        return
    print("\nfolder names (folder -> name, how, images):")
    print(table.rename(columns={"kind": "level"}).to_string(index=False))
    if ((table["name"] == "Spn") & (table["how"] != "class map")).any():
        print(
            "note: Spn is the published dataset's label for spinel (Hao et al. 2022); in Whitney and Evans "
            "(2010) spinel is Spl and Spn is titanite (sphene). If your Spn folder holds titanite, say so "
            "with --class-map (e.g. 'Spn: Ttn')."
        )
    found = {fold_name(folder) for folder in table.loc[table["kind"] == "class", "folder"]}
    if unused := [folder for folder in class_map if fold_name(folder) not in found]:
        print(f"note: class map entries that match no folder: {', '.join(unused)}")


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = make_parser().parse_args(argv)
    from data_tools.atomic import atomic_write
    from data_tools.class_map import ClassMapError, read_class_map
    from data_tools.layout import LayoutError
    from data_tools.manifest import FolderMergeError, build_manifest, count_table
    from data_tools.manifest_io import write_manifest

    root = args.data
    try:
        class_map = read_class_map(args.class_map) if args.class_map else None
        result = build_manifest(
            root,
            layout=args.layout,
            domain=args.domain,
            class_map=class_map,
            workers=args.jobs,
            progress=not args.quiet,
        )
    except (FileNotFoundError, LayoutError, ClassMapError, FolderMergeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE

    manifest = result.manifest
    print(f"root: {root}\nlayout: {result.layout}")
    print(
        f"pairs: {len(manifest)}   non-image files skipped: {result.skipped_non_images}   "
        f"errors: {len(result.errors)}   warnings: {len(result.warnings)}"
    )
    _print_folder_names(result.folder_names, class_map or {})
    if not manifest.empty:
        print("\npairs per domain x class:")
        print(count_table(manifest).to_string())
    for title, problems in (("warnings", result.warnings), ("errors", result.errors)):
        if problems:
            print(f"\n{title} ({len(problems)}):")
            for problem in problems:
                print(f"  [{problem.kind}] {problem.path}: {problem.message}")

    out = args.out or root / "manifest.csv"
    if result.errors and not args.allow_problems:
        print(
            f"\n{len(result.errors)} problem(s) found; nothing written. Fix them, or pass "
            "--allow-problems to write the manifest without the bad pairs.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    write_manifest(manifest, out, root)
    print(f"\nwrote {out} ({len(manifest)} pairs)")
    if result.problems and args.allow_problems:
        problems_path = out.with_name(out.stem + ".problems.csv")
        atomic_write(problems_path, lambda tmp: result.problems_frame().to_csv(tmp, index=False))
        dropped = len({p.sample_id or p.path for p in result.errors})
        print(f"left out {dropped} pair(s) or file(s) with errors; all problems listed in {problems_path}")
    return EXIT_OK
