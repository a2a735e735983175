"""``PairedGrainDataset``: cached PPL/XPL pairs as dicts of tensors for the training engine."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from data_tools.cache import CachedPairs
from data_tools.transforms import PairTransform


class PairedGrainDataset(TorchDataset):
    """The pairs of some manifest rows.

    Item ``i`` is a dict: ``plane`` and ``cross`` (float tensors 3 x S x S, normalised per
    polarization), ``label`` and ``domain`` (long scalars) and ``index`` (the manifest row).
    """

    def __init__(
        self,
        pairs: CachedPairs,
        rows: Sequence[int],
        labels: np.ndarray,
        domains: np.ndarray,
        transform: PairTransform,
    ) -> None:
        """
        Args:
            pairs: the cached images of the whole manifest.
            rows: manifest row positions this dataset serves.
            labels: class index per manifest row (length of the manifest).
            domains: domain index per manifest row (length of the manifest).
            transform: augmentation (training) or plain normalisation (evaluation).
        """
        if not len(labels) == len(domains) == len(pairs):
            raise ValueError(
                f"labels ({len(labels)}), domains ({len(domains)}) and cached pairs "
                f"({len(pairs)}) must all have one entry per manifest row"
            )
        self.pairs = pairs
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.domains = np.asarray(domains, dtype=np.int64)
        self.transform = transform
        self.references = self._border_references()

    def _border_references(self, chunk: int = 256) -> tuple[np.ndarray, np.ndarray] | None:
        """Each row's background reference, computed once: it depends on the stored pair only (not on
        the augmentation); per item, its border median was about a tenth of a pair's loading time."""
        if self.transform.reference == "none" or len(self.rows) == 0:
            return None
        parts = []
        for start in range(0, len(self.rows), chunk):
            rows = self.rows[start : start + chunk]
            parts.append(
                self.transform.references(
                    np.asarray(self.pairs.plane[rows]), np.asarray(self.pairs.cross[rows])
                )
            )
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, item: int) -> dict[str, torch.Tensor]:
        row = int(self.rows[item])
        references = None if self.references is None else (self.references[0][item], self.references[1][item])
        plane, cross = self.transform(
            np.asarray(self.pairs.plane[row]), np.asarray(self.pairs.cross[row]), references
        )
        return {
            "plane": plane,
            "cross": cross,
            "label": torch.tensor(self.labels[row], dtype=torch.long),
            "domain": torch.tensor(self.domains[row], dtype=torch.long),
            "index": torch.tensor(row, dtype=torch.long),
        }


def seed_worker(worker_id: int) -> None:  # noqa: ARG001 - DataLoader's worker_init_fn signature
    """DataLoader ``worker_init_fn``: give each worker its own augmentation stream.

    albumentations' Compose keeps its own generator, copied into every worker; without this all
    workers would draw the same augmentations. ``torch.initial_seed()`` differs per worker and
    follows the loader's generator, so runs stay reproducible.
    """
    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    seed = torch.initial_seed() % 2**31
    dataset = info.dataset
    transform = getattr(dataset, "transform", None)
    if isinstance(transform, PairTransform):
        transform.reseed(seed)
