"""A generated German women's-fashion shop, served on loopback: the embedded default and test bed.

    with DemoShop(n_products=30, seed=0).start() as shop:   # port 0: any free port
        crawl(shop.url)
"""

import json
from pathlib import Path

from pipelines.processing.atomic import write_text_atomically
from scrapers.demo_shop.server import DemoShop

__all__ = ["DemoShop", "write_truth"]


def write_truth(shop: DemoShop, path: str | Path, masks: bool = False) -> Path:
    """Write the shop's ground truth as JSON; with `masks`, PNG label maps in `<stem>_masks/`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    masks_dir = None
    if masks:
        masks_dir = path.parent / f"{path.stem}_masks"
        masks_dir.mkdir(exist_ok=True)
    truth = shop.truth(masks_dir=masks_dir)
    # atomically: the detector and segmentation stages of another run may be reading it
    write_text_atomically(path, json.dumps(truth, ensure_ascii=False, indent=1))
    return path
