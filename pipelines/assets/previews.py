"""Preview pictures an asset page shows without a click.

The Dagster UI renders a markdown metadata value in place only when it is under 1,000
characters; a picture inlined as a data URI is far longer, so it sits behind "[Show Markdown]".
`picture` writes the image beside the run's step logs, which the webserver already serves
(`/logs/<path>`), and returns a short markdown image of that address, shown in place. The
assets keep their data-URI markdown too (behind the click): the fallback where no webserver
serves the file, and what a copy of the metadata carries.
"""

from pathlib import Path

from PIL import Image

INLINE_LIMIT = 1000  # the UI renders markdown metadata shorter than this in place
# the metadata table's value column on a 1,440-1,600 px wide window: a wider picture is cut off
INLINE_WIDTH = 480


def picture(context, image: Image.Image, alt: str, name: str, key: str = "picture") -> dict:
    """{key: markdown of the picture, shown in place}, or {} where the instance keeps no step
    logs on local disk; `name` is unique in the run (the asset's, plus the entry's)."""
    from dagster import MetadataValue

    url = served_copy(context, image, name)
    text = f"![{alt}]({url})" if url else ""
    return {key: MetadataValue.md(text)} if text and len(text) < INLINE_LIMIT else {}


def served_copy(context, image: Image.Image, name: str) -> str | None:
    """Save `image` under the instance's local step-log folder; its webserver address, or None
    where the instance keeps no local logs (an ephemeral test instance, a cloud log store)."""
    from dagster._core.storage.local_compute_log_manager import LocalComputeLogManager

    manager = getattr(context.instance, "compute_log_manager", None)
    if not isinstance(manager, LocalComputeLogManager):
        return None
    key = ["previews", context.run_id, name]
    path = manager.get_captured_local_path(key, "jpg")
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        image = image.convert("RGB")
        image.thumbnail((INLINE_WIDTH, 4 * INLINE_WIDTH), Image.Resampling.LANCZOS)
        image.save(path, "JPEG", quality=90)
    except OSError as e:
        context.log.warning(f"preview {name}: not saved beside the logs ({e})")
        return None
    return "/logs/" + "/".join(key) + "/jpg"
