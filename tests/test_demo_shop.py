"""The demo shop: deterministic from its seed, served over HTTP with real shops' faults."""

import io
import json
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from scrapers.demo_shop import DemoShop, write_truth
from scrapers.demo_shop.catalog import CATEGORY_SLUGS, NBSP, make_catalog, make_product
from scrapers.demo_shop.draw import PHOTO_SIZE, model_photo, packshot, person_box


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_same_seed_same_shop_and_images():
    a, b = make_catalog(30, seed=5), make_catalog(30, seed=5)
    assert [(p.id, p.attributes, p.views, p.truth, p.faults) for p in a] == \
           [(p.id, p.attributes, p.views, p.truth, p.faults) for p in b]
    assert packshot(a[3]).tobytes() == packshot(b[3]).tobytes()
    assert model_photo(a[3], 1)[0].tobytes() == model_photo(b[3], 1)[0].tobytes()
    other = make_catalog(30, seed=6)
    assert [p.attributes for p in a] != [p.attributes for p in other]


def test_a_product_does_not_depend_on_shop_size():
    assert make_catalog(10, 1)[4].attributes == make_catalog(500, 1)[4].attributes


def test_products_look_like_a_german_shop():
    products = make_catalog(200, 0)
    assert {p.category for p in products} == set(CATEGORY_SLUGS)
    assert len({p.color for p in products}) == 9
    tags = [t for p in products for t in p.attributes]
    assert any(NBSP in t for t in tags)  # Key:<NBSP>Value
    assert any(":" not in t for t in tags)  # bare tags
    assert any(t.startswith("Artikel-Nr") for t in tags)  # noise
    for p in products:
        assert 3 <= len(p.views) <= 6 and p.views.count("front") == 1
    assert sum(bool(p.faults) for p in products) == 4


def test_model_photo_labels_and_box():
    p = make_product(0, 11)
    for k, view in enumerate(p.views):
        photo, label = model_photo(p, k)
        assert photo.size == label.size == PHOTO_SIZE
        values = set(np.unique(np.asarray(label)).tolist())
        assert values <= set(range(7)) and len(values) >= 3
        x0, y0, x1, y1 = person_box(label)
        assert 0 <= x0 < x1 <= PHOTO_SIZE[0] and 0 <= y0 < y1 <= PHOTO_SIZE[1]
        if view == "front":
            assert {1, 2, 4, 6} <= values  # face, hair, upper clothes, legs
            assert (y1 - y0) > 0.75 * PHOTO_SIZE[1]  # full body
        if view == "back":
            assert 2 in values


@pytest.fixture(scope="module")
def shop():
    with DemoShop(n_products=40, seed=0, page_size=2).start() as s:
        yield s


def test_pages(shop):
    status, body = get(shop.url + "/robots.txt")
    assert status == 200 and b"User-agent" in body
    status, body = get(shop.url + "/")
    assert status == 200 and body.count(b'class="listing"') == 63
    ok = [p for p in shop.products if not p.faults][0]
    status, body = get(f"{shop.url}/artikel/{ok.id}.html")
    html = body.decode()
    assert status == 200 and '"@type": "Product"' in html and ok.id in html
    assert html.count('class="model"') == len(ok.views)
    status, body = get(f"{shop.url}/img/{ok.id}/packshot.jpg")
    assert status == 200 and Image.open(io.BytesIO(body)).size == (360, 480)


def test_pagination(shop):
    key = max(shop.listings, key=lambda k: len(shop.listings[k]))
    url = f"{shop.url}/damen/{key[0]}/{key[1]}/"
    _, first = get(url)  # may be the 500-once page: ask again
    status, first = get(url)
    assert status == 200 and b'rel="next"' in first
    assert first.count(b'class="tile"') == 2


def test_faults(shop):
    by_fault = {f: p for p in shop.products for f in p.faults}
    assert get(f"{shop.url}/artikel/{by_fault['404'].id}.html")[0] == 404
    _, body = get(f"{shop.url}/img/{by_fault['truncated_packshot'].id}/packshot.jpg")
    with pytest.raises(OSError):
        Image.open(io.BytesIO(body)).load()
    twice = by_fault["listed_twice"]
    assert shop.listings[(twice.category_slug, twice.color_slug)].count(twice) == 2


def test_500_once_then_works():
    with DemoShop(n_products=20, seed=1).start() as s:
        flaky = next(iter(s._flaky))
        assert get(s.url + flaky)[0] == 500
        assert get(s.url + flaky)[0] == 200


def test_truth_file_and_masks(tmp_path):
    s = DemoShop(n_products=12, seed=2)
    path = write_truth(s, tmp_path / "truth.json", masks=True)
    truth = json.loads(path.read_text())
    assert len(truth) == 12
    entry = next(iter(truth.values()))
    assert set(entry["attributes"]) >= {"category", "color", "sleeve_length", "neckline"}
    photo = entry["model_photos"][0]
    assert photo["view"] in {"front", "back", "knee", "side", "detail"}
    mask = np.asarray(Image.open(tmp_path / "truth_masks" / photo["mask"]))
    assert mask.max() <= 6
    ys, xs = np.nonzero(mask)
    assert photo["box"] == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_cli_writes_truth(tmp_path):
    out = tmp_path / "t.json"
    subprocess.run([sys.executable, "-m", "scrapers.demo_shop", "--products", "5", "--seed", "3",
                    "--truth", str(out), "--no-serve"], check=True, timeout=120)
    assert len(json.loads(out.read_text())) == 5
