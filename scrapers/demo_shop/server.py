"""The demo shop served over HTTP on 127.0.0.1, with the faults real shops show.

Pages: `/` (navigation), `/damen/<category>/<colour>/?page=N` (listings), `/artikel/<id>.html`
(product page with an attribute list and a schema.org Product JSON-LD block), `/img/<id>/...`
(images) and `/robots.txt`. Faults: one product's page 404s, the first request to one listing
page answers 500, one packshot and one model photo are truncated JPEGs, one product is listed
on two pages.
"""

import html
import json
import threading
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from numbers import Integral
from urllib.parse import parse_qs, urlparse

from pipelines.processing.atomic import write_bytes_atomically
from scrapers.demo_shop import draw
from scrapers.demo_shop.catalog import CATEGORY_SLUGS, COLORS, Product, make_catalog

PAGE_SIZE = 8


class DemoPortError(OSError):
    """The demo shop's port cannot be bound (in use, or not allowed); the message names it."""


def listing_path(category_slug: str, color_slug: str, page: int = 1) -> str:
    return f"/damen/{category_slug}/{color_slug}/" + (f"?page={page}" if page > 1 else "")


class DemoShop:
    """The shop's data and pages; `start()` serves it on a background thread."""

    def __init__(self, n_products: int = 200, seed: int = 0, page_size: int = PAGE_SIZE):
        _check_int("products", n_products, 1)
        _check_int("page_size", page_size, 1)
        self.products: list[Product] = make_catalog(n_products, seed)
        self.by_id = {p.id: p for p in self.products}
        self.seed = seed
        self.page_size = page_size
        self.listings: dict[tuple[str, str], list[Product]] = {}
        for p in self.products:
            self.listings.setdefault((p.category_slug, p.color_slug), []).append(p)
        for p in self.products:
            if "listed_twice" in p.faults:  # shown again at the end of its own listing
                self.listings[(p.category_slug, p.color_slug)].append(p)
        # The first request for the busiest listing's first page answers 500 once.
        busiest = max(self.listings, key=lambda k: len(self.listings[k]))
        self._flaky = {listing_path(*busiest)}
        self._flaky_lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None
        self._cached_image = lru_cache(maxsize=4096)(self._render_image)

    # ---- serving ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        assert self.server is not None, "the shop is not started"
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self, port: int = 0) -> "DemoShop":
        shop = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802 (http.server's name)
                status, ctype, body = shop.respond(self.path)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # quiet: Scrapy logs what matters
                pass

        _check_int("port", port, 0, 65535, "0: any free port")
        try:
            self.server = _Server(("127.0.0.1", port), Handler)
        except OSError as e:  # the bare errno message does not say which port
            raise DemoPortError(
                f"demo shop cannot listen on 127.0.0.1:{port}: {e.strerror or e} - stop what "
                f"is using port {port} or choose another port (0: any free port)") from e
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="demo-shop")
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self) -> "DemoShop":
        return self.start() if self.server is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- pages -----------------------------------------------------------------------------
    def respond(self, raw_path: str) -> tuple[int, str, bytes]:
        url = urlparse(raw_path)
        parts = [p for p in url.path.split("/") if p]
        with self._flaky_lock:
            if raw_path in self._flaky:
                self._flaky.discard(raw_path)
                return 500, "text/plain", b"internal server error"
        if url.path == "/robots.txt":
            return 200, "text/plain", b"User-agent: *\nDisallow: /warenkorb/\n"
        if url.path == "/":
            return 200, "text/html; charset=utf-8", self.home_page().encode()
        if len(parts) == 3 and parts[0] == "damen":
            key = (parts[1], parts[2])
            page = int(parse_qs(url.query).get("page", ["1"])[0] or 1)
            if key[0] in CATEGORY_SLUGS.values() and key[1] in {c[0] for c in COLORS.values()}:
                return 200, "text/html; charset=utf-8", self.listing_page(key, page).encode()
        if len(parts) == 2 and parts[0] == "artikel" and parts[1].endswith(".html"):
            product = self.by_id.get(parts[1][:-5])
            if product is not None and "404" not in product.faults:
                return 200, "text/html; charset=utf-8", self.product_page(product).encode()
        if len(parts) == 3 and parts[0] == "img" and parts[1] in self.by_id:
            body = self._cached_image(parts[1], parts[2])
            if body is not None:
                return 200, "image/jpeg", body
        return 404, "text/html; charset=utf-8", b"<html><body>Seite nicht gefunden</body></html>"

    def _render_image(self, product_id: str, name: str) -> bytes | None:
        p = self.by_id[product_id]
        if name == "packshot.jpg":
            body = draw.jpeg(draw.packshot(p))
            return body[: len(body) * 2 // 3] if "truncated_packshot" in p.faults else body
        if name.startswith("model-") and name.endswith(".jpg"):
            k = int(name[6:-4])
            if 0 <= k < len(p.views):
                body = draw.jpeg(draw.model_photo(p, k)[0])
                if "truncated_model_photo" in p.faults and k == len(p.views) - 1:
                    return body[: len(body) // 2]
                return body
        return None

    def image_urls(self, p: Product) -> tuple[str, list[str]]:
        return f"/img/{p.id}/packshot.jpg", [f"/img/{p.id}/model-{k}.jpg"
                                            for k in range(len(p.views))]

    def home_page(self) -> str:
        links = "\n".join(
            f'<li><a class="listing" href="{listing_path(cs, col)}">{cat} / {col}</a></li>'
            for cat, cs in sorted(CATEGORY_SLUGS.items()) for col, _ in COLORS.values())
        return _page("Demo-Modeshop – Damen", f'<ul class="nav">{links}</ul>')

    def listing_page(self, key: tuple[str, str], page: int) -> str:
        items = self.listings.get(key, [])
        chunk = items[(page - 1) * self.page_size: page * self.page_size]
        tiles = "\n".join(
            f'<article class="tile" data-id="{p.id}"><a class="product-link" '
            f'href="/artikel/{p.id}.html"><img src="/img/{p.id}/packshot.jpg" alt="">'
            f'<span class="brand">{html.escape(p.brand)}</span>'
            f'<span class="name">{html.escape(p.name)}</span></a>'
            f'<span class="price">{p.price:.2f}\u00a0€</span></article>'
            for p in chunk) or '<p class="empty">Keine Artikel gefunden.</p>'
        nav = ""
        if page * self.page_size < len(items):
            nav = f'<a rel="next" class="next" href="{listing_path(*key, page + 1)}">Weiter</a>'
        return _page(f"Damen {key[0]} in {key[1]} – Seite {page}",
                     f'<section class="listing">{tiles}</section><nav>{nav}</nav>')

    def product_page(self, p: Product) -> str:
        packshot, photos = self.image_urls(p)
        ld = {
            "@context": "https://schema.org", "@type": "Product", "sku": p.id, "name": p.name,
            "brand": {"@type": "Brand", "name": p.brand}, "image": [packshot],
            "color": COLORS[p.color][0],
            "offers": {"@type": "Offer", "price": f"{p.price:.2f}", "priceCurrency": "EUR",
                       "availability": "https://schema.org/InStock"},
        }
        attrs = "\n".join(f"<li>{html.escape(a)}</li>" for a in p.attributes)
        gallery = "\n".join(f'<li><img class="model" src="{u}" alt="Model"></li>' for u in photos)
        body = (
            f'<script type="application/ld+json">{json.dumps(ld, ensure_ascii=False)}</script>'
            f'<nav class="breadcrumb"><a href="/">Damen</a> › {p.category_slug}</nav>'
            f'<h1 class="product-name"><span class="brand">{html.escape(p.brand)}</span> '
            f'<span class="name">{html.escape(p.name)}</span></h1>'
            f'<p class="price">{p.price:.2f}\u00a0€</p>'
            f'<img class="packshot" src="{packshot}" alt="{html.escape(p.name)}">'
            f'<ul class="gallery">{gallery}</ul>'
            f'<h2>Details</h2><ul class="attributes">{attrs}</ul>'
        )
        return _page(f"{p.brand} {p.name}", body)

    # ---- ground truth ----------------------------------------------------------------------
    def truth(self, base_url: str | None = None, masks_dir=None) -> dict:
        """Per product: English attributes and every model photo's view and person box.

        With `masks_dir`, the 7-class label map of each photo is written there as a PNG.
        """
        base = base_url if base_url is not None else (self.url if self.server else "")
        out = {}
        for p in self.products:
            _, photos = self.image_urls(p)
            entries = []
            for k, url in enumerate(photos):
                _, label = draw.model_photo(p, k)
                entry = {"url": base + url, "view": p.views[k], "box": draw.person_box(label)}
                if masks_dir is not None:
                    name = f"{p.id}-{k}.png"
                    write_bytes_atomically(masks_dir / name, draw.png(label))
                    entry["mask"] = name
                entries.append(entry)
            out[p.id] = {"attributes": p.truth, "category_slug": p.category_slug,
                         "color_slug": p.color_slug, "faults": sorted(p.faults),
                         "packshot_url": base + self.image_urls(p)[0], "model_photos": entries}
        return out


def _check_int(name: str, value, low: int, high: int | None = None, note: str = "") -> None:
    """A bad size or port fails here, by name, not later as an empty shop or a bare errno."""
    ok = isinstance(value, Integral) and not isinstance(value, bool) and value >= low \
        and (high is None or value <= high)
    if not ok:
        allowed = f"an integer >= {low}" if high is None else f"an integer in {low}-{high}"
        raise ValueError(f"demo shop {name} must be {allowed}{f' ({note})' if note else ''}, "
                         f"got {value!r}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 drops SYNs under 32 parallel clients


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="de"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title></head><body>{body}</body></html>")
