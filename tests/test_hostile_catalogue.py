"""Hostile or broken crawl files against the catalogue: paths stay inside the store, one bad row
never fails the whole catalogue, the outputs never disagree, and the packshot cache notices a
broken or wrongly sized image. Crawl files are written by hand into a tmp store."""

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from dagster import DagsterInstance, materialize
from PIL import Image

from pipelines.assets.catalogue import (
    catalogue,
    catalogue_csv_parquet_agree,
    catalogue_images_decode,
    catalogue_unique_ids,
)
from pipelines.assets.scrape import raw_products
from pipelines.processing.catalogue import build_catalogue, packshot_arrays, write_catalogue
from pipelines.processing.crawl import run_crawl
from pipelines.processing.images import square_packshot
from pipelines.resources import CrawlResource, StorageResource
from scrapers.shops import SHOPS

STAMP = "20260101T000000000000Z"


def product(i: int, **over) -> dict:
    """One crawl item as the spider writes it (contract 1), packshot at full/p<i>.jpg."""
    row = {"id": f"P{i:05d}", "shop": "demo", "product_url": f"http://shop/artikel/{i}.html",
           "img_url": f"http://shop/img/{i}.jpg", "model_img_urls": [], "brand": "Marke",
           "name": "Sommerkleid", "attributes": ["Ärmellänge:\u00a0Kurzarm", "Muster: Streifen"],
           "category_slug": "kleider", "color_slug": "rot", "price": 29.9,
           "img_path": f"full/p{i}.jpg", "model_img_paths": []}
    row.update(over)
    return row


def write_crawl(store: Path, lines: list, shop: str = "demo", stamp: str = STAMP,
                meta: dict | None = None, images: int = 8) -> Path:
    """A crawl file as run_crawl leaves it: <stamp>.jsonl + <stamp>.meta.json + images/full/."""
    shop_dir = store / "raw" / shop
    (shop_dir / "crawls").mkdir(parents=True, exist_ok=True)
    (shop_dir / "images" / "full").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        Image.new("RGB", (40, 60), (200, 20 * i, 0)).save(shop_dir / "images" / "full"
                                                          / f"p{i}.jpg")
    path = shop_dir / "crawls" / f"{stamp}.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n"
                            for line in lines), encoding="utf-8")
    meta = meta or {"shop": shop, "crawled_at": "2026-01-01T00:00:00+00:00",
                    "images_dir": "images"}
    (shop_dir / "crawls" / f"{stamp}.meta.json").write_text(json.dumps(meta))
    return path


def outside_files(tmp_path: Path, store: Path) -> list[Path]:
    """Files under tmp_path that are not inside the store (what a path escape would create)."""
    return [p for p in tmp_path.rglob("*") if p.is_file() and not p.is_relative_to(store)
            and p.name != "secret.jpg"]


# ---- §2 paths stay inside the store --------------------------------------------------------

def test_unsafe_ids_are_dropped_and_write_nothing_outside(tmp_path):
    store = tmp_path / "a" / "b" / "store"
    write_crawl(store, [product(0), product(1, id="../../../../x"), product(2, id="/abs/y"),
                        product(3, id="a/../../b"), product(4, id="")])
    res = build_catalogue(store / "raw", store / "catalogue", size=32, workers=1)
    assert res.catalogue["id"].tolist() == ["P00000"]
    assert res.drops["unsafe_id"] == 3 and res.drops["missing_id"] == 1
    assert outside_files(tmp_path, store) == []
    written = [p.relative_to(store / "catalogue" / "images").as_posix()
               for p in (store / "catalogue" / "images").rglob("*.jpg")]
    assert written == ["dresses/P00000.jpg"]
    assert any(":3" in d and "unsafe_id" in d and STAMP in d for d in res.dropped_rows)


def test_img_paths_outside_the_images_dir_are_never_read(tmp_path):
    store = tmp_path / "store"
    secret = tmp_path / "secret.jpg"
    Image.new("RGB", (50, 50), (0, 0, 255)).save(secret)
    write_crawl(store, [
        product(0),
        product(1, img_path="../../../../secret.jpg"),
        product(2, img_path=str(secret)),
        product(3, img_path="full/../../../../secret.jpg"),
        product(4, model_img_paths=["full/p4.jpg", "../../../../secret.jpg"]),
        product(5, model_img_paths=[None, "full/p5.jpg"], model_img_urls=["u1", "u2"]),
        product(6, img_path="full/link.jpg"),  # a symlink inside that leads out
        product(7, img_path="full/../full/p7.jpg"),  # a `..` that stays inside is fine
    ])
    (store / "raw" / "demo" / "images" / "full" / "link.jpg").symlink_to(secret)
    res = build_catalogue(store / "raw", store / "catalogue", size=32, workers=1)
    cat = res.catalogue.set_index("id")
    assert sorted(cat.index) == ["P00000", "P00005", "P00007"]
    assert res.drops["unsafe_img_path"] == 4 and res.drops["unsafe_model_img_path"] == 1
    assert cat.loc["P00005", "model_img_paths"] == ["", "raw/demo/images/full/p5.jpg"]
    assert outside_files(tmp_path, store) == []


