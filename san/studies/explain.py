"""Why a deep model decides, and how river-invariant its features are.

- Grad-CAM (captum's ``LayerGradCam``) on the last convolutional block of the encoder that sees
  each polarization (``layer4`` of a ResNet, the last convolution of a VGG), for the predicted
  class, upsampled to the image: one heat map for the PPL image and one for the XPL image. A
  shared Siamese encoder encodes both images in one pass, so one call yields both maps; a
  6-channel ``stack`` baseline has one map for the pair, shown on both images.
- The features the class head sees (the fused features of the pair networks), frozen: a 2-D t-SNE
  embedding of the run's ``test`` and ``target`` rows coloured by river and by class, and the linear
  river probe of :mod:`san.evaluation.river_probe` on the source rivers' ``test`` rows, set against
  what the class alone predicts (the rivers' class mixes differ) and residualised by class. Pooling
  test and target rows, as this module once did, credits the features with the label shift and
  the target river's acquisition shift, and understates chance.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torchvision
from torch import nn

from data_tools.atomic import atomic_write_text
from data_tools.manifest_io import Dataset
from san.evaluation.river_probe import river_probe
from san.inference.predictors import DeepPredictor, Predictor, load_predictor
from san.runs.records import RESULTS_FILE, read_record
from san.runs.saved_model import DEEP_MODEL_FILE, model_file
from san.studies.figures import CamTile, save_embedding_panels, save_gradcam_grid

log = logging.getLogger(__name__)

FEATURE_SPLITS = ("test", "target")
PROBE_SPLIT = "test"  # the source rivers' in-domain test rows: what an adversary was asked to hide
MAX_EMBEDDED = 600  # t-SNE is quadratic in the points: a seeded subsample beyond this
PROBE_KEY = "feature_probe"
MIN_CAM_SIDE = 7  # Grad-CAM's layer: the deepest whose map is at least this many pixels a side


class ExplainError(ValueError):
    """The run cannot be explained as asked (classical model, empty split, data not found)."""


# --- Grad-CAM ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CamLayer:
    """The layer Grad-CAM explains, its name inside the encoder and its map's side at the input size."""

    name: str
    module: nn.Module
    map_size: tuple[int, int]


def _candidate_layers(extractor: nn.Module) -> list[tuple[str, nn.Module]]:
    """Layers that may be explained, shallow to deep: a ResNet's four stages, a timm model's feature
    stages (``feature_info``), otherwise every convolution (a VGG's, or a ViT's patch embedding)."""
    if isinstance(extractor, torchvision.models.ResNet):
        return [(f"layer{i}", getattr(extractor, f"layer{i}")) for i in range(1, 5)]
    model = getattr(extractor, "model", None)  # san.models.timm_backbones.TimmBackbone
    modules = dict(extractor.named_modules())
    stages = [f"model.{info['module']}" for info in getattr(model, "feature_info", None) or []]
    if stages and all(name in modules for name in stages):
        return [(name, modules[name]) for name in stages]
    return [(name, module) for name, module in modules.items() if isinstance(module, nn.Conv2d)]


def gradcam_layer(extractor: nn.Module, size: int, device: torch.device | str = "cpu") -> CamLayer:
    """The deepest layer whose feature map is at least ``MIN_CAM_SIDE`` pixels on each side for
    ``size`` x ``size`` inputs (ResNet-18 at 64 px: ``layer2``, 8 x 8; at 224 px: ``layer4``, 7 x 7).

    Deeper maps are more class-specific but coarser; a 2 x 2 map says little about where in a grain the
    evidence lies. When no layer reaches the minimum, the one with the largest map is taken (warned).

    Raises:
        ExplainError: the extractor has no layer with a 2-D feature map (N x C x h x w).
    """
    candidates = _candidate_layers(extractor)
    shapes: dict[str, tuple[int, ...]] = {}

    def recorder(name: str):
        def record(_module: nn.Module, _inputs: object, output: object) -> None:  # None keeps the output
            shapes.setdefault(name, tuple(getattr(output, "shape", ())))

        return record

    handles = [module.register_forward_hook(recorder(name)) for name, module in candidates]
    # The probe has the width of the first convolution's input (6 channels for a ``stack`` CNN).
    channels = next((m.in_channels for m in extractor.modules() if isinstance(m, nn.Conv2d)), 3)
    was_training = extractor.training
    try:
        with torch.no_grad():
            extractor.eval()(torch.zeros(1, channels, size, size, device=device))
    finally:
        extractor.train(was_training)
        for handle in handles:
            handle.remove()
    maps = [
        CamLayer(name, module, shapes[name][-2:])
        for name, module in candidates
        if len(shapes.get(name, ())) == 4
    ]
    if not maps:
        raise ExplainError(
            f"{type(extractor).__name__} has no layer with a 2-D feature map for Grad-CAM "
            f"(tried {', '.join(name for name, _ in candidates) or 'nothing'})"
        )
    fitting = [layer for layer in maps if min(layer.map_size) >= MIN_CAM_SIDE]
    if fitting:
        return fitting[-1]
    largest = max(reversed(maps), key=lambda layer: min(layer.map_size))
    log.warning(
        "Grad-CAM at %d px: no layer of %s has a map of at least %d x %d; using %s (%d x %d)",
        size,
        type(extractor).__name__,
        MIN_CAM_SIDE,
        MIN_CAM_SIDE,
        largest.name,
        *largest.map_size,
    )
    return largest


