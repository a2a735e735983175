"""Turn a raw image tree into a training-ready copy with the same layout (``scripts/preprocess.py``).

Every PPL/XPL pair found by :func:`build_manifest` is centre-cropped to a square, resized and
re-encoded; DST/<relative path with the new suffix> mirrors SRC. A pair is written both-or-neither
(temporary names, then renamed), a pair that fails is reported by name and skipped, SRC is never
written to, and ``DST/preprocess.json`` records the settings, the counts, every failure with its
reason and every source -> output path.

The image and manifest libraries load when a tree is processed, so ``--help`` answers without them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from data_tools.atomic import atomic_write_text
from data_tools.commandline import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    MAX_SIDE,
    add_data_argument,
    add_jobs_argument,
    command_parser,
    image_side,
    side_problem,
)
from data_tools.layout import LayoutError

if TYPE_CHECKING:
    import numpy as np

    from data_tools.images import CropMode
    from data_tools.manifest import Problem

OutputFormat = Literal["jpg", "png"]
RECORD_NAME = "preprocess.json"
_SAVE_FORMATS = {"jpg": "JPEG", "png": "PNG"}


class PreprocessError(ValueError):
    """Preprocessing cannot start: bad settings, or DST overlaps SRC or holds other files."""


@dataclass(frozen=True)
class PreprocessSettings:
    """How each image is turned into its training-ready copy."""

    size: int = 256  # output side in px; at least the largest model input (224) so training only shrinks
    crop: CropMode = "center"
    format: OutputFormat = "png"
    quality: int = 95  # JPEG quality (1-95 useful); PNG is lossless and ignores it

    def check(self) -> None:
        """Raises PreprocessError naming the bad value."""
        if problem := side_problem(self.size):
            raise PreprocessError(problem)
        if self.crop not in ("center", "none"):
            raise PreprocessError(f"crop must be 'center' or 'none', got {self.crop!r}")
        if self.format not in _SAVE_FORMATS:
            raise PreprocessError(f"format must be 'jpg' or 'png', got {self.format!r}")
        if not 1 <= self.quality <= 100:
            raise PreprocessError(f"quality must be in 1..100, got {self.quality}")


@dataclass
class PreprocessResult:
    """What was written, what failed (sample id, paths, reason) and the tree's problems."""

    source: Path
    destination: Path
    record: Path
    written: list[dict[str, str]] = field(default_factory=list)
    failures: list[dict[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def skipped_files(self) -> list[Problem]:
        """Problems that kept a file out of DST (the manifest's errors)."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def complete(self) -> bool:
        """True when every image of SRC has its copy in DST."""
        return not self.failures and not self.skipped_files


def _check_paths(source: Path, destination: Path) -> None:
    if not source.is_dir():
        raise FileNotFoundError(f"SRC {str(source)!r} is not a folder")
    src, dst = source.resolve(), destination.resolve()
    if dst == src or src in dst.parents:
        raise PreprocessError(
            f"DST {destination} is SRC or inside it; SRC is never written to: choose another"
        )
    if dst in src.parents:
        raise PreprocessError(f"SRC {source} is inside DST {destination}: choose a DST outside SRC")
    if dst.is_dir() and any(dst.iterdir()) and not (dst / RECORD_NAME).is_file():
        raise PreprocessError(
            f"DST {destination} exists, is not empty and has no {RECORD_NAME} (it was not made by "
            "preprocess.py): choose an empty or new folder"
        )


def _encode(image: np.ndarray, path: Path, settings: PreprocessSettings) -> None:
    from PIL import Image

    options = {"quality": settings.quality} if settings.format == "jpg" else {}
    Image.fromarray(image).save(path, format=_SAVE_FORMATS[settings.format], **options)


def _temporary_beside(path: Path) -> Path:
    """A unique hidden name beside ``path`` (hidden: a tree scan never reads it as an image). Not made
    with mkstemp, whose 0600 mode would stay on the renamed image; the encoder creates it with the umask."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def convert_pair(
    source: Path, destination: Path, relative_paths: tuple[str, str], settings: PreprocessSettings
) -> tuple[str, str]:
    """Prepare the PPL and XPL image and write both under ``destination``, or neither.

    Returns:
        The two output paths relative to ``destination``.

    Raises:
        ImageDecodeError: an image cannot be decoded (the message names it).
        OSError: an output cannot be written; nothing of the pair is left in ``destination``.
    """
    suffix = f".{settings.format}"
    outputs = tuple(Path(p).with_suffix(suffix).as_posix() for p in relative_paths)
    from data_tools.images import load_prepared

    images = [load_prepared(source / p, settings.size, settings.crop) for p in relative_paths]
    temporaries: list[Path] = []
    renamed: list[Path] = []
    try:
        for image, output in zip(images, outputs, strict=True):
            temporaries.append(_temporary_beside(destination / output))
            _encode(image, temporaries[-1], settings)
        for temporary, output in zip(temporaries, outputs, strict=True):
            os.replace(temporary, destination / output)
            renamed.append(destination / output)
    except BaseException:
        for path in temporaries + renamed:
            path.unlink(missing_ok=True)
        raise
    return outputs[0], outputs[1]


def preprocess_tree(
    source: str | Path,
    destination: str | Path,
    *,
    layout: str | None = None,
    domain: str | None = None,
    settings: PreprocessSettings | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> PreprocessResult:
    """Write a training-ready copy of every readable pair of SRC into DST, in parallel threads.

    Pairs the manifest check rejects (unpaired, unreadable, ambiguous, leaked) are not written and
    are listed in ``problems``; a pair failing during conversion is listed in ``failures``; the rest go on.

    Raises:
        FileNotFoundError: SRC is not a folder.
        LayoutError: the layout template is malformed or no default layout fits SRC.
        PreprocessError: bad settings, DST equal to / inside / containing SRC, or DST holding other files.
    """
    started = time.time()
    source, destination = Path(source), Path(destination)
    settings = settings or PreprocessSettings()
    settings.check()
    _check_paths(source, destination)
    from tqdm.auto import tqdm

    from data_tools.manifest import build_manifest

    # Folders are copied as they are: no class names needed, so Spl and Spn never clash here.
    scan = build_manifest(
        source, layout=layout, domain=domain, keep_folder_names=True, workers=workers, progress=progress
    )
    destination.mkdir(parents=True, exist_ok=True)
    result = PreprocessResult(source, destination, destination / RECORD_NAME, problems=list(scan.problems))
    rows = list(scan.manifest[["sample_id", "plane_path", "cross_path"]].itertuples(index=False))
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        futures = {
            pool.submit(convert_pair, source, destination, (row.plane_path, row.cross_path), settings): row
            for row in rows
        }
        for future in tqdm(
            as_completed(futures),
            total=len(futures),
            desc="preprocessing pairs",
            unit="pair",
            disable=not progress,
        ):
            row = futures[future]
            entry = {
                "sample_id": row.sample_id,
                "plane_source": row.plane_path,
                "cross_source": row.cross_path,
            }
            try:
                plane_output, cross_output = future.result()
            except (OSError, ValueError) as error:  # ImageDecodeError is a ValueError
                result.failures.append({**entry, "reason": str(error)})
                continue
            result.written.append({**entry, "plane_output": plane_output, "cross_output": cross_output})
    result.written.sort(key=lambda e: e["sample_id"])
    result.failures.sort(key=lambda e: e["sample_id"])
    _write_record(result, scan.layout, settings, scan.skipped_non_images, time.time() - started)
    return result


def _write_record(
    result: PreprocessResult, layout: str, settings: PreprocessSettings, skipped: int, seconds: float
) -> None:
    record = {
        "tool": "scripts/preprocess.py",
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "seconds": round(seconds, 2),
        "source": str(result.source.resolve()),
        "destination": str(result.destination.resolve()),
        "layout": layout,
        "settings": asdict(settings),
        "counts": {
            "pairs_written": len(result.written),
            "pairs_failed": len(result.failures),
            "files_skipped_by_the_manifest_check": len(result.skipped_files),
            "non_image_files_not_copied": skipped,
        },
        "failures": result.failures,
        "problems": [asdict(p) for p in result.problems],
        "pairs": result.written,
    }
    atomic_write_text(result.record, json.dumps(record, indent=2) + "\n")


def make_parser() -> argparse.ArgumentParser:
    """Argument parser of scripts/preprocess.py."""
    defaults = PreprocessSettings()
    parser = command_parser(
        "preprocess.py",
        "Write a training-ready copy of an image tree (e.g. multi-megabyte BMP/TIFF "
        "micrographs of mixed sizes) with the same layout: each PPL/XPL pair is centre-cropped to a "
        "square, resized and re-encoded, both images or neither. SRC is never written to. A file that "
        f"fails is reported by name and the rest go on; DST/{RECORD_NAME} records the settings, "
        "counts, failures and every source -> output path. Exit codes: 0 every pair written; 1 some "
        "pairs failed or files were skipped (listed); 2 usage error.",
    )
    add_data_argument(
        parser, "the raw image tree (read only)", positional="SRC", required=True, metavar="SRC", type=Path
    )
    parser.add_argument(
        "dst",
        type=Path,
        help="output folder outside SRC: new, empty, or an earlier output of this script (its files are "
        "replaced; copies of pairs not written this time are left as they were)",
    )
    parser.add_argument(
        "--size",
        type=image_side,
        default=defaults.size,
        help=f"output side in px, 1..{MAX_SIDE} (default %(default)s)",
    )
    parser.add_argument(
        "--crop",
        choices=("center", "none"),
        default=defaults.crop,
        help="center: crop the central square (side = the short side) before resizing; none: stretch "
        "the whole image to the square (default %(default)s)",
    )
    parser.add_argument(
        "--format",
        choices=tuple(_SAVE_FORMATS),
        default=defaults.format,
        help="output format: png (lossless) or jpg (smaller); the suffix changes accordingly "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--quality", type=int, default=defaults.quality, help="JPEG quality 1-100 (default %(default)s)"
    )
    parser.add_argument(
        "--layout",
        metavar="TEMPLATE",
        help="path template with fields {domain} {split} {pol} {label} {name}, e.g. "
        "'{label}Data/{pol}/{name}'. Default: detect {domain}/{pol}/{label}/{name} or "
        "{domain}/{split}/{pol}/{label}/{name}",
    )
    parser.add_argument("--domain", metavar="NAME", help="river name for a tree without a domain level")
    add_jobs_argument(parser, "threads (default: the number of cores)", default=None)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns the exit code."""
    args = make_parser().parse_args(argv)
    settings = PreprocessSettings(size=args.size, crop=args.crop, format=args.format, quality=args.quality)
    try:
        result = preprocess_tree(
            args.data,
            args.dst,
            layout=args.layout,
            domain=args.domain,
            settings=settings,
            workers=args.jobs,
            progress=not args.quiet,
        )
    except (FileNotFoundError, LayoutError, PreprocessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(
        f"wrote {len(result.written)} pair(s) to {result.destination} ({settings.size} px, "
        f"{settings.crop} crop, {settings.format}); record: {result.record}"
    )
    for failure in result.failures:
        print(f"  failed {failure['sample_id']}: {failure['reason']}")
    for problem in result.skipped_files:
        print(f"  skipped [{problem.kind}] {problem.path}: {problem.message}")
    if result.complete:
        return EXIT_OK
    print(
        f"{len(result.failures)} pair(s) failed and {len(result.skipped_files)} file(s) were skipped; "
        f"all listed in {result.record}",
        file=sys.stderr,
    )
    return EXIT_FAILED
