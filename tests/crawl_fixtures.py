"""Helpers the Dagster tests share: a demo crawl written by hand and a free loopback port."""

import json
import socket
from pathlib import Path

from PIL import Image

CATEGORIES = [("kleider", "Sommerkleid"), ("blusen", "Bluse"), ("hosen", "Jeans")]
COLOURS = [("rot", (200, 30, 30)), ("schwarz", (20, 20, 20)), ("weiss", (240, 240, 240))]


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_crawl(store: Path, n: int = 18, categories=CATEGORIES, colours=COLOURS,
                size: tuple[int, int] = (40, 60)) -> set[str]:
    """One demo crawl as run_crawl leaves it (items, meta, images/full/), written by hand: a
    real crawl would cost the test a Scrapy process. Its product ids."""
    shop = store / "raw" / "demo"
    (shop / "crawls").mkdir(parents=True)
    (shop / "images" / "full").mkdir(parents=True)
    items = []
    for i in range(n):
        (slug, name), (colour, rgb) = categories[i % 3], colours[i // 3 % 3]
        Image.new("RGB", size, rgb).save(shop / "images" / "full" / f"p{i}.jpg")
        items.append({"id": f"P{i:05d}", "shop": "demo", "product_url": f"http://shop/{i}.html",
                      "img_url": f"http://shop/img/{i}.jpg", "model_img_urls": [],
                      "brand": "Marke", "name": name, "attributes": ["Muster: Streifen"],
                      "category_slug": slug, "color_slug": colour, "price": 29.9,
                      "img_path": f"full/p{i}.jpg", "model_img_paths": []})
    stamp = "20260101T000000000000Z"
    (shop / "crawls" / f"{stamp}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in items))
    (shop / "crawls" / f"{stamp}.meta.json").write_text(json.dumps(
        {"shop": "demo", "crawled_at": "2026-01-01T00:00:00+00:00", "images_dir": "images"}))
    return {r["id"] for r in items}
