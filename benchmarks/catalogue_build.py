"""Catalogue build time (merge, translate, square 256x256 packshots, write CSV/Parquet, one-hot
labels, splits) for demo crawls of several sizes.

    python benchmarks/catalogue_build.py [--sizes 250 500 1000]

The crawl is done first and not timed; the catalogue is built from scratch (no packshot on
disk yet), then once more with everything up to date (a re-run).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.processing.catalogue import build_catalogue, one_hot, write_catalogue  # noqa: E402
from pipelines.processing.crawl import run_crawl  # noqa: E402
from pipelines.processing.splits import assign_splits  # noqa: E402
from scrapers.demo_shop import DemoShop  # noqa: E402


def build(store: Path) -> tuple[int, float]:
    t0 = time.perf_counter()
    res = build_catalogue(store / "raw", store / "catalogue")
    write_catalogue(res.catalogue, store / "catalogue")
    one_hot(res.catalogue).to_csv(store / "catalogue" / "img_attr.csv", sep=";", index=False)
    assign_splits(res.catalogue)
    return len(res.catalogue), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000])
    args = ap.parse_args()
    print("| demo products | catalogue rows | build s (cold) | ms/product | re-run s |")
    print("|---|---|---|---|---|")
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp, DemoShop(n, 0).start() as shop:
            store = Path(tmp)
            run_crawl("demo", store / "raw" / "demo", start_urls=[shop.url + "/"])
            rows, cold = build(store)
            _, warm = build(store)
            print(f"| {n} | {rows} | {cold:.2f} | {1000 * cold / rows:.1f} | {warm:.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
