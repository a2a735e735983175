"""Exact and near-duplicate images: perceptual hashes compared by Hamming distance.

Each image gets a 64-bit DCT perceptual hash (``imagehash.phash``); with ``dihedral`` also the
hashes of its seven rotated/mirrored copies, so a rotated or flipped copy (a common augmentation
left in a dataset) is found too. Two images are near duplicates when the distance between the
first one's hash and the closest variant of the other's is at most a threshold. Re-encoding,
resizing, mild blur or brightness changes move a hash by 0-4 bits; distinct grains of the real
sandstone pairs are 12 or more bits apart.
"""

from __future__ import annotations

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

HASH_BYTES = 8  # 64-bit hashes, packed
_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)
_BLOCK_ELEMENTS = 4_000_000  # bytes of XOR results held at once by hamming_neighbours

DUPLICATE_COLUMNS: tuple[str, ...] = (
    "kind",
    "distance",
    "crosses",
    "path_a",
    "path_b",
    "sample_a",
    "sample_b",
    "label_a",
    "label_b",
    "domain_a",
    "domain_b",
    "split_a",
    "split_b",
)


def _dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The image first, then its other 7 rotations by 90 degrees and mirror images."""
    variants = []
    for quarter_turns in range(4):
        rotated = np.rot90(image, quarter_turns)
        variants += [rotated, rotated[:, ::-1]]
    return variants


def perceptual_hashes(image: np.ndarray, *, dihedral: bool = True) -> np.ndarray:
    """Packed 64-bit pHashes of an HxWx3 uint8 image: shape (8, 8) with ``dihedral``, else (1, 8).

    Row 0 is always the hash of the image as given.
    """
    variants = _dihedral(image) if dihedral else [image]
    bits = [imagehash.phash(Image.fromarray(np.ascontiguousarray(v))).hash.ravel() for v in variants]
    return np.packbits(np.stack(bits), axis=1)


def hamming_neighbours(
    hashes: np.ndarray, max_distance: int, groups: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of images within ``max_distance`` bits, and each image's nearest-neighbour distance.

    The distance of (i, j) is the smallest over j's variants of popcount(hash_i[0] XOR hash_j[v]).
    Every pair is compared: O(n^2 * variants) XORs in blocks of rows, O(block * n * variants) memory,
    a few seconds for a few thousand images.

    Args:
        hashes: (n, variants, 8) uint8 packed hashes from :func:`perceptual_hashes`.
        max_distance: largest distance (bits) reported as a pair.
        groups: optional (n,) labels; images of one group are never compared with each other
            (the PPL and XPL image of one pair).

    Returns:
        (i, j, distance) arrays of the pairs with i < j, and an (n,) array of each image's
        distance to its nearest other image, measured from its own hash to the other's closest
        variant (-1 when there is none).
    """
    count = len(hashes)
    nearest = np.full(count, -1, dtype=np.int64)
    found_i, found_j, found_d = [], [], []
    if count < 2:
        empty = np.array([], dtype=np.int64)
        return empty, empty, empty, nearest
    block = max(1, _BLOCK_ELEMENTS // (count * hashes.shape[1] * HASH_BYTES))
    columns = np.arange(count)
    for start in range(0, count, block):
        rows = np.arange(start, min(start + block, count))
        xor = hashes[rows, 0][:, None, None, :] ^ hashes[None, :, :, :]
        distance = _POPCOUNT[xor].sum(axis=3, dtype=np.int64).min(axis=2)
        excluded = rows[:, None] == columns[None, :]
        if groups is not None:
            excluded |= groups[rows][:, None] == groups[None, :]
        distance[excluded] = np.iinfo(np.int64).max
        best = distance.min(axis=1)
        nearest[rows] = np.where(best == np.iinfo(np.int64).max, -1, best)
        local, j = np.nonzero((distance <= max_distance) & (columns[None, :] > rows[:, None]))
        found_i.append(rows[local])
        found_j.append(j)
        found_d.append(distance[local, j])
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_d), nearest


def _crossings(a: pd.Series, b: pd.Series, has_split: bool) -> str:
    crossed = [name for name in ("label", "domain") if a[name] != b[name]]
    if has_split and a["split"] != b["split"]:
        crossed.append("split")
    return ", ".join(crossed)


def find_duplicates(
    images: pd.DataFrame, hashes: np.ndarray, max_distance: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Exact and near-duplicate image pairs between different samples.

    Args:
        images: one row per image with sample_id, domain, label, path, sha1 and, when a split is
            known, split.
        hashes: (len(images), variants, 8) packed hashes aligned with ``images``.
        max_distance: near-duplicate threshold in bits (of 64).

    Returns:
        The pairs (columns :data:`DUPLICATE_COLUMNS`; ``kind`` is ``exact`` for byte-identical files,
        else ``near``; ``crosses`` names what differs among label, domain and split, empty when
        nothing does), sorted by distance then path; and each image's nearest-neighbour distance.
    """
    groups = pd.factorize(images["sample_id"])[0]
    first, second, distance, nearest = hamming_neighbours(hashes, max_distance, groups)
    has_split = "split" in images.columns
    records = []
    for i, j, bits in zip(first, second, distance, strict=True):
        a, b = images.iloc[i], images.iloc[j]
        records.append(
            {
                "kind": "exact" if a["sha1"] == b["sha1"] else "near",
                "distance": int(bits),
                "crosses": _crossings(a, b, has_split),
                "path_a": a["path"],
                "path_b": b["path"],
                "sample_a": a["sample_id"],
                "sample_b": b["sample_id"],
                "label_a": a["label"],
                "label_b": b["label"],
                "domain_a": a["domain"],
                "domain_b": b["domain"],
                "split_a": a["split"] if has_split else "",
                "split_b": b["split"] if has_split else "",
            }
        )
    table = pd.DataFrame.from_records(records, columns=list(DUPLICATE_COLUMNS))
    table = table.sort_values(["distance", "path_a", "path_b"], kind="stable").reset_index(drop=True)
    return table, nearest
