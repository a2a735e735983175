"""Test-time augmentation: the eight flips and 90-degree rotations of a square image (the dihedral
group D4), applied to both images of a pair alike so the PPL and XPL views stay pixel-aligned.

A grain has no preferred orientation on the slide, so a classifier's probabilities averaged over
the eight views are a cheap ensemble. Views act on the two axes just before the channel axis,
so one call handles a single image (H x W x 3) or a batch (N x H x W x 3).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from data_tools.transforms import DIHEDRAL_VIEWS, IDENTITY_VIEW

__all__ = ["DIHEDRAL_VIEWS", "IDENTITY_VIEW", "dihedral_view", "pair_views"]


def dihedral_view(images: np.ndarray, view: int) -> np.ndarray:
    """View ``view`` (0-7) of ``images`` (... x H x W x C): an optional left-right mirror, then
    ``turns`` quarter turns, on the H and W axes. Returns a contiguous array.

    Raises:
        ValueError: ``view`` is not in 0-7 or the images are not square.
    """
    if not 0 <= view < len(DIHEDRAL_VIEWS):
        raise ValueError(f"view must be in 0-{len(DIHEDRAL_VIEWS) - 1}, got {view}")
    if images.ndim < 3 or images.shape[-3] != images.shape[-2]:
        raise ValueError(f"expected square images (... x H x W x C with H = W), got shape {images.shape}")
    turns, flip = DIHEDRAL_VIEWS[view]
    moved = images[..., ::-1, :] if flip else images
    return np.ascontiguousarray(np.rot90(moved, turns, axes=(-3, -2)))


def pair_views(
    plane: np.ndarray, cross: np.ndarray, tta: bool = True
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The (plane, cross) views to predict: all eight with ``tta``, else only the identity.

    The same view is applied to both images of every pair, so a pixel of the PPL image stays on
    top of the same pixel of the XPL image.

    Raises:
        ValueError: the two arrays differ in shape (see also :func:`dihedral_view`).
    """
    if plane.shape != cross.shape:
        raise ValueError(f"plane and cross images must have one shape, got {plane.shape} and {cross.shape}")
    for view in range(len(DIHEDRAL_VIEWS)) if tta else (IDENTITY_VIEW,):
        yield dihedral_view(plane, view), dihedral_view(cross, view)
