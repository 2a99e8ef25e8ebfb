"""Crawl throughput against the demo shop on loopback: products/s with every image downloaded.

    python benchmarks/crawl_throughput.py [--sizes 200 1000] [--repeats 1]

Each run starts a fresh demo shop and an empty image store, so every image is fetched; the
wall time is the whole `scrapy crawl` subprocess, start-up included.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.processing.crawl import run_crawl  # noqa: E402
from scrapers.demo_shop import DemoShop  # noqa: E402


def crawl_once(n: int, seed: int = 0) -> dict:
    with tempfile.TemporaryDirectory() as tmp, DemoShop(n, seed).start() as shop:
        r = run_crawl("demo", Path(tmp) / "raw" / "demo", start_urls=[shop.url + "/"])
        images = int(r.stats.get("file_status_count/downloaded", 0))
        return {"products": n, "items": r.n_items, "images": images, "wall_s": r.wall_s,
                "products_per_s": r.n_items / r.wall_s, "images_per_s": images / r.wall_s}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 1000])
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    print("| demo products | items | images | wall s | products/s | images/s |")
    print("|---|---|---|---|---|---|")
    for n in args.sizes:
        for _ in range(args.repeats):
            r = crawl_once(n)
            print(f"| {n} | {r['items']} | {r['images']} | {r['wall_s']:.1f} | "
                  f"{r['products_per_s']:.1f} | {r['images_per_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
