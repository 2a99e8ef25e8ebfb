"""Image helpers: square packshots, decode checks, preview grids for the Dagster UI."""

import base64
import io
from pathlib import Path

from PIL import Image, ImageOps


def square_packshot(src: Path, dst: Path, size: int = 256) -> bool:
    """Pad `src` to a square with white, resize to size x size, save as JPEG at `dst`.

    Returns False (and writes nothing) when the source is missing or does not decode; an
    up-to-date `dst` is kept, so re-running the catalogue costs little.
    """
    src, dst = Path(src), Path(dst)
    try:
        if dst.exists() and dst.stat().st_mtime >= src.stat().st_mtime:
            return True
        with Image.open(src) as im:
            im = im.convert("RGB")
            side = max(im.size)
            im = ImageOps.pad(im, (side, side), color=(255, 255, 255))
            im = im.resize((size, size), Image.Resampling.LANCZOS)
    except (OSError, ValueError, Image.DecompressionBombError):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_suffix(".tmp.jpg")
    im.save(tmp, "JPEG", quality=95)
    tmp.replace(dst)
    return True


def decodes(path: Path) -> bool:
    """True when the file exists and decodes completely."""
    try:
        with Image.open(path) as im:
            im.load()
        return True
    except (OSError, ValueError):
        return False


def grid(paths, cols: int = 8, cell: int = 96) -> Image.Image:
    """The images side by side, `cols` a row, each fitted into a white cell."""
    paths = list(paths)
    rows = max(1, -(-len(paths) // cols))
    sheet = Image.new("RGB", (cols * cell, rows * cell), (255, 255, 255))
    for i, path in enumerate(paths):
        try:
            with Image.open(path) as im:
                im = ImageOps.contain(im.convert("RGB"), (cell - 4, cell - 4))
        except OSError:
            continue
        x, y = (i % cols) * cell, (i // cols) * cell
        sheet.paste(im, (x + (cell - im.width) // 2, y + (cell - im.height) // 2))
    return sheet


def array_grid(arrays, cols: int = 8) -> Image.Image:
    """Equal-sized uint8 images (H, W, 3) side by side, `cols` a row."""
    arrays = list(arrays)
    if not arrays:
        return Image.new("RGB", (cols * 8, 8), (255, 255, 255))
    h, w = arrays[0].shape[:2]
    sheet = Image.new("RGB", (cols * w, -(-len(arrays) // cols) * h), (255, 255, 255))
    for i, a in enumerate(arrays):
        sheet.paste(Image.fromarray(a), ((i % cols) * w, (i // cols) * h))
    return sheet


def markdown_image(img: Image.Image, alt: str = "preview", quality: int = 80) -> str:
    """A markdown image with the picture inlined, for Dagster metadata."""
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return f"![{alt}](data:image/jpeg;base64,{base64.b64encode(buf.getvalue()).decode()})"
