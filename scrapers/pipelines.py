"""Item pipelines: validate each product, then download its packshot and model photos.

A product that fails is dropped with its reason counted in the crawl stats under
`dropped/<reason>`, so the Dagster asset can show why products went missing.
"""

import re
from io import BytesIO

from itemadapter import ItemAdapter
from scrapy import Request
from scrapy.exceptions import DropItem
from scrapy.pipelines.files import FSFilesStore
from scrapy.pipelines.images import ImagesPipeline

from pipelines.processing.atomic import write_bytes_atomically

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def drop(spider, reason: str, item) -> DropItem:
    """Count the reason and return the DropItem to raise."""
    spider.crawler.stats.inc_value(f"dropped/{reason}")
    return DropItem(f"{reason}: {ItemAdapter(item).get('product_url')}")


class ValidationPipeline:
    """Required fields present and well-formed; lists are lists of strings."""

    def process_item(self, item, spider):
        a = ItemAdapter(item)
        if not a.get("id") or not SAFE_ID.match(str(a["id"])):
            raise drop(spider, "bad_id", item)
        if not str(a.get("img_url") or "").startswith(("http://", "https://")):
            raise drop(spider, "no_packshot_url", item)
        if not a.get("name"):
            raise drop(spider, "no_name", item)
        if not a.get("category_slug"):
            raise drop(spider, "no_category", item)
        for key in ("attributes", "model_img_urls"):
            value = a.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise drop(spider, f"bad_{key}", item)
            a[key] = value
        if not a["attributes"]:
            spider.crawler.stats.inc_value("validation/no_attributes")
        spider.crawler.stats.inc_value("validation/ok")
        return item


class AtomicFSFilesStore(FSFilesStore):
    """Scrapy's file-system store, each image written to a temporary sibling and renamed into
    place: a crawl that fetches an image again (expired, or a second crawl of the shop) while
    another run's catalogue reads it never leaves it torn. Scrapy writes in place."""

    def persist_file(self, path: str, buf: BytesIO, info, meta: dict | None = None,
                     headers: dict | None = None) -> None:
        absolute = self._get_filesystem_path(path)
        self._mkdir(absolute.parent, info)
        write_bytes_atomically(absolute, buf.getvalue())


class ProductImagesPipeline(ImagesPipeline):
    """Packshot plus every model photo, original size, named by URL hash (dedup on disk)."""

    STORE_SCHEMES = {**ImagesPipeline.STORE_SCHEMES, "": AtomicFSFilesStore,
                     "file": AtomicFSFilesStore}

    def get_media_requests(self, item, info):
        a = ItemAdapter(item)
        return [Request(u) for u in [a["img_url"], *a["model_img_urls"]]]

    def item_completed(self, results, item, info):
        a = ItemAdapter(item)
        paths = [r["path"] if ok else None for ok, r in results]
        stats = info.spider.crawler.stats
        if not paths or paths[0] is None:
            raise drop(info.spider, "packshot_download_failed", item)
        a["img_path"] = paths[0]
        a["model_img_paths"] = paths[1:]
        failed = sum(p is None for p in paths[1:])
        if failed:
            stats.inc_value("images/model_photo_failed", failed)
        return item