def test_unsafe_images_dir_in_crawl_meta_skips_that_crawl(tmp_path):
    store = tmp_path / "store"
    write_crawl(store, [product(0)], stamp="20260102T000000000000Z",
                meta={"shop": "demo", "crawled_at": "2026-01-02", "images_dir": "../../.."})
    write_crawl(store, [product(1)])
    (store / "raw" / "demo" / "crawls" / "20260103T000000000000Z.meta.json").write_text("{")
    (store / "raw" / "demo" / "crawls" / "20260103T000000000000Z.jsonl").write_text(
        json.dumps(product(2)) + "\n")
    res = build_catalogue(store / "raw", store / "catalogue", size=32, workers=1)
    assert res.catalogue["id"].tolist() == ["P00001"]
    assert res.drops["unsafe_images_dir"] == 1 and res.drops["crawl_meta_unreadable"] == 1


def test_run_crawl_rejects_an_unknown_shop_before_touching_disk(tmp_path):
    with pytest.raises(ValueError, match="unknown shop '../../../x'") as err:
        run_crawl("../../../x", tmp_path / "raw" / "x")
    assert all(s in str(err.value) for s in SHOPS) and "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_raw_products_rejects_a_partition_that_is_not_a_shop(tmp_path):
    store = tmp_path / "s1" / "s2" / "s3" / "store"
    result = materialize([raw_products], raise_on_error=False,
                         tags={"dagster/partition": "../../../x"},
                         resources={"storage": StorageResource(root=str(store)),
                                    "crawl": CrawlResource(timeout_s=5)})
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = failure.step_failure_data.error.cause.message.strip()
    assert message.startswith("ValueError: unknown shop") and "\n" not in message
    assert "unknown shop '../../../x'" in message and all(s in message for s in SHOPS)
    assert [p for p in tmp_path.rglob("*")] == []


# ---- §4 one bad row never fails the catalogue ------------------------------------------------

def test_bad_rows_are_dropped_with_file_and_line(tmp_path):
    store = tmp_path / "store"
    path = write_crawl(store, [
        product(0),
        "{not json",                                 # line 2
        product(1, id=None),                         # line 3: null id, not "None"
        product(2, attributes="Ärmellänge: Kurzarm"),  # line 4: a string, not a list
        "[1, 2]",                                    # line 5: not an object
        product(3, brand={"name": "x"}),             # line 6: Parquet could not encode it
        product(4, price=[1]),                       # line 7
        product(5, attributes=["ok", 3]),            # line 8: not a list of strings
        "",                                          # blank lines are no rows
        product(6),
        product(7, id=12345),                        # a numeric id is a string id
    ])
    with path.open("a") as f:  # keys outside contract 1 cannot shadow computed columns
        f.write(json.dumps(product(5, category="x", first_seen=1, _source="/etc/hosts",
                                   crawled_at=[1])) + "\n")
    res = build_catalogue(store / "raw", store / "catalogue", size=32, workers=1)
    assert res.catalogue["id"].tolist() == ["12345", "P00000", "P00005", "P00006"]
    assert "None" not in set(res.catalogue["id"])
    assert res.drops["invalid_json"] == 1 and res.drops["missing_id"] == 1
    assert res.drops["not_an_object"] == 1 and res.drops["bad_attributes"] == 2
    assert res.drops["bad_brand"] == 1 and res.drops["bad_price"] == 1
    assert res.n_crawled_rows == 11
    row = res.catalogue.set_index("id").loc["P00005"]
    assert row["category"] == "dresses" and row["first_seen"] == "2026-01-01T00:00:00+00:00"
    for line, reason in ((2, "invalid_json"), (3, "missing_id"), (4, "bad_attributes"),
                         (5, "not_an_object"), (6, "bad_brand"), (7, "bad_price")):
        assert any(d.startswith(f"{reason}: {path}:{line}") for d in res.dropped_rows), reason
    paths = write_catalogue(res.catalogue, store / "catalogue")
    assert len(pd.read_csv(paths["csv"], sep=";")) == len(pd.read_parquet(paths["parquet"])) == 4