def branch_layers(network: nn.Module, size: int, device: torch.device | str = "cpu") -> dict[str, CamLayer]:
    """The Grad-CAM layer of each branch (:func:`gradcam_layer`), keyed by what its output covers:
    ``pair`` (a shared encoder run on [plane; cross], so the first half of its batch is PPL), ``plane``,
    ``cross``, or ``stack`` (one map for both images)."""
    encoder = getattr(network, "encoder", None)
    if encoder is not None:  # san.models.networks.PairClassifier
        if encoder.shared:
            return {"pair": gradcam_layer(encoder.encoder, size, device)}
        return {
            "plane": gradcam_layer(encoder.plane_encoder, size, device),
            "cross": gradcam_layer(encoder.cross_encoder, size, device),
        }
    return {network.input_mode: gradcam_layer(network.body, size, device)}  # baselines.cnn


def _normalise(maps: torch.Tensor) -> np.ndarray:
    """N x 1 x S x S non-negative maps -> N x S x S, each divided by its maximum (0 stays 0)."""
    flat = maps.detach().float().cpu().numpy()[:, 0]
    peaks = flat.reshape(len(flat), -1).max(axis=1)
    return flat / np.where(peaks > 0, peaks, 1.0)[:, None, None]


def gradcam_maps(
    predictor: DeepPredictor, plane: np.ndarray, cross: np.ndarray, targets: np.ndarray
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Grad-CAM of N prepared pairs for the classes ``targets``: (PPL maps, XPL maps), each N x S x S
    in [0, 1], or None for an image the model does not look at."""
    from captum.attr import LayerAttribution, LayerGradCam  # imported only when explaining

    algorithm = predictor.algorithm
    batch = predictor.batch(plane, cross)
    target = torch.as_tensor(targets, dtype=torch.long, device=predictor.device)

    def forward(plane_tensor: torch.Tensor, cross_tensor: torch.Tensor) -> torch.Tensor:
        return algorithm.predict({"plane": plane_tensor, "cross": cross_tensor})

    maps: dict[str, np.ndarray] = {}
    for covers, layer in branch_layers(algorithm.network, predictor.size, predictor.device).items():
        attribution = LayerGradCam(forward, layer.module).attribute(
            (batch["plane"], batch["cross"]), target=target, relu_attributions=True
        )
        upsampled = _normalise(
            LayerAttribution.interpolate(
                attribution, (predictor.size, predictor.size), interpolate_mode="bilinear"
            )
        )
        if covers == "pair":
            maps["plane"], maps["cross"] = upsampled[: len(plane)], upsampled[len(plane) :]
        elif covers == "stack":
            maps["plane"] = maps["cross"] = upsampled
        else:
            maps[covers] = upsampled
    return maps.get("plane"), maps.get("cross")


# --- the run's rows -----------------------------------------------------------------------------------
@dataclass
class SplitImages:
    """Prepared images of some rows of a run's split, with their labels and rivers."""

    sample_id: list[str]
    label: list[str]
    river: list[str]
    plane: np.ndarray
    cross: np.ndarray


def run_dataset(
    run_dir: Path,
    data: str | None = None,
    layout: str | None = None,
    domain: str | None = None,
    progress: bool = False,
) -> Dataset:
    """The data a run was trained on (its saved request), or ``data`` instead.

    Raises:
        ExplainError: the run has no saved request and no ``data`` is given.
    """
    from san.runs.lifecycle import REQUEST_FILE, RunRequest, open_request_data

    request_path = run_dir / REQUEST_FILE
    if request_path.is_file():
        request = RunRequest(**json.loads(request_path.read_text(encoding="utf-8")))
    elif data is None:
        raise ExplainError(f"{run_dir}: no {REQUEST_FILE} saying where the run's data are; pass --data")
    else:
        request = RunRequest()
    if data is not None:
        request.data, request.layout, request.domain = data, layout, domain
    request.progress = progress
    dataset, _ = open_request_data(request)
    return dataset


def split_rows(run_dir: Path, dataset: Dataset, splits: tuple[str, ...]) -> pd.DataFrame:
    """Manifest rows (with a ``split`` column) of the run's ``split.csv`` entries in ``splits``.

    Raises:
        ExplainError: no split.csv, no row in those splits, or rows missing from the data.
    """
    path = run_dir / "split.csv"
    if not path.is_file():
        raise ExplainError(f"{run_dir}: no split.csv; explain needs the run's split")
    split = pd.read_csv(path, dtype=str)
    chosen = split[split["split"].isin(splits)]
    if chosen.empty:
        raise ExplainError(
            f"{run_dir}: no row in split(s) {', '.join(splits)} (the run has "
            f"{', '.join(sorted(split['split'].unique()))})"
        )
    rows = dataset.manifest.merge(chosen[["sample_id", "split"]], on="sample_id", how="inner")
    if len(rows) < len(chosen):
        missing = sorted(set(chosen["sample_id"]) - set(rows["sample_id"]))
        raise ExplainError(
            f"{len(missing)} pair(s) of the run's split are not in the data "
            f"(e.g. {', '.join(missing[:3])}); pass the run's data with --data"
        )
    return rows


def prepare_rows(predictor: Predictor, dataset: Dataset, rows: pd.DataFrame) -> SplitImages:
    """Decode and prepare the pairs of ``rows`` as the predictor's run was trained.

    Raises:
        data_tools.images.ImageDecodeError: a file cannot be decoded (named).
    """
    plane = np.stack([predictor.prepare(dataset.path(p)) for p in rows["plane_path"]])
    cross = np.stack([predictor.prepare(dataset.path(p)) for p in rows["cross_path"]])
    return SplitImages(
        rows["sample_id"].tolist(), rows["label"].tolist(), rows["domain"].tolist(), plane, cross
    )


def _batches(images: SplitImages, size: int):
    for start in range(0, len(images.label), size):
        yield slice(start, start + size)


def choose_examples(
    given: np.ndarray, predicted: np.ndarray, per_group: int, rng: np.random.Generator
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per given class: up to ``per_group`` correctly and ``per_group`` wrongly predicted row positions,
    drawn without replacement by ``rng``."""
    examples = {}
    for label in np.unique(given):
        groups = []
        for hit in (True, False):
            rows = np.flatnonzero((given == label) & ((predicted == given) == hit))
            groups.append(np.sort(rng.choice(rows, min(per_group, len(rows)), replace=False)))
        examples[int(label)] = (groups[0], groups[1])
    return examples


def save_gradcam_figures(
    predictor: DeepPredictor,
    images: SplitImages,
    n: int,
    out: Path,
    rng: np.random.Generator,
    batch_size: int = 32,
) -> dict[str, Any]:
    """``gradcam_<class>.png`` for every class of the split: about ``n`` pairs in all, half correct and
    half wrong per class. Returns the shown sample ids per class."""
    index = {name: i for i, name in enumerate(predictor.classes)}
    layers = branch_layers(predictor.algorithm.network, predictor.size, predictor.device)
    described = "; ".join(
        f"{'' if covers in ('pair', 'stack') else covers + ' '}{layer.name} "
        f"({layer.map_size[0]} x {layer.map_size[1]} map)"
        for covers, layer in layers.items()
    )
    known = np.array([label in index for label in images.label])
    probabilities = np.concatenate(
        [predictor.predict_pairs(images.plane[s], images.cross[s]) for s in _batches(images, batch_size)]
    )
    given = np.array([index.get(label, -1) for label in images.label])
    predicted = probabilities.argmax(axis=1)
    present = np.unique(given[known])
    examples = choose_examples(
        np.where(known, given, -1), predicted, max(1, n // (2 * max(1, len(present)))), rng
    )
    shown: dict[str, Any] = {}
    for label, (correct, wrong) in examples.items():
        if label < 0:
            continue
        tiles = []
        for rows in (correct, wrong):
            plane_maps, cross_maps = (
                gradcam_maps(predictor, images.plane[rows], images.cross[rows], predicted[rows])
                if len(rows)
                else (None, None)
            )
            tiles.append(
                [
                    CamTile(
                        images.plane[r],
                        images.cross[r],
                        None if plane_maps is None else plane_maps[k],
                        None if cross_maps is None else cross_maps[k],
                        images.label[r],
                        predictor.classes[predicted[r]],
                        float(probabilities[r].max()),
                    )
                    for k, r in enumerate(rows)
                ]
            )
        name = predictor.classes[label]
        save_gradcam_grid(
            tiles[0],
            tiles[1],
            out / f"gradcam_{name}.png",
            f"{predictor.method}: Grad-CAM of {described} at {predictor.size} px, for the predicted "
            f"class; given class {name}",
        )
        shown[name] = {
            "correct": [images.sample_id[r] for r in correct],
            "wrong": [images.sample_id[r] for r in wrong],
        }
    return shown


# --- feature space ------------------------------------------------------------------------------------
def frozen_features(predictor: DeepPredictor, images: SplitImages, batch_size: int = 64) -> np.ndarray:
    """The features the class head sees, N x d, of every prepared pair."""
    return np.concatenate(
        [predictor.features(images.plane[s], images.cross[s]) for s in _batches(images, batch_size)]
    )


def tsne_embedding(features: np.ndarray, seed: int) -> np.ndarray:
    """2-D t-SNE of N x d features (perplexity min(30, (N - 1) / 3), PCA start, seeded)."""
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(1.0, (len(features) - 1) / 3)))
    return TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(features)


def record_probe(run_dir: Path, probe: dict[str, Any]) -> None:
    """Add the probe to the run's ``results.json`` under ``feature_probe`` (the results.jsonl log keeps
    the original line; tables read results.json)."""
    record = read_record(run_dir)
    if record is None:
        log.warning("%s has no results.json: the river probe is only in explain.json", run_dir)
        return
    record[PROBE_KEY] = probe
    atomic_write_text(run_dir / RESULTS_FILE, json.dumps(record, sort_keys=True, default=str) + "\n")


# --- the whole explanation ----------------------------------------------------------------------------
def _deep(run_dir: Path, device: str) -> DeepPredictor:
    found = model_file(Path(run_dir))
    if found is not None and found.name != DEEP_MODEL_FILE:  # never load a classical model to refuse it
        raise ExplainError(
            f"{run_dir}: a classical run ({found.name}) has no network to explain; "
            "explain needs a deep run (SAN, ERM, CNN baselines)"
        )
    predictor = load_predictor(run_dir, device)
    if not isinstance(predictor, DeepPredictor):
        raise ExplainError(
            f"{run_dir}: a {predictor.kind} run ({predictor.method}) has no network to explain; "
            "explain needs a deep run (SAN, ERM, CNN baselines)"
        )
    return predictor


def feature_space(
    predictor: DeepPredictor, dataset: Dataset, rng: np.random.Generator, seed: int
) -> tuple[dict[str, Any], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The river probe of a run's source test rows and the t-SNE of its test+target features (points,
    rivers, classes)."""
    rows = split_rows(predictor.run_dir, dataset, FEATURE_SPLITS)
    images = prepare_rows(predictor, dataset, rows)
    features = frozen_features(predictor, images)
    probed = (rows["split"] == PROBE_SPLIT).to_numpy()
    probe = river_probe(
        features[probed], np.asarray(images.river)[probed], np.asarray(images.label)[probed], seed
    )
    probe["split"] = PROBE_SPLIT
    keep = np.sort(rng.choice(len(features), min(MAX_EMBEDDED, len(features)), replace=False))
    points = tsne_embedding(features[keep], seed)
    return probe, (points, np.asarray(images.river)[keep], np.asarray(images.label)[keep])


def explain_run(
    run_dir: str | Path,
    *,
    data: str | None = None,
    layout: str | None = None,
    domain: str | None = None,
    split: str = "test",
    n: int = 24,
    out: str | Path | None = None,
    compare: str | Path | None = None,
    device: str = "auto",
    seed: int = 0,
    progress: bool = False,
) -> dict[str, Any]:
    """Grad-CAM grids of ``split``, the feature-space figure and the river probe of a deep run (and of
    ``compare``, e.g. ERM beside SAN, in the same figure); the probe goes into each run's record.

    Returns:
        The content of ``explain.json`` in the output folder (default ``RUN_DIR/explain-<split>``).

    Raises:
        ExplainError: classical run, empty split, or data that do not hold the run's pairs.
        san.inference.predictors.RunLoadError: a run directory without a model.
    """
    run_dir = Path(run_dir)
    predictor = _deep(run_dir, device)
    out = Path(out) if out is not None else run_dir / f"explain-{split}"
    out.mkdir(parents=True, exist_ok=True)
    dataset = run_dataset(run_dir, data, layout, domain, progress)
    rng = np.random.default_rng(seed)
    images = prepare_rows(predictor, dataset, split_rows(run_dir, dataset, (split,)))
    summary: dict[str, Any] = {
        "run_dir": str(run_dir),
        "split": split,
        "output": str(out),
        "gradcam": save_gradcam_figures(predictor, images, n, out, rng),
        "probes": {},
    }
    embeddings = {}
    for other in [predictor] + ([_deep(Path(compare), device)] if compare else []):
        probe, embedding = feature_space(other, dataset, rng, seed)
        name = f"{other.method} ({other.run_dir.name})"
        embeddings[name] = embedding
        summary["probes"][str(other.run_dir)] = probe
        record_probe(other.run_dir, probe)
    save_embedding_panels(embeddings, out / "embedding.png")
    atomic_write_text(out / "explain.json", json.dumps(summary, indent=2, default=str) + "\n")
    return summary
