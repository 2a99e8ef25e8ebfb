"""Shared by the benchmarks: a crawled demo shop and its catalogue in a store folder."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.processing.catalogue import build_catalogue, write_catalogue  # noqa: E402
from pipelines.processing.crawl import run_crawl  # noqa: E402
from scrapers.demo_shop import DemoShop, write_truth  # noqa: E402


def demo_store(store: Path, n_products: int, seed: int = 0, masks: bool = False) -> Path:
    """Crawl a demo shop of n products into store/raw/demo (with its truth) and build the
    catalogue, as raw_products and catalogue do. Returns the store."""
    store = Path(store)
    with DemoShop(n_products, seed).start() as shop:
        write_truth(shop, store / "raw" / "demo" / "truth.json", masks=masks)
        run_crawl("demo", store / "raw" / "demo", start_urls=[shop.url + "/"])
    result = build_catalogue(store / "raw", store / "catalogue")
    write_catalogue(result.catalogue, store / "catalogue")
    return store
