"""Scrapy settings: polite defaults for real shops; the demo spider overrides them for loopback."""

from training.paths import store_root

# Everything a crawl writes goes under the project's store: $FASHION_GAN_STORE, as for the
# Dagster assets, else the repository's assets_store/ (training.paths, one definition).
# (lower case, so Scrapy does not take it for a setting)
store = store_root()

BOT_NAME = "fashion-gan"
SPIDER_MODULES = ["scrapers.spiders"]
NEWSPIDER_MODULE = "scrapers.spiders"

# An honest user agent: who we are and where to read about it.
USER_AGENT = ("fashion-gan-research-crawler/0.1 (+https://github.com/fashion-gan/fashion-gan; "
              "academic dataset building, weekly at most)")
ROBOTSTXT_OBEY = True

# Politeness for real shops: few parallel requests, AutoThrottle adapts to the server's latency.
CONCURRENT_REQUESTS = 8
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_DELAY = 1.0
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
RETRY_ENABLED = True
RETRY_TIMES = 3
DOWNLOAD_TIMEOUT = 60

# The HTTP cache expires after 6 days, shorter than the weekly re-scrape, so each weekly crawl
# sees fresh pages while a re-run the same week costs the shop nothing.
HTTPCACHE_ENABLED = True
HTTPCACHE_EXPIRATION_SECS = 6 * 24 * 3600
HTTPCACHE_DIR = str(store / "httpcache")
HTTPCACHE_IGNORE_HTTP_CODES = [500, 502, 503, 504, 429, 404]

ITEM_PIPELINES = {
    "scrapers.pipelines.ValidationPipeline": 100,
    "scrapers.pipelines.ProductImagesPipeline": 200,
}
# Images keep their original size; files are named by the SHA1 of their URL, so an image that
# is already on disk (and younger than IMAGES_EXPIRES days) is not downloaded again.
IMAGES_STORE = str(store / "raw" / "images")
IMAGES_EXPIRES = 90
MEDIA_ALLOW_REDIRECTS = True

EXTENSIONS = {"scrapers.extensions.StatsFile": 500}
STATS_FILE = None  # set to a path to get the crawl stats as JSON when the spider closes

FEED_EXPORT_ENCODING = "utf-8"
LOG_FORMATTER = "scrapers.logformatter.ConciseLogFormatter"
LOG_LEVEL = "INFO"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
