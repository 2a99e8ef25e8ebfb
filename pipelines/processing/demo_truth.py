"""The demo shop's ground truth (raw/demo/truth.json), looked up by image URL.

Only the demo has it; stages use it to train the offline person detector, to take the demo's
segmentation masks, and to measure themselves (front-view accuracy, box IoU).
"""

import json
from pathlib import Path


def load_truth(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def photos_by_url(truth: dict) -> dict[str, dict]:
    """image URL -> {"id", "index", "view", "box", "mask"} for every model photo."""
    out = {}
    for product_id, entry in truth.items():
        for index, photo in enumerate(entry["model_photos"]):
            out[photo["url"]] = {"id": product_id, "index": index, "view": photo["view"],
                                 "box": photo["box"], "mask": photo.get("mask")}
    return out


def front_accuracy(image_urls, truth: dict) -> float:
    """Share of chosen photos that are the product's true front full-body view."""
    by_url = photos_by_url(truth)
    urls = list(image_urls)
    hits = [by_url.get(u, {}).get("view") == "front" for u in urls]
    return sum(hits) / len(hits) if hits else 0.0


def annotated_photos(photos, truth: dict) -> list[tuple[str, str, dict]]:
    """(product id, image_path, the photo's truth) for the rows of a photo table
    (id, image_path, image_url) that the ground truth knows."""
    by_url = photos_by_url(truth)
    return [(pid, path, by_url[url]) for pid, path, url in photos.itertuples(index=False)
            if url in by_url]
