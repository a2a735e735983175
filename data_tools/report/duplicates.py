"""Exact and near-duplicate pairs: perceptual hashes compared by Hamming distance, pair by pair.

Each image gets a 256-bit DCT perceptual hash (``imagehash.phash``, 16 x 16 lowest frequencies of a
64 x 64 grey image); with ``dihedral`` also the
hashes of its seven rotated/mirrored copies, so a rotated or flipped copy (a common augmentation
left in a dataset) is found too. A sample is a PPL/XPL pair, and two samples are near duplicates
only when both their PPL images and their XPL images are within a threshold, under the same
rotation or mirroring: PPL is compared with PPL and XPL with XPL, never across. The distance of
two pairs is the larger of the two, so one polarization that happens to look alike (XPL images
of isotropic grains are nearly black) is not enough. Byte-identical files are always reported.

Calibration (README, "Data quality"): on the 1,654 independent pairs of the synthetic set (seed 0,
working size 64 or 128 px) the closest two pairs are 50 bits apart, while copies of 100 pairs
re-encoded as JPEG (quality 75), resized to 90% or rotated and re-encoded stay within 30 bits of
their source. 64-bit hashes cannot separate them (clean pairs from 2 bits, copies up to 8).
"""

from __future__ import annotations

import imagehash
import numpy as np
import pandas as pd
from PIL import Image

from data_tools.names import POLARIZATIONS

HASH_SIZE = 16  # pHash side: HASH_SIZE**2 = 256 bits
HASH_BITS = HASH_SIZE * HASH_SIZE
HASH_BYTES = HASH_BITS // 8
_POPCOUNT = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)
_BLOCK_ELEMENTS = 4_000_000  # bytes of XOR results held at once by pair_neighbours

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
    """Packed 256-bit pHashes of an HxWx3 uint8 image: shape (8, HASH_BYTES) with ``dihedral``, else
    (1, HASH_BYTES).

    Row 0 is always the hash of the image as given.
    """
    variants = _dihedral(image) if dihedral else [image]
    bits = [
        imagehash.phash(Image.fromarray(np.ascontiguousarray(v)), hash_size=HASH_SIZE).hash.ravel()
        for v in variants
    ]
    return np.packbits(np.stack(bits), axis=1)


