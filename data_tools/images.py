"""Decoding micrographs to RGB uint8 arrays: EXIF orientation, mode conversion, crop, resize."""

from __future__ import annotations

import io
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
        if not np.isfinite(values).all():
            # A NaN or inf pixel would make the peak NaN and the whole image black.
            bad = int((~np.isfinite(values)).sum())
            raise ImageDecodeError(
                f"{bad} of {values.size} pixel value(s) are NaN or infinite; expected finite numbers"
            )
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


def decode_rgb(data: bytes) -> np.ndarray:
    """Decode an image file's bytes to an HxWx3 uint8 RGB array with EXIF orientation applied.

    Raises:
        ImageDecodeError: the bytes are empty, truncated, not a decodable image, or a float image
            holds NaN or infinite pixels; the message gives the reason (not the file name).
    """
    if not data:
        raise ImageDecodeError("empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return _to_rgb(ImageOps.exif_transpose(image))
    except ImageDecodeError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"unreadable or truncated image ({error})") from error


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to an HxWx3 uint8 RGB array (see :func:`decode_rgb`).

    Raises:
        ImageDecodeError: the file cannot be read or decoded; the message names the file and the reason.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ImageDecodeError(f"{path}: cannot read file ({error.strerror or error})") from error
    try:
        return decode_rgb(data)
    except ImageDecodeError as error:
        raise ImageDecodeError(f"{path}: {error}") from error


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
