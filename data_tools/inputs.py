"""What a trained model is asked to classify: an image tree (unlabelled or labelled) or a manifest CSV.

Trees go through the manifest builder, so pairing, the polarization aliases and the per-file
problems (unreadable, unpaired, ambiguous, ...) are exactly those of training. A sample is what
its grains are counted over; it is kept in the manifest's ``domain`` column:

- ``{pol}/{name}``: one unlabelled sample, named after the folder (or ``sample``);
- ``{sample}/{pol}/{name}``: one unlabelled sample per folder;
- a labelled tree in a training layout (``{pol}/{label}/{name}``, ``{domain}/{pol}/{label}/{name}``,
  ``{domain}/{split}/{pol}/{label}/{name}``, or any ``layout`` template): one sample per river.

Unlabelled pairs get the label ``unlabelled``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from data_tools.layout import LayoutError, compile_layout, detect_layout
from data_tools.manifest import Problem, build_manifest, list_image_files
from data_tools.manifest_io import Dataset, read_manifest

UNLABELLED = "unlabelled"
MANIFEST_LAYOUT = "(manifest CSV)"
INPUT_TEMPLATES: tuple[str, ...] = (
    "{pol}/{name}",
    "{domain}/{pol}/{name}",
    "{pol}/{label}/{name}",
    "{domain}/{pol}/{label}/{name}",
    "{domain}/{split}/{pol}/{label}/{name}",
)


@dataclass
class PredictionInput:
    """The readable pairs to classify (``dataset``), how the input was read, and its problems."""

    dataset: Dataset
    layout: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def manifest(self) -> pd.DataFrame:
        return self.dataset.manifest

    @property
    def labelled(self) -> bool:
        """True when at least one pair carries a label."""
        return bool((self.manifest["label"] != UNLABELLED).any())

    @property
    def samples(self) -> list[str]:
        """The sample names, in order of appearance."""
        return list(dict.fromkeys(self.manifest["domain"]))


def detect_input_layout(paths: list[str]) -> str:
    """The template of :data:`INPUT_TEMPLATES` that explains the most paths (the first on a tie).

    Raises:
        LayoutError: none explains any path; the message lists the templates and example paths.
    """
    return detect_layout(paths, candidates=INPUT_TEMPLATES).template


def read_prediction_input(
    path: str | Path, *, layout: str | None = None, sample: str | None = None, progress: bool = True
) -> PredictionInput:
    """Open the input of a prediction: a manifest CSV or an image tree.

    Args:
        path: a manifest CSV, or the top folder of an image tree.
        layout: the tree's template (default: detected among :data:`INPUT_TEMPLATES`).
        sample: the sample name of a tree without a ``{domain}`` level (default: the folder's name).
        progress: show the image-checking progress bar.

    Returns:
        The readable pairs; every unreadable, unpaired or ambiguous file is in ``problems`` with
        its path and reason (a manifest CSV is read as is: its files are checked when decoded).

    Raises:
        FileNotFoundError: the path does not exist.
        LayoutError: the template is malformed, no template fits the tree, or ``sample`` is given
            for a tree whose layout already names its samples.
        data_tools.manifest_io.ManifestError: a manifest CSV lacks columns or repeats sample ids.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {str(path)!r} does not exist")
    if path.is_file():
        return PredictionInput(read_manifest(path), MANIFEST_LAYOUT)
    template = layout or detect_input_layout(list_image_files(path)[0])
    has_domain = "domain" in compile_layout(template).fields
    if has_domain and sample:
        raise LayoutError(
            f"layout {template!r} names a sample per folder; a sample name is only for a tree without one"
        )
    result = build_manifest(
        path,
        layout=template,
        domain=None if has_domain else (sample or path.resolve().name),
        progress=progress,
    )
    return PredictionInput(Dataset(manifest=result.manifest, root=path), result.layout, list(result.problems))