def test_failed_write_leaves_the_previous_catalogue_whole(tmp_path):
    store = tmp_path / "store"
    write_crawl(store, [product(i) for i in range(3)])
    out = store / "catalogue"
    res = build_catalogue(store / "raw", out, size=32, workers=1)
    write_catalogue(res.catalogue, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert set(before) == {"catalogue.csv", "catalogue.parquet"}
    bad = pd.concat([res.catalogue, res.catalogue.iloc[:1].assign(id="P9", brand=[{"a": 1}])],
                    ignore_index=True)  # a dict among strings: the CSV writes, Parquet cannot
    with pytest.raises(pa.ArrowException):
        write_catalogue(bad, out)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before  # unchanged, and no temporary file left behind
    with pytest.raises(pa.ArrowException):
        write_catalogue(bad, out, report={"coverage": {}})
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    paths = write_catalogue(res.catalogue, out, report={"coverage": {}})
    assert json.loads(paths["report"].read_text()) == {"coverage": {}}


def catalogue_run(store: Path):
    return materialize([catalogue, catalogue_unique_ids, catalogue_images_decode,
                        catalogue_csv_parquet_agree],
                       instance=DagsterInstance.ephemeral(),
                       resources={"storage": StorageResource(root=str(store))},
                       run_config={"ops": {"catalogue": {"config": {"image_size": 32,
                                                                    "workers": 1}}}},
                       selection=["catalogue"])


def test_catalogue_asset_counts_bad_rows_and_its_outputs_agree(tmp_path):
    store = tmp_path / "store"
    write_crawl(store, [product(0), "{oops", product(1, id=None),
                        product(2, attributes="Kurzarm"), product(3)])
    result = catalogue_run(store)
    assert result.success
    [event] = result.asset_materializations_for_node("catalogue")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["rows"] == 2
    assert meta["drop_reasons"] == {"invalid_json": 1, "missing_id": 1, "bad_attributes": 1}
    assert any(":2" in d for d in meta["dropped_rows"])
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"catalogue_unique_ids": True, "catalogue_images_decode": True,
                      "catalogue_csv_parquet_agree": True}
    report = json.loads((store / "catalogue" / "translation_report.json").read_text())
    assert report["drops"] == meta["drop_reasons"]


def test_csv_parquet_check_fails_when_they_disagree(tmp_path):
    store = tmp_path / "store"
    write_crawl(store, [product(i) for i in range(3)])
    assert catalogue_run(store).success
    csv = store / "catalogue" / "catalogue.csv"
    csv.write_text("\n".join(csv.read_text().splitlines()[:-1]) + "\n")  # a row short
    result = catalogue_csv_parquet_agree(storage=StorageResource(root=str(store)))
    assert not result.passed
    assert result.metadata["csv_rows"].value == 2 and result.metadata["parquet_rows"].value == 3


# ---- §4 the packshot cache notices broken or wrongly sized images ---------------------------

def test_truncated_cached_packshot_is_rebuilt(tmp_path):
    store = tmp_path / "store"
    write_crawl(store, [product(i) for i in range(2)])
    out = store / "catalogue"
    build_catalogue(store / "raw", out, size=64, workers=1)
    cached = out / "images" / "dresses" / "P00000.jpg"
    cached.write_bytes(cached.read_bytes()[:300])  # newer than its source, and truncated
    res = build_catalogue(store / "raw", out, size=64, workers=1)
    assert len(res.catalogue) == 2
    with Image.open(cached) as im:
        im.load()
        assert im.size == (64, 64)


def test_image_size_change_rerenders_cached_packshots(tmp_path):
    store = tmp_path / "store"
    write_crawl(store, [product(0)])
    out = store / "catalogue"
    build_catalogue(store / "raw", out, size=64, workers=1)
    build_catalogue(store / "raw", out, size=32, workers=1)
    with Image.open(out / "images" / "dresses" / "P00000.jpg") as im:
        assert im.size == (32, 32)


def test_image_errors_name_their_file(tmp_path):
    good = tmp_path / "good.jpg"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(good.read_bytes()[:300])
    assert square_packshot(good, tmp_path / "out.jpg", 32)
    with pytest.raises(OSError, match="broken.jpg"):
        packshot_arrays([good, broken])


def test_unreadable_packshot_drop_names_its_file(tmp_path):
    store = tmp_path / "store"
    write_crawl(store, [product(0), product(1)])
    src = store / "raw" / "demo" / "images" / "full" / "p1.jpg"
    src.write_bytes(src.read_bytes()[:200])
    res = build_catalogue(store / "raw", store / "catalogue", size=32, workers=1)
    assert res.drops["packshot_unreadable"] == 1
    assert any("packshot_unreadable" in d and str(src) in d for d in res.dropped_rows)
