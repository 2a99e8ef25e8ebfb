"""Image helpers: square packshots, decode checks, preview grids for the Dagster UI."""

import base64
import io
from pathlib import Path

from PIL import Image, ImageOps

from pipelines.processing.atomic import atomic_path


class ImageError(OSError):
    """An image that could not be read or written; the message starts with its path."""


def render_packshot(src: Path, dst: Path, size: int = 256) -> None:
    """Pad `src` to a square with white, resize to size x size, save as JPEG at `dst`.

    The JPEG's comment records what it was rendered from (source name, bytes, mtime) and at
    which size; a cached `dst` is kept only when that record matches and `dst` decodes
    completely, so a truncated output, a changed source or an `image_size` change is rendered
    again. Raises ImageError naming the file when the source is missing or does not decode
    (nothing is written) or the output cannot be written.
    """
    src, dst = Path(src), Path(dst)
    try:
        st = src.stat()
        key = f"{src.name}|{st.st_size}|{st.st_mtime_ns}|{size}"
        if dst.exists() and _cache_key(dst) == key:
            return
        with Image.open(src) as im:
            im = im.convert("RGB")
            side = max(im.size)
            im = ImageOps.pad(im, (side, side), color=(255, 255, 255))
            im = im.resize((size, size), Image.Resampling.LANCZOS)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{src}: {type(e).__name__}: {e}") from e
    try:  # atomically, under a name unique to this writer: a reader never sees half a JPEG
        with atomic_path(dst) as tmp:
            im.save(tmp, "JPEG", quality=95, comment=key)
    except OSError as e:
        raise ImageError(f"{dst}: {type(e).__name__}: {e}") from e


def square_packshot(src: Path, dst: Path, size: int = 256) -> bool:
    """`render_packshot`, False (and nothing written) instead of an error."""
    try:
        render_packshot(src, dst, size)
    except ImageError:
        return False
    return True


def _decoded_size(path: Path) -> tuple[int, int] | None:
    """The image's size when it decodes completely, else None."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _cache_key(path: Path) -> str | None:
    """The render record in a packshot's JPEG comment, when the file decodes completely and
    has the size the record names; else None (render it again)."""
    try:
        with Image.open(path) as im:
            im.load()
            key = im.info.get("comment", b"").decode("utf-8", "replace")
            size = im.size
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return key if key.rsplit("|", 1)[-1] == str(size[0]) and size[0] == size[1] else None


def load_rgb(path: Path) -> Image.Image:
    """The decoded image as RGB; ImageError naming the file when it does not decode."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise ImageError(f"{path}: {type(e).__name__}: {e}") from e


def decodes(path: Path) -> bool:
    """True when the file exists and decodes completely."""
    return _decoded_size(path) is not None


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
