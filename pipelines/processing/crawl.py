"""Run a Scrapy crawl as a subprocess and collect its items, stats and log.

Scrapy's Twisted reactor cannot be restarted inside one Python process, so every crawl (from
Dagster, a test or a benchmark) is its own `python -m scrapy crawl` process.
"""

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pipelines.processing.atomic import write_text_atomically
from scrapers.shops import SHOPS

REPO_ROOT = Path(__file__).resolve().parents[2]


class CrawlError(RuntimeError):
    """The crawl process failed; the message carries the end of its log."""


def check_shop(shop: object) -> str:
    """`shop` when it is a known shop; the name becomes a folder and a spider name, so anything
    else (`../../x`, a typo) is refused with a one-line error naming the shops."""
    if not isinstance(shop, str) or shop not in SHOPS:
        raise ValueError(f"unknown shop {shop!r}: expected one of {', '.join(SHOPS)}")
    return shop


@dataclass
class CrawlResult:
    shop: str
    crawled_at: str  # UTC ISO time the crawl started; first_seen/last_seen come from it
    items_path: Path
    stats_path: Path
    log_path: Path
    stats: dict
    n_items: int
    wall_s: float

    def drop_reasons(self) -> dict[str, int]:
        """Why products went missing: validation and download drops, HTTP errors, duplicates."""
        out = {k.split("/", 1)[1]: int(v) for k, v in self.stats.items()
               if k.startswith("dropped/")}
        for code in ("404", "500", "503"):
            n = self.stats.get(f"downloader/response_status_count/{code}")
            if n:
                out[f"http_{code}"] = int(n)
        for key, name in (("listing/duplicate_product", "listed_twice"),
                          ("images/model_photo_failed", "model_photo_failed"),
                          ("retry/count", "retried_requests")):
            if self.stats.get(key):
                out[name] = int(self.stats[key])
        return out


def crawl_failure(returncode: int, stats: dict, output: str = "") -> str | None:
    """Why a finished crawl process counts as failed (one line), or None.

    The spider records its own verdict in the stats (`crawl/failure`: start URLs unreachable,
    0 products); a non-zero exit without one is a crash, whose last error line in `output`
    (stderr and the log's tail) is the reason; a crawl that exits 0 with no stats or no
    product is a failure too, so an empty crawl is never recorded as a success.
    """
    if stats.get("crawl/failure"):
        return str(stats["crawl/failure"])
    if returncode != 0:
        errors = [line.strip() for line in output.splitlines()
                  if re.match(r"^\s*[A-Za-z_.]*(Error|Exception)\b.*:", line)]
        return f"exited {returncode}" + (f": {errors[-1]}" if errors else "")
    if not stats:
        return "the crawl wrote no stats file"
    if not stats.get("item_scraped_count"):
        return "0 products scraped"
    return None


def run_crawl(shop: str, raw_dir: Path, start_urls: list[str] | None = None,
              max_products: int | None = None, spider_args: dict | None = None,
              settings: dict | None = None, timeout_s: float | None = None) -> CrawlResult:
    """Crawl `shop` into raw_dir: crawls/<stamp>.jsonl, crawls/<stamp>.stats.json, images/."""
    check_shop(shop)
    raw_dir = Path(raw_dir)
    now = datetime.now(UTC)
    stamp = now.strftime("%Y%m%dT%H%M%S%fZ")
    (raw_dir / "crawls").mkdir(parents=True, exist_ok=True)
    (raw_dir / "logs").mkdir(parents=True, exist_ok=True)
    items_path = raw_dir / "crawls" / f"{stamp}.jsonl"
    stats_path = raw_dir / "crawls" / f"{stamp}.stats.json"
    log_path = raw_dir / "logs" / f"{stamp}.log"
    cmd = [sys.executable, "-m", "scrapy", "crawl", shop, "-O", f"{items_path}:jsonlines",
           "-s", f"IMAGES_STORE={raw_dir / 'images'}", "-s", f"STATS_FILE={stats_path}",
           "-s", f"LOG_FILE={log_path}"]
    if start_urls:
        cmd += ["-a", "start_urls=" + ",".join(start_urls)]
    if max_products:
        cmd += ["-a", f"max_products={max_products}"]
    for key, value in (spider_args or {}).items():
        cmd += ["-a", f"{key}={value}"]
    for key, value in (settings or {}).items():
        cmd += ["-s", f"{key}={value}"]
    env = dict(os.environ, SCRAPY_SETTINGS_MODULE="scrapers.settings",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                        os.environ.get("PYTHONPATH")])))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, env=env, timeout=timeout_s,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else {}
    tail = log_path.read_text(errors="replace")[-3000:] if log_path.exists() else ""
    reason = crawl_failure(proc.returncode, stats, proc.stderr + "\n" + tail)
    if reason:
        raise CrawlError(f"scrapy crawl {shop} failed: {reason}\n--- stderr ---\n"
                         f"{proc.stderr[-2000:]}\n--- log {log_path} ---\n{tail}")
    # the meta file marks the crawl finished: the catalogue reads only crawls that have one, so
    # it never sees the items file Scrapy is still writing; written last, and atomically, so a
    # catalogue rebuilt meanwhile never reads half of it
    meta = {"shop": shop, "crawled_at": now.isoformat(), "images_dir": "images"}
    write_text_atomically(raw_dir / "crawls" / f"{stamp}.meta.json", json.dumps(meta))
    n_items = sum(1 for line in items_path.open(encoding="utf-8") if line.strip()) \
        if items_path.exists() else 0
    return CrawlResult(shop, now.isoformat(), items_path, stats_path, log_path, stats, n_items,
                       wall)
