"""Decoding micrographs to RGB uint8 arrays: EXIF orientation, mode conversion, crop, resize."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"}
)

CropMode = Literal["center", "none"]


class ImageDecodeError(ValueError):
    """An image file could not be decoded; the message names the file and the reason."""


def is_image_file(path: str | Path) -> bool:
    """True if the file name has an image suffix this project decodes."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def _to_rgb(image: Image.Image) -> np.ndarray:
    """Convert any PIL mode (L, LA, P, RGBA, CMYK, I;16, I, F) to an HxWx3 uint8 array."""
    if image.mode == "F" or image.mode.startswith("I"):
        values = np.asarray(image, dtype=np.float64)
        peak = float(values.max(initial=0.0))
        if image.mode == "F":
            top = 1.0 if peak <= 1.0 else peak  # float images: [0, 1] or arbitrary positive range
        else:
            # 16/32-bit integer images: map the full 16-bit range unless the values fit in 8 bits.
            top = 65535.0 if image.mode.startswith("I;16") or peak > 255 else 255.0
        grey = np.clip(np.rint(values / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8).copy()


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 RGB array with EXIF orientation applied.

    Raises:
        ImageDecodeError: the file is empty, truncated, or not a decodable image.
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            raise ImageDecodeError(f"{path}: empty file (0 bytes)")
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except ImageDecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"{path}: cannot decode image ({error})") from error


def center_square_crop(image: np.ndarray) -> np.ndarray:
    """Central square of side min(height, width)."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Resize an HxWx3 uint8 array to size x size (bicubic; Pillow reduces large images first)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    resized = Image.fromarray(image).resize((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return np.asarray(resized, dtype=np.uint8)


def load_prepared(path: str | Path, size: int, crop: CropMode = "center") -> np.ndarray:
    """Decode, optionally centre-crop to a square, and resize to size x size (uint8 RGB).

    With ``crop='none'`` a non-square image is stretched to the square.
    """
    if crop not in ("center", "none"):
        raise ValueError(f"crop must be 'center' or 'none', got {crop!r}")
    image = load_rgb(path)
    if crop == "center":
        image = center_square_crop(image)
    return resize_square(image, size)
