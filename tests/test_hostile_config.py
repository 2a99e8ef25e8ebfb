"""Bad configuration fails at once, naming the field, the value and what is allowed; a crawl that
gets nothing fails with its reason instead of an empty success; FASHION_GAN_STORE moves every
default path (HTTP cache, images, MLflow)."""

import math
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest
from dagster import AssetExecutionContext, DagsterInvalidConfigError, asset, materialize
from pydantic import ValidationError

from pipelines.assets.catalogue import CatalogueConfig, SplitConfig, dataset_splits
from pipelines.assets.model_images import (
    CropConfig,
    DetectorConfig,
    DetectorVariant,
    FrontViewConfig,
    person_detector,
)
from pipelines.assets.scrape import raw_products
from pipelines.assets.segmentation import SegmentationConfig
from pipelines.processing.crawl import CrawlError, run_crawl
from pipelines.processing.person_detector import VARIANTS
from pipelines.resources import CrawlResource, MLflowResource, StorageResource
from scrapers.demo_shop import DemoShop
from scrapers.demo_shop.__main__ import main as demo_shop_main
from scrapers.demo_shop.server import DemoPortError

REPO = Path(__file__).resolve().parent.parent

BAD_VALUES = [
    (CrawlResource, "demo_products", 0), (CrawlResource, "demo_products", -5),
    (CrawlResource, "max_products", -1), (CrawlResource, "max_products", 0),
    (CrawlResource, "max_products", "abc"), (CrawlResource, "demo_port", 70000),
    (CrawlResource, "demo_port", -1), (CrawlResource, "demo_seed", -1),
    (CrawlResource, "timeout_s", 0), (StorageResource, "root", ""),
    (CatalogueConfig, "image_size", 0), (CatalogueConfig, "workers", 0),
    (CatalogueConfig, "min_coverage", 1.5), (SplitConfig, "val_fraction", -0.5),
    (SplitConfig, "val_fraction", 1.0), (SplitConfig, "test_fraction", -0.01),
    (SplitConfig, "seed", -1), (FrontViewConfig, "k", 1), (FrontViewConfig, "k", 0),
    (FrontViewConfig, "workers", 0), (DetectorConfig, "steps", 0),
    (DetectorConfig, "batch_size", 0), (DetectorConfig, "lr", 0.0),
    (DetectorConfig, "lr", -0.1), (DetectorConfig, "lr", math.nan),
    (DetectorConfig, "holdout", 0.0), (DetectorConfig, "holdout", 1.0),
    (DetectorConfig, "min_score", 1.5), (DetectorConfig, "max_train_photos", 0),
    (DetectorConfig, "variant", "resnet51"), (DetectorConfig, "weights", "no/such/file.pt"),
    (CropConfig, "size", 4), (CropConfig, "margin", -0.1), (CropConfig, "batch_size", 0),
    (CropConfig, "min_score", -0.1), (SegmentationConfig, "compression", "zip"),
    (SegmentationConfig, "level", 10), (SegmentationConfig, "fashiongan_file", "no/such/G2.h5"),
]


@pytest.mark.parametrize("cls,field,value", BAD_VALUES,
                         ids=[f"{c.__name__}.{f}={v!r}" for c, f, v in BAD_VALUES])
def test_bad_value_is_refused_naming_field_and_value(cls, field, value):
    with pytest.raises(ValidationError) as err:
        cls(**{field: value})
    [error] = err.value.errors()
    assert error["loc"] == (field,)
    message = str(err.value)
    assert field in message and str(value) in message
    assert any(word in message for word in ("greater", "less", "should be", "must be", "not a"))


@pytest.mark.parametrize("cls", [CrawlResource, StorageResource, MLflowResource, CatalogueConfig,
                                 SplitConfig, FrontViewConfig, DetectorConfig, CropConfig,
                                 SegmentationConfig])
def test_defaults_are_valid(cls):
    cls()


def test_fractions_must_leave_train_a_share():
    SplitConfig(val_fraction=0.4, test_fraction=0.5)
    with pytest.raises(ValidationError, match=r"val_fraction \+ test_fraction must be < 1.*"
                                              r"0\.5 \+ 0\.5"):
        SplitConfig(val_fraction=0.5, test_fraction=0.5)


def test_detector_choices(tmp_path):
    assert get_args(DetectorVariant) == VARIANTS  # the config offers exactly the library's
    with pytest.raises(ValidationError, match="weights='coco' needs a COCO variant"):
        DetectorConfig(weights="coco")
    assert DetectorConfig(weights="coco", variant="resnet50_fpn").variant == "resnet50_fpn"
    weights = tmp_path / "detector.pt"
    weights.write_bytes(b"x")
    assert DetectorConfig(weights=str(weights)).weights == str(weights)
    assert DetectorConfig(weights="").weights is None  # blank = unset, as before


