"""raw_products: one crawl of one shop (partition), as a Scrapy subprocess."""

import json

from dagster import AssetExecutionContext, Config, MaterializeResult, MetadataValue, asset
from pydantic import Field, field_validator

from pipelines.partitions import shop_partitions
from pipelines.processing.crawl import run_crawl
from pipelines.resources import CrawlResource, StorageResource
from scrapers.demo_shop import DemoShop, write_truth
from scrapers.spiders.base import check_start_urls


class ScrapeConfig(Config):
    start_urls: list[str] = Field(
        default_factory=list,
        description="listing pages to crawl instead of the shop's category x colour defaults "
                    "(a few categories, or a mirror of the shop); empty: the defaults, and for "
                    "demo the shop the asset serves")

    @field_validator("start_urls")
    @classmethod
    def _absolute_urls(cls, urls: list[str]) -> list[str]:
        # the spider takes them comma-joined, and refuses a bad one only once it has started
        if any("," in u for u in urls):
            raise ValueError("start_urls: a URL with a comma cannot be passed to the spider")
        return check_start_urls(",".join(urls)) if urls else []


@asset(
    partitions_def=shop_partitions,
    group_name="scrape",
    # one crawl at a time on the instance (dagster.yaml's default pool limit; pools are per
    # asset, not per shop): `dagster instance concurrency set raw_products 4` lets the shops
    # crawl side by side, which is safe (README, "Two runs at once")
    pool="raw_products",
    description="Crawl a shop's category x colour listings and product pages; download the "
                "packshot and model photos (deduplicated by URL hash). Lands in "
                "`raw/<shop>/`.\n\nOne partition per shop. The demo (`make run`, "
                "full_pipeline) crawls only `demo`, the generated shop on 127.0.0.1, so "
                "zalando, aboutyou and fashionid show as missing (grey) until one is crawled: "
                "this project was built offline, and the real shops' selectors need checking "
                "against today's pages first (README, \"Crawling a real shop\"). Their weekly "
                "schedules are off by default.",
)
def raw_products(context: AssetExecutionContext, config: ScrapeConfig, storage: StorageResource,
                 crawl: CrawlResource) -> MaterializeResult:
    # the partition key can come from a run tag unchecked; it becomes a folder, so only the
    # partition set's shops pass
    shop = context.partition_key
    if shop not in shop_partitions.get_partition_keys():
        raise ValueError(f"unknown shop {shop!r}: expected one of "
                         f"{', '.join(shop_partitions.get_partition_keys())}")
    raw_dir = storage.layout.raw(shop)
    if config.start_urls:
        truth = None
        result = run_crawl(shop, raw_dir, start_urls=config.start_urls,
                           max_products=crawl.max_products, timeout_s=crawl.timeout_s)
    elif shop == "demo":
        with DemoShop(crawl.demo_products, crawl.demo_seed).start(crawl.demo_port) as server:
            truth = write_truth(server, storage.layout.truth(shop), masks=crawl.demo_masks)
            context.log.info(f"demo shop: {crawl.demo_products} products at {server.url}")
            result = run_crawl("demo", raw_dir, start_urls=[server.url + "/"],
                               max_products=crawl.max_products, timeout_s=crawl.timeout_s)
    else:
        truth = None
        result = run_crawl(shop, raw_dir, max_products=crawl.max_products,
                           timeout_s=crawl.timeout_s)
    s = result.stats
    drops = result.drop_reasons()
    for reason, n in drops.items():
        context.log.warning(f"{shop}: {n} x {reason}")
    images_new = int(s.get("file_status_count/downloaded", 0))
    images_reused = int(s.get("file_status_count/uptodate", 0))
    context.log.info(f"{shop}: {result.n_items} products in {result.wall_s:.1f}s, "
                     f"{images_new} images downloaded, {images_reused} already on disk")
    metadata = {
        "products": result.n_items,
        "images_downloaded": images_new,
        "images_already_on_disk": images_reused,
        "drop_reasons": MetadataValue.json(drops),
        "wall_s": round(result.wall_s, 2),
        "products_per_s": round(result.n_items / max(result.wall_s, 1e-9), 2),
        "items_file": MetadataValue.path(str(result.items_path)),
        "log_file": MetadataValue.path(str(result.log_path)),
        "crawl_stats": MetadataValue.json(json.loads(json.dumps(s, default=str))),
    }
    if truth is not None:
        metadata["ground_truth"] = MetadataValue.path(str(truth))
    return MaterializeResult(metadata=metadata)
