"""Contact sheet of a dataset in the published layout: one row per class, one column block per river.

Each class row shows PPL tiles above the matching XPL tiles; a class absent from a river is a
blank grey block. It reads the written JPEGs, so it shows exactly what a model will see.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from data_tools.images import is_image_file, load_prepared
from data_tools.names import CANONICAL_CLASSES, CANONICAL_RIVERS, MINERAL_NAMES, RIVER_DISPLAY_NAMES

_GAP, _LABEL_WIDTH, _HEADER = 6, 150, 22
_BACKGROUND, _ABSENT = (255, 255, 255), (200, 200, 200)


def _first_pairs(root: Path, river: str, mineral: str, count: int) -> list[tuple[Path, Path]]:
    folder = root / river / "plane" / mineral
    if not folder.is_dir():
        return []
    names = sorted(p.name for p in folder.iterdir() if is_image_file(p))[:count]
    return [(folder / n, root / river / "cross" / mineral / n) for n in names]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType has only the fixed bitmap font
        return ImageFont.load_default()


def contact_sheet(
    root: Path,
    *,
    per_river: int = 3,
    tile: int = 96,
    rivers: tuple[str, ...] = CANONICAL_RIVERS,
    classes: tuple[str, ...] = CANONICAL_CLASSES,
) -> Image.Image:
    """Build the contact sheet of the first ``per_river`` pairs of each river and class.

    Returns:
        An RGB PIL image.

    Raises:
        ValueError: per_river or tile is not positive.
        FileNotFoundError: root is not a folder.
    """
    if per_river < 1 or tile < 8:
        raise ValueError(f"per_river must be >= 1 and tile >= 8, got per_river={per_river}, tile={tile}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset root {str(root)!r} is not a folder")
    block = per_river * tile
    width = _LABEL_WIDTH + len(rivers) * (block + _GAP)
    height = _HEADER + len(classes) * (2 * tile + _GAP)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = _font(12)
    titles = [RIVER_DISPLAY_NAMES.get(river, river) for river in rivers]
    if any(draw.textlength(title, font=font) > block - 4 for title in titles):  # narrow blocks: short names
        titles = list(rivers)
    for r, river in enumerate(rivers):
        left = _LABEL_WIDTH + r * (block + _GAP)
        draw.text((left + 2, 4), titles[r], fill=(0, 0, 0), font=font)
        for c, mineral in enumerate(classes):
            top = _HEADER + c * (2 * tile + _GAP)
            pairs = _first_pairs(root, river, mineral, per_river)
            if not pairs:
                draw.rectangle([left, top, left + block - 1, top + 2 * tile - 1], fill=_ABSENT)
                draw.text((left + 6, top + tile - 6), "absent", fill=(90, 90, 90), font=font)
            for i, (plane, cross) in enumerate(pairs):
                for row, path in enumerate((plane, cross)):
                    tile_image = Image.fromarray(load_prepared(path, tile))
                    sheet.paste(tile_image, (left + i * tile, top + row * tile))
    for c, mineral in enumerate(classes):
        top = _HEADER + c * (2 * tile + _GAP)
        draw.text((4, top + tile // 2), mineral, fill=(0, 0, 0), font=_font(16))
        draw.text((4, top + tile // 2 + 20), MINERAL_NAMES.get(mineral, ""), fill=(60, 60, 60), font=font)
        draw.text((4, top + tile + tile // 2), "PPL above, XPL below", fill=(120, 120, 120), font=_font(10))
    return sheet


def write_preview(
    root: Path, path: Path, *, per_river: int = 3, tile: int = 96, colours: int | None = None
) -> Path:
    """Write the contact sheet of ``root`` as a PNG; ``colours`` (e.g. 256) makes a small palette PNG.

    Returns:
        The path written.
    """
    sheet = contact_sheet(root, per_river=per_river, tile=tile)
    if colours:
        # octree + error diffusion: no posterised bands in smooth interference colours
        sheet = sheet.quantize(
            colors=colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.FLOYDSTEINBERG
        )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path, format="PNG", optimize=True)
    return path