def test_dagster_refuses_a_choice_at_launch_and_a_range_before_the_asset_runs(tmp_path):
    storage = StorageResource(root=str(tmp_path / "store"))
    with pytest.raises(DagsterInvalidConfigError, match="variant.*resnet51"):
        materialize([person_detector], resources={
            "storage": storage, "mlflow": MLflowResource(
                tracking_uri=f"sqlite:///{tmp_path}/store/mlflow.db",
                artifact_root=str(tmp_path / "store" / "artifacts"))},
                    run_config={"ops": {"person_detector": {"config": {"variant": "resnet51"}}}})
    with pytest.raises(ValidationError, match=r"val_fraction\n.*greater than or equal to 0"
                                              r".*input_value=-0\.5"):
        materialize([dataset_splits], resources={"storage": storage},
                    run_config={"ops": {"dataset_splits": {"config": {"val_fraction": -0.5}}}})
    assert not (tmp_path / "store").exists()  # nothing was read or written


def resource_failure(result) -> str:
    """The message of the run's resource-init or step failure."""
    for event in result.all_events:
        if event.event_type_value == "RESOURCE_INIT_FAILURE":
            return event.event_specific_data.error.message
        if event.event_type_value == "STEP_FAILURE":
            error = event.step_failure_data.error
            return (error.cause or error).message
    raise AssertionError("no failure event")


def test_dagster_refuses_bad_crawl_resource_config(tmp_path):
    resources = {"storage": StorageResource(root=str(tmp_path / "store")),
                 "crawl": CrawlResource()}
    with pytest.raises(DagsterInvalidConfigError, match='max_products.*"abc"'):
        materialize([raw_products], partition_key="demo", resources=resources,
                    run_config={"resources": {"crawl": {"config": {"max_products": "abc"}}}})
    for field, value in (("demo_products", 0), ("max_products", -1), ("demo_port", 65536)):
        result = materialize([raw_products], partition_key="demo", resources=resources,
                             raise_on_error=False,
                             run_config={"resources": {"crawl": {"config": {field: value}}}})
        assert not result.success
        message = resource_failure(result)
        assert field in message and f"input_value={value}" in message
    assert not (tmp_path / "store").exists()


@pytest.fixture
def busy_port():
    """A loopback port something is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_demo_port_in_use_is_named(busy_port, tmp_path, capsys):
    with pytest.raises(DemoPortError, match=f"127.0.0.1:{busy_port}.*in use"):
        DemoShop(n_products=3).start(busy_port)
    with pytest.raises(SystemExit) as exit_:
        demo_shop_main(["--products", "3", "--port", str(busy_port)])
    assert exit_.value.code == 1
    err = capsys.readouterr().err.strip()
    assert f"127.0.0.1:{busy_port}" in err and len(err.splitlines()) == 1
    # the demo crawl of the raw_products asset starts the shop on crawl.demo_port
    result = materialize([raw_products], partition_key="demo", raise_on_error=False,
                         resources={"storage": StorageResource(root=str(tmp_path / "store")),
                                    "crawl": CrawlResource(demo_products=3,
                                                           demo_port=busy_port)})
    assert not result.success
    assert f"127.0.0.1:{busy_port}" in resource_failure(result)


@pytest.mark.parametrize("argv,named", [
    (["--products", "0"], "--products: 0 is not >= 1"),
    (["--products", "-3"], "--products: -3 is not >= 1"),
    (["--port", "70000"], "--port: 70000 is not in 0-65535"),
    (["--port", "http"], "--port: 'http' is not an integer in 0-65535"),
    (["--seed", "-1"], "--seed: -1 is not >= 0"),
    (["--page-size", "0"], "--page-size: 0 is not >= 1"),
])
def test_demo_shop_cli_refuses_bad_numbers(argv, named, capsys):
    with pytest.raises(SystemExit) as exit_:
        demo_shop_main(argv)
    assert exit_.value.code == 2
    assert named in capsys.readouterr().err


def test_demo_shop_refuses_an_empty_shop():
    for kwargs, named in (({"n_products": 0}, "products"), ({"page_size": 0}, "page_size")):
        with pytest.raises(ValueError, match=f"demo shop {named} must be an integer >= 1, got 0"):
            DemoShop(**kwargs)


def scrapy_crawl(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`scrapy crawl demo ARGS` from the repository root, everything written under tmp_path."""
    env = dict(os.environ, FASHION_GAN_STORE=str(tmp_path / "store"))
    return subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "demo", *args,
         "-s", f"IMAGES_STORE={tmp_path / 'images'}", "-s", "LOG_LEVEL=WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args,reason", [
    (["-a", "start_urls=not-a-url"], "start_urls: 'not-a-url' is not an absolute http(s) URL"),
    (["-a", "start_urls=http://127.0.0.1:99999/"], "has a bad port"),
    (["-a", "start_urls=http://127.0.0.1:1/", "-a", "max_products=-1"],
     "max_products must be an integer >= 1, got '-1'"),
    (["-a", "start_urls=http://127.0.0.1:1/", "-a", "max_products=abc"],
     "max_products must be an integer >= 1, got 'abc'"),
    (["-a", "products=0"], "-a products must be an integer >= 1, got '0'"),
])
def test_scrapy_crawl_refuses_bad_arguments(tmp_path, args, reason):
    proc = scrapy_crawl(tmp_path, *args)
    assert proc.returncode == 1
    assert reason in proc.stderr