def pair_neighbours(
    hashes: np.ndarray, max_distance: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of samples within ``max_distance`` bits, and each sample's nearest-neighbour distance.

    From sample i to sample j under variant v the distance is the largest over parts p (PPL, XPL)
    of popcount(hash[i, p, 0] XOR hash[j, p, v]); the distance of i and j is the smallest over v
    and over both directions (i to j's variants, j to i's). Every pair is compared:
    O(n^2 * parts * variants) XORs in blocks of rows, a few seconds for a few thousand samples.

    Args:
        hashes: (n, parts, variants, bytes) uint8 packed hashes, part p of sample i from
            :func:`perceptual_hashes`.
        max_distance: largest distance (bits) reported as a pair.

    Returns:
        (i, j, distance, part_distances) of the pairs with i < j, ordered by (i, j) (part_distances:
        (pairs, parts), each part's distance where ``distance`` was found), and an (n,) array of
        each sample's distance to its nearest other sample (-1 when there is none).
    """
    count, parts, variants, width = hashes.shape
    far = np.iinfo(np.int64).max
    nearest = np.full(count, far, dtype=np.int64)
    found: list[tuple[np.ndarray, ...]] = [(np.zeros(0, np.int64),) * 3 + (np.zeros((0, parts), np.int64),)]
    block = max(1, _BLOCK_ELEMENTS // max(1, count * parts * variants * width))
    for start in range(0, count, block):
        rows = np.arange(start, min(start + block, count))
        xor = hashes[rows, :, :1][:, None] ^ hashes[None]  # (rows, count, parts, variants, bytes)
        each = _POPCOUNT[xor].sum(axis=4, dtype=np.int64)  # (rows, count, parts, variants)
        variant = each.max(axis=2).argmin(axis=2)  # (rows, count): the best rotation / mirroring
        chosen = np.take_along_axis(each, variant[:, :, None, None], axis=3)[..., 0]  # (rows, count, parts)
        distance = chosen.max(axis=2)
        distance[rows - start, rows] = far
        nearest[rows] = np.minimum(nearest[rows], distance.min(axis=1))
        nearest = np.minimum(nearest, distance.min(axis=0))  # the other direction, j to i
        local, j = np.nonzero(distance <= max_distance)
        i = rows[local]
        found.append((np.minimum(i, j), np.maximum(i, j), distance[local, j], chosen[local, j]))
    first, second, distance, part_distances = (np.concatenate(column) for column in zip(*found, strict=True))
    order = np.lexsort((distance, second, first))  # per (i, j), the closer direction first
    _, first_of_pair = np.unique(np.stack([first[order], second[order]], axis=1), axis=0, return_index=True)
    keep = order[first_of_pair]
    nearest[nearest == far] = -1
    return first[keep], second[keep], distance[keep], part_distances[keep], nearest


def _crossings(a: pd.Series, b: pd.Series, has_split: bool) -> str:
    crossed = [name for name in ("label", "domain") if a[name] != b[name]]
    if has_split and a["split"] != b["split"]:
        crossed.append("split")
    return ", ".join(crossed)


def _matched_images(
    images: pd.DataFrame, hashes: np.ndarray, max_distance: int
) -> tuple[dict[tuple[int, int], int], np.ndarray]:
    """Image-row pairs to report, with their distances, and each image's pair-level nearest distance.

    Pairs: the PPL and XPL rows of every two samples within ``max_distance``, and every two images
    of different samples with the same bytes (distance 0).
    """
    matched: dict[tuple[int, int], int] = {}
    nearest = np.full(len(images), -1, dtype=np.int64)
    rows = images.reset_index(drop=True)
    by_pol = rows.pivot_table(index="sample_id", columns="pol", values="row", aggfunc="first", sort=False)
    complete = by_pol.reindex(columns=list(POLARIZATIONS)).dropna().astype(int)
    if len(complete):
        pair_hashes = np.stack([hashes[complete[pol].to_numpy()] for pol in POLARIZATIONS], axis=1)
        first, second, _, part_distances, sample_nearest = pair_neighbours(pair_hashes, max_distance)
        for k, pol in enumerate(POLARIZATIONS):
            image_rows = complete[pol].to_numpy()
            nearest[image_rows] = sample_nearest
            for a, b, bits in zip(image_rows[first], image_rows[second], part_distances[:, k], strict=True):
                matched[(min(a, b), max(a, b))] = int(bits)
    for _, group in rows[rows.duplicated("sha1", keep=False)].groupby("sha1", sort=False):
        members = group["row"].to_numpy()
        for x, a in enumerate(members):
            for b in members[x + 1 :]:
                if rows.at[a, "sample_id"] != rows.at[b, "sample_id"]:
                    matched[(min(a, b), max(a, b))] = 0
    return matched, nearest


def find_duplicates(
    images: pd.DataFrame, hashes: np.ndarray, max_distance: int
) -> tuple[pd.DataFrame, np.ndarray]:
    """Exact and near-duplicate pairs between different samples, one row per pair of images.

    Args:
        images: one row per image with sample_id, domain, label, pol, path, sha1 and, when a split
            is known, split.
        hashes: (len(images), variants, HASH_BYTES) packed hashes aligned with ``images``.
        max_distance: near-duplicate threshold in bits (of :data:`HASH_BITS`), for both polarizations.

    Returns:
        The image pairs (columns :data:`DUPLICATE_COLUMNS`): for two samples whose PPL and XPL
        images are both within the threshold, a PPL row and an XPL row; and any two byte-identical
        images of different samples. ``kind`` is ``exact`` for byte-identical files, else ``near``;
        ``distance`` is that image pair's; ``crosses`` names what differs among label, domain and
        split, empty when nothing does. Sorted by distance then path. Also each image's pair-level
        distance to the nearest other pair (-1 when its partner is unreadable or it is alone).
    """
    indexed = images.reset_index(drop=True).assign(row=np.arange(len(images)))
    matched, nearest = _matched_images(indexed, hashes, max_distance)
    has_split = "split" in images.columns
    records = []
    for (i, j), bits in matched.items():
        a, b = indexed.iloc[i], indexed.iloc[j]
        records.append(
            {
                "kind": "exact" if a["sha1"] == b["sha1"] else "near",
                "distance": bits,
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
