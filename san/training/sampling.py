"""Batch samplers: domain-balanced batches (every batch holds every source river), optionally
class-balanced within each river, optionally over- or undersampled to a number of draws per class."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from torch.utils.data import Sampler

RESAMPLING = ("none", "over", "under", "target")


def check_resampling(mode: str, count: int | None, class_balanced: bool = False) -> None:
    """Raise ValueError for an unknown ``training.resample`` mode, ``target`` without a positive
    ``resample_count``, or resampling together with ``class_balanced`` (both set class frequencies)."""
    if mode not in RESAMPLING:
        raise ValueError(f"training.resample must be one of {RESAMPLING}, got {mode!r}")
    if mode == "target" and (count is None or count < 1):
        raise ValueError(f"training.resample: target needs training.resample_count >= 1, got {count!r}")
    if class_balanced and mode != "none":
        raise ValueError(
            f"training.class_balanced and training.resample={mode!r} both set class frequencies; choose one"
        )


def class_quotas(labels: np.ndarray, mode: str, count: int | None = None) -> dict[int, int]:
    """Draws per class and epoch: ``none`` the stored counts, ``over`` the largest class's count for
    every class, ``under`` the smallest's, ``target`` ``count`` for every class.

    Raises:
        ValueError: see :func:`check_resampling`.
    """
    check_resampling(mode, count)
    classes, counts = np.unique(np.asarray(labels), return_counts=True)
    if mode == "none" or len(counts) == 0:
        return {int(c): int(n) for c, n in zip(classes, counts, strict=True)}
    quota = {"over": counts.max(), "under": counts.min(), "target": count}[mode]
    return {int(c): int(quota) for c in classes}


def resampled_positions(labels: np.ndarray, quotas: dict[int, int], rng: np.random.Generator) -> np.ndarray:
    """One epoch's positions: class ``c``'s n_c positions each ``quota // n_c`` times, plus a random
    ``quota % n_c`` of them (so undersampling draws without replacement, and oversampling repeats
    every sample as evenly as possible). Returns the positions grouped by class."""
    labels = np.asarray(labels)
    drawn = []
    for label, quota in quotas.items():
        positions = np.flatnonzero(labels == label)
        repeats, rest = divmod(quota, len(positions))
        drawn += [np.tile(positions, repeats), rng.choice(positions, size=rest, replace=False)]
    return np.concatenate(drawn) if drawn else np.empty(0, dtype=np.int64)


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

    With ``resample`` other than ``none``, n is the sum of the per-class quotas
    (:func:`class_quotas`) and each epoch draws a fresh :func:`resampled_positions`. Without domain
    balancing an epoch then holds exactly the quotas; with it, each domain's part of the draw keeps
    its class mix, but domains get equal shares of every batch, so the epoch's per-class totals
    follow the quotas only as far as the domains' parts are equal in size.

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
        resample: str = "none",
        resample_count: int | None = None,
    ) -> None:
        labels, domains = np.asarray(labels), np.asarray(domains)
        if len(labels) == 0:
            raise ValueError("cannot sample batches from an empty training split")
        check_resampling(resample, resample_count, class_balanced)
        self.quotas = class_quotas(labels, resample, resample_count)
        self.resample = resample
        groups = np.unique(domains) if domain_balanced else np.array([0])
        if batch_size < len(groups):
            raise ValueError(f"batch size {batch_size} cannot hold all {len(groups)} source domains")
        self.labels, self.domains, self.batch_size = labels, domains, batch_size
        self.groups, self.domain_balanced, self.class_balanced = groups, domain_balanced, class_balanced
        self.seed, self.epoch = seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order is produced next."""
        self.epoch = epoch

    @property
    def draws_per_epoch(self) -> int:
        """Samples drawn per epoch before rounding up to whole batches."""
        return sum(self.quotas.values()) if self.resample != "none" else len(self.labels)

    def describe(self) -> dict[str, object]:
        """The sampling setting for a run record: mode, draws per epoch and per class (class index)."""
        return {
            "resample": self.resample,
            "draws_per_epoch": self.draws_per_epoch,
            "draws_per_class": {str(c): q for c, q in self.quotas.items()},
            "class_balanced": self.class_balanced,
            "domain_balanced": self.domain_balanced,
        }

    def __len__(self) -> int:
        return -(-self.draws_per_epoch // self.batch_size)

    def class_domain_distribution(self, num_classes: int, num_domains: int) -> np.ndarray:
        """P(class c, domain d) of one draw into a batch, a C x D matrix summing to 1.

        With n_cd the stored counts and q_c the class quotas, the pool holds m_cd = n_cd q_c / n_c in
        expectation. Domain-balanced: P(d) = 1 / D' over the D' domains drawn from and
        P(c | d) = m_cd / sum_c m_cd (uniform over d's classes when class-balanced); otherwise
        P(c, d) = m_cd / sum m (class-balanced: P(c) = 1 / C', P(d | c) = m_cd / sum_d m_cd).
        Label shift between the rivers is what makes the class predict the river.
        """
        counts = np.zeros((num_classes, num_domains))
        np.add.at(counts, (self.labels, self.domains), 1.0)
        per_class = counts.sum(axis=1, keepdims=True)
        quotas = np.array([self.quotas.get(c, 0) for c in range(num_classes)], dtype=float)[:, None]
        pool = np.divide(counts * quotas, per_class, out=np.zeros_like(counts), where=per_class > 0)
        if self.domain_balanced:
            mix = (pool > 0).astype(float) if self.class_balanced else pool
            totals = mix.sum(axis=0, keepdims=True)
            conditional = np.divide(mix, totals, out=np.zeros_like(mix), where=totals > 0)
            return conditional / max(1, int((totals > 0).sum()))
        if self.class_balanced:
            totals = pool.sum(axis=1, keepdims=True)
            conditional = np.divide(pool, totals, out=np.zeros_like(pool), where=totals > 0)
            return conditional / max(1, int((totals > 0).sum()))
        return pool / pool.sum()

    def __iter__(self) -> Iterator[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch, 7919])
        pool = (
            resampled_positions(self.labels, self.quotas, rng)
            if self.resample != "none"
            else np.arange(len(self.labels))
        )
        streams = []
        for group in self.groups:
            positions = pool[self.domains[pool] == group] if self.domain_balanced else pool
            if len(positions) == 0:  # a domain whose classes all drew nothing this epoch
                continue
            streams.append(_Stream(positions, self.labels[positions], self.class_balanced, rng))
        share, remainder = divmod(self.batch_size, len(streams))
        for _ in range(len(self)):
            extra = (
                set(rng.choice(len(streams), size=remainder, replace=False).tolist()) if remainder else set()
            )
            batch = np.concatenate([s.take(share + (i in extra)) for i, s in enumerate(streams)])
            yield rng.permutation(batch).tolist()