def test_scrapy_crawl_of_a_closed_port_exits_nonzero(tmp_path, free_port):
    url = f"http://127.0.0.1:{free_port}/"
    proc = scrapy_crawl(tmp_path, "-a", f"start_urls={url}")
    assert proc.returncode == 1
    assert f"crawl failed: 0 products: 1 of 1 start URL(s) could not be fetched: {url}" \
        in proc.stderr
    assert "Connection refused" in proc.stderr


def test_run_crawl_fails_with_the_reason(tmp_path, free_port):
    with pytest.raises(CrawlError, match="^scrapy crawl demo failed: exited 1: ValueError: "
                                         "start_urls: 'nope'"):
        run_crawl("demo", tmp_path / "a", start_urls=["nope"], timeout_s=120)
    # a shop that has products, but nothing on the start page leads to them
    with DemoShop(n_products=5, seed=1).start() as shop:
        with pytest.raises(CrawlError) as err:
            run_crawl("demo", tmp_path / "b", start_urls=[shop.url + "/robots.txt"],
                      timeout_s=120)
    first = str(err.value).splitlines()[0]
    assert first.startswith("scrapy crawl demo failed: 0 products from 1 start URL(s): "
                            "0 listing pages, 0 product pages")
    assert "scrapers/shops/demo.toml" in first


def test_raw_products_fails_when_the_shop_is_unreachable(tmp_path, free_port, monkeypatch):
    # The crawl subprocess inherits the environment: a proxy on a closed port makes the shop
    # the asset serves unreachable for it, as a dead network would.
    for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                 "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, f"http://127.0.0.1:{free_port}")
    store = tmp_path / "store"
    result = materialize([raw_products], partition_key="demo", raise_on_error=False,
                         resources={"storage": StorageResource(root=str(store)),
                                    "crawl": CrawlResource(demo_products=3, demo_port=0,
                                                           timeout_s=120)})
    assert not result.success
    assert not result.get_asset_materialization_events()
    message = resource_failure(result)
    assert "scrapy crawl demo failed: 0 products: 1 of 1 start URL(s) could not be fetched" \
        in message


def test_store_env_moves_resource_defaults(tmp_path, monkeypatch):
    store = tmp_path / "elsewhere"
    monkeypatch.setenv("FASHION_GAN_STORE", str(store))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    @asset
    def probe(context: AssetExecutionContext, storage: StorageResource,
              mlflow: MLflowResource) -> None:
        context.add_output_metadata({"root": storage.root, "uri": mlflow.tracking_uri,
                                     "artifacts": mlflow.artifact_root})

    result = materialize([probe], resources={"storage": StorageResource(),
                                             "mlflow": MLflowResource()})
    meta = {k: v.value for k, v in
            result.asset_materializations_for_node("probe")[0].metadata.items()}
    assert meta == {"root": str(store), "uri": f"sqlite:///{store}/mlflow/mlflow.db",
                    "artifacts": str(store / "mlflow" / "artifacts")}
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////srv/mlflow.db")  # still wins
    assert MLflowResource().tracking_uri == "sqlite:////srv/mlflow.db"
    assert MLflowResource().artifact_root == str(store / "mlflow" / "artifacts")


def test_store_env_moves_the_http_cache_and_images(tmp_path):
    store = tmp_path / "store"
    env = dict(os.environ, FASHION_GAN_STORE=str(store))
    proc = subprocess.run(
        [sys.executable, "-m", "scrapy", "crawl", "demo", "-a", "products=3",
         "-s", "HTTPCACHE_ENABLED=True", "-s", "LOG_LEVEL=WARNING"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert any((store / "httpcache" / "demo").iterdir())
    assert any((store / "raw" / "images" / "full").iterdir())


@pytest.mark.parametrize(("argument", "value"), [("products", "abc"), ("products", "0"),
                                                 ("seed", "-1")])
def test_demo_spider_arguments_are_checked(argument, value):
    from scrapers.spiders.demo import DemoSpider

    with pytest.raises(ValueError, match=f"-a {argument} must be an integer >= "):
        DemoSpider(**{argument: value})
