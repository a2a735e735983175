"""Batch samplers: domain-balanced batches (every batch holds every source river), optionally
class-balanced within each river."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler


class _Stream:
    """Endless draws from one group: reshuffled passes, or class-balanced draws with replacement."""

    def __init__(
        self, positions: np.ndarray, labels: np.ndarray, class_balanced: bool, rng: np.random.Generator
    ) -> None:
        self.positions, self.rng, self.class_balanced = positions, rng, class_balanced
        if class_balanced:
            _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
            weights = 1.0 / counts[inverse]
            self.probabilities = weights / weights.sum()
        self.order = np.empty(0, dtype=np.int64)

    def take(self, count: int) -> np.ndarray:
        if self.class_balanced:
            return self.rng.choice(self.positions, size=count, replace=True, p=self.probabilities)
        while len(self.order) < count:
            self.order = np.concatenate([self.order, self.rng.permutation(self.positions)])
        taken, self.order = self.order[:count], self.order[count:]
        return taken


class BalancedBatchSampler(Sampler[list[int]]):
    """Yields ``ceil(n / batch_size)`` full batches per epoch of dataset positions.

    With ``domain_balanced`` the batch is shared as evenly as possible between the domains
    (the remainder going to domains drawn at random), each domain cycling through its own
    reshuffled samples, so small rivers repeat more often within an epoch. The order depends
    only on (seed, epoch): call ``set_epoch`` before each epoch.
    """

    def __init__(
        self,
        labels: np.ndarray,
        domains: np.ndarray,
        batch_size: int,
        *,
        seed: int,
        domain_balanced: bool = True,
        class_balanced: bool = False,
    ) -> None:
        labels, domains = np.asarray(labels), np.asarray(domains)
        if len(labels) == 0:
            raise ValueError("cannot sample batches from an empty training split")
        groups = np.unique(domains) if domain_balanced else np.array([0])
        if batch_size < len(groups):
            raise ValueError(f"batch size {batch_size} cannot hold all {len(groups)} source domains")
        self.labels, self.domains, self.batch_size = labels, domains, batch_size
        self.groups, self.domain_balanced, self.class_balanced = groups, domain_balanced, class_balanced
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order is produced next."""
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.labels) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        streams = []
        for group in self.groups:
            positions = (
                np.flatnonzero(self.domains == group) if self.domain_balanced else np.arange(len(self.labels))
            )
            streams.append(_Stream(positions, self.labels[positions], self.class_balanced, rng))
        share, remainder = divmod(self.batch_size, len(streams))
        for _ in range(len(self)):
            extra = (
                set(rng.choice(len(streams), size=remainder, replace=False).tolist()) if remainder else set()
            )
            batch = np.concatenate([s.take(share + (i in extra)) for i, s in enumerate(streams)])
            yield rng.permutation(batch).tolist()
