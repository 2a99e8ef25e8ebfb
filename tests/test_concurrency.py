"""Two runs touching the same store at once (issue 14, "Concurrency and faults").

Runs are real Dagster runs on one DagsterInstance built from the project's dagster.yaml in a
temporary DAGSTER_HOME, each in its own process (forked from this one, so none re-imports the
code), overlapping in time:

- a crawl of the demo shop, a crawl of a second shop and a catalogue rebuild at once, then a
  final catalogue: it holds both shops' products once each, and every file of the store reads
  whole. The second shop is fashionid: its own spider, selectors, TOML settings and id scheme,
  crawled through `raw_products`' `start_urls` from a loopback mirror of its saved pages
  (tests/fixtures/fashionid, absolute links pointed at the mirror), since nothing outside
  127.0.0.1 is reachable here; its partition and folder (raw/fashionid) are its own.
- two runs of the same asset: the second waits for the first through the asset's pool, one run
  under the multiprocess executor (its step in a process of its own), one in-process.
- the writers replace a file instead of rewriting it: a reader that opened the old file still
  reads it whole (crawl, catalogue, front_model_images, the leaderboards, the robustness sweep).
- every asset is in a pool: training steps in `gpu`, every other asset in its own.
"""

import contextlib
import io
import json
import multiprocessing
import re
import shutil
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import h5py
import pandas as pd
import pytest
from crawl_fixtures import free_port, write_crawl
from dagster import (
    DagsterEventType,
    DagsterInstance,
    Definitions,
    define_asset_job,
    execute_job,
    materialize,
    multiprocess_executor,
)
from dagster._core.definitions.reconstruct import ReconstructableJob
from PIL import Image

from pipelines.assets.catalogue import (
    attribute_labels,
    catalogue,
    catalogue_csv_parquet_agree,
    catalogue_images_decode,
    catalogue_unique_ids,
    dataset_splits,
    packshot_store,
)
from pipelines.assets.scrape import raw_products
from pipelines.processing.atomic import write_atomically, write_text_atomically
from pipelines.processing.images import decodes
from pipelines.resources import CrawlResource, MLflowResource, StorageResource
from scrapers.demo_shop import DemoShop, write_truth
from training.paths import REPO_ROOT

FORK = multiprocessing.get_context("fork")
FIXTURES = Path(__file__).parent / "fixtures" / "fashionid"
LISTING = "/damen/bekleidung/roecke/farbe-rot/"  # the saved listing page's address
FASHIONID_IDS = {"12345678", "87654321"}  # the two products it links to
CATALOGUE_GROUP = [catalogue, attribute_labels, dataset_splits, packshot_store]
CATALOGUE_CONFIG = {"ops": {"catalogue": {"config": {"image_size": 64, "workers": 1}}}}
TORN = {"crawl_meta_unreadable", "invalid_json", "not_an_object", "packshot_unreadable"}


# an earlier crawl of the demo shop: the store the concurrent runs find
EARLIER = {"categories": [("kleider", "Sommerkleid"), ("blusen-tuniken", "Bluse"),
                          ("hosen", "Jeans")],
           "colours": [("rot", (200, 30, 30)), ("schwarz", (20, 20, 20)), ("blau", (30, 30, 200))],
           "size": (120, 180)}


def serve_fashionid(port: int) -> None:
    """fashionid's saved listing and product page on 127.0.0.1:`port` (a process's body): the
    listing at its own path, the product page for both products it links to (each with its own
    id in its image names), a JPEG for every image, 404 for anything else (robots.txt, page 2).
    """
    base = f"http://127.0.0.1:{port}"
    listing = (FIXTURES / "listing.html").read_text().replace("https://www.fashionid.de", base)
    product = (FIXTURES / "product.html").read_text().replace("https://www.fashionid.de", base)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            url = urlsplit(self.path)
            product_id = re.fullmatch(r"/[a-z-]+/[a-z-]+-(\d{8})/", url.path)
            if url.path == LISTING and not url.query:
                ctype, body = "text/html; charset=utf-8", listing.encode()
            elif product_id:
                ctype = "text/html; charset=utf-8"
                body = product.replace("12345678", product_id[1]).encode()
            elif url.path.startswith("/img/") and url.path.endswith(".jpg"):
                image = Image.new("RGB", (240, 320), (255, 255, 255))
                image.paste((190, 20, 30), (60, 60, 180, 300))  # a red skirt
                buf = io.BytesIO()
                image.save(buf, "JPEG")
                ctype, body = "image/jpeg", buf.getvalue()
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


def wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def materialize_in_child(home: str, assets: list, kwargs: dict) -> None:
    """A forked process's body: one run on the instance in `home`, in-process executor."""
    with DagsterInstance.from_config(home) as instance:
        result = materialize(assets, instance=instance, raise_on_error=False, **kwargs)
    if not result.success:
        raise SystemExit(1)


def execute_in_child(home: str, job_fn: str, run_config: dict) -> None:
    """A forked process's body: the job `job_fn` of this file returns, as one run on the
    instance; the executor's step processes rebuild it from this file (pytest imports it under
    a module name they cannot import)."""
    job = ReconstructableJob.for_file(__file__, job_fn)
    with DagsterInstance.from_config(home) as instance, \
            execute_job(job, instance, run_config=run_config) as result:
        ok = result.success
    if not ok:
        raise SystemExit(1)


def start(target, *args) -> multiprocessing.Process:
    proc = FORK.Process(target=target, args=args)
    proc.start()
    return proc


def finish(procs: list[multiprocessing.Process], timeout_s: float = 180) -> list[int | None]:
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
    for proc in procs:  # only these, which this test started
        if proc.is_alive():
            proc.kill()
            proc.join()
    return [proc.exitcode for proc in procs]


def multiprocess_catalogue_job():
    """`catalogue` alone under the multiprocess executor, over the store FASHION_GAN_STORE
    names; module level, so the step's own process can rebuild the job from this file."""
    job = define_asset_job("catalogue_multiprocess", selection=[catalogue.key],
                           executor_def=multiprocess_executor)
    return Definitions(assets=[raw_products, catalogue], jobs=[job],
                       resources={"storage": StorageResource(), "crawl": CrawlResource()}
                       ).resolve_job_def("catalogue_multiprocess")


@pytest.fixture
def home(tmp_path, monkeypatch) -> tuple[str, Path]:
    """(DAGSTER_HOME holding the project's dagster.yaml, the store); the store is the default
    of every process started from here (crawls, step processes)."""
    home, store = tmp_path / "dagster_home", tmp_path / "store"
    home.mkdir()
    shutil.copy(REPO_ROOT / "pipelines" / "dagster_home" / "dagster.yaml", home)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("FASHION_GAN_STORE", str(store))
    with DagsterInstance.from_config(str(home)):  # its sqlite tables, before two processes race
        pass
    return str(home), store


def step_window(instance, run_id: str, step: str) -> tuple[float, float]:
    """(start, end) timestamps of a step of a run: its STEP_START and STEP_SUCCESS events."""
    times = {e.dagster_event.event_type: e.timestamp for e in instance.all_logs(
        run_id, of_type={DagsterEventType.STEP_START, DagsterEventType.STEP_SUCCESS})
        if e.step_key == step}
    return times[DagsterEventType.STEP_START], times[DagsterEventType.STEP_SUCCESS]


def unreadable(store: Path) -> list[str]:
    """Every file of the store that does not read whole as its kind, and any temporary left."""
    bad = []
    for path in sorted(p for p in store.rglob("*") if p.is_file()):
        rel = path.relative_to(store)
        if rel.parts[0] == "httpcache":  # Scrapy's own cache of real-shop pages
            continue
        try:
            if path.name.endswith(".tmp"):
                raise ValueError("temporary left behind")
            if path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.suffix == ".jsonl":
                for line in path.read_text(encoding="utf-8").splitlines():
                    json.loads(line)
            elif path.suffix == ".csv":
                pd.read_csv(path, sep=";")
            elif path.suffix == ".parquet":
                pd.read_parquet(path)
            elif path.suffix in (".jpg", ".png"):
                if not decodes(path):
                    raise ValueError("does not decode")
            elif path.suffix == ".h5":
                with h5py.File(path, "r") as f:
                    for name in f:
                        f[name][...]
        except Exception as e:  # noqa: BLE001 (any failure to read is the finding)
            bad.append(f"{rel}: {type(e).__name__}: {e}")
    return bad


def test_two_crawls_and_a_catalogue_rebuild_at_once(home):
    home_dir, store = home
    t0 = time.monotonic()
    earlier = write_crawl(store, 24, **EARLIER)
    mirror_port, demo_port = free_port(), free_port()
    mirror = start(serve_fashionid, mirror_port)
    try:
        wait_for_port(mirror_port)
        with DagsterInstance.from_config(home_dir) as instance:
            # raw_products is one pool for every shop, one crawl at a time by default; this is
            # what `dagster instance concurrency set raw_products 2` does: two shops at once
            instance.event_log_storage.set_concurrency_slots("raw_products", 2)
        storage = StorageResource(root=str(store))
        crawl = CrawlResource(demo_products=12, demo_port=demo_port, demo_masks=False,
                              timeout_s=150)
        mirror_listing = f"http://127.0.0.1:{mirror_port}{LISTING}"
        runs = [
            start(materialize_in_child, home_dir, [raw_products], {
                "partition_key": "demo", "resources": {"storage": storage, "crawl": crawl}}),
            start(materialize_in_child, home_dir, [raw_products], {
                "partition_key": "fashionid", "resources": {"storage": storage, "crawl": crawl},
                "run_config": {"ops": {"raw_products": {"config": {
                    "start_urls": [mirror_listing]}}}}}),
            start(materialize_in_child, home_dir, CATALOGUE_GROUP, {
                "resources": {"storage": storage}, "run_config": CATALOGUE_CONFIG}),
        ]
        assert finish(runs) == [0, 0, 0]
    finally:
        mirror.kill()
        mirror.join()
    print(f"three runs at once: {time.monotonic() - t0:.1f} s")

    with DagsterInstance.from_config(home_dir) as instance:
        records = instance.get_run_records()
        assert len(records) == 3 and all(r.dagster_run.is_success for r in records)
        # they overlapped: every run started before any ended
        assert max(r.start_time for r in records) < min(r.end_time for r in records)
        crawls = {}
        for record in records:
            run_id = record.dagster_run.run_id
            for event in instance.all_logs(run_id,
                                           of_type=DagsterEventType.ASSET_MATERIALIZATION):
                mat = event.asset_materialization
                meta = {k: v.value for k, v in mat.metadata.items()}
                if mat.partition:
                    crawls[mat.partition] = (meta, step_window(instance, run_id, "raw_products"))
                elif mat.asset_key == catalogue.key:
                    rebuilt = meta
        # the two crawls ran side by side
        (demo, demo_window), (fashionid, fashionid_window) = crawls["demo"], crawls["fashionid"]
        assert max(demo_window[0], fashionid_window[0]) < min(demo_window[1],
                                                              fashionid_window[1])
        assert fashionid["products"] == 2 and demo["products"] >= 8

        # the rebuild made meanwhile read only whole crawls: the earlier one, plus those that
        # had finished; nothing half-written was read and dropped
        assert not TORN & set(rebuilt["drop_reasons"]), rebuilt["drop_reasons"]
        assert rebuilt["shops"]["demo"] >= len(earlier)

        final = materialize([*CATALOGUE_GROUP, catalogue_unique_ids, catalogue_images_decode,
                             catalogue_csv_parquet_agree], instance=instance,
                            resources={"storage": StorageResource(root=str(store))},
                            run_config=CATALOGUE_CONFIG)
        assert final.success
        assert all(c.passed for c in final.get_asset_check_evaluations())

    demo_ids = {json.loads(line)["id"] for path in (store / "raw" / "demo" / "crawls").glob(
        "*.jsonl") for line in path.read_text().splitlines()} - earlier
    assert len(demo_ids) == demo["products"] and all(i.startswith("DS00") for i in demo_ids)
    cat = pd.read_parquet(store / "catalogue" / "catalogue.parquet")
    assert cat["id"].is_unique
    assert set(cat["id"]) == earlier | demo_ids | FASHIONID_IDS
    assert set(cat.loc[cat["shop"] == "fashionid", "id"]) == FASHIONID_IDS
    assert (cat.loc[cat["shop"] == "fashionid", "category"] == "skirts").all()
    with h5py.File(store / "datasets" / "packshots.h5") as f:
        assert len(f["ids"]) == len(cat)
    assert unreadable(store) == []
    print(f"with the final catalogue: {time.monotonic() - t0:.1f} s")


def test_two_runs_of_the_same_asset_take_turns(home):
    """The multiprocess run takes the `catalogue` pool's slot first (its step then starts in a
    process of its own); the in-process run, started while the slot is held, waits for it."""
    home_dir, store = home
    t0 = time.monotonic()
    write_crawl(store, 24, **EARLIER)
    first = start(execute_in_child, home_dir, "multiprocess_catalogue_job", CATALOGUE_CONFIG)
    with DagsterInstance.from_config(home_dir) as instance:
        deadline = time.monotonic() + 60
        while not instance.event_log_storage.get_concurrency_info("catalogue").claimed_slots:
            assert first.is_alive() and time.monotonic() < deadline, "no slot claimed"
            time.sleep(0.2)
        second = start(materialize_in_child, home_dir, [catalogue], {
            "resources": {"storage": StorageResource(root=str(store))},
            "run_config": CATALOGUE_CONFIG})
        assert finish([first, second]) == [0, 0]
        print(f"two runs of catalogue: {time.monotonic() - t0:.1f} s")

        records = instance.get_run_records()
        [multi] = [r for r in records if r.dagster_run.job_name == "catalogue_multiprocess"]
        [inproc] = [r for r in records if r is not multi]
        # the runs overlapped in time, their catalogue steps did not: one after the other
        assert inproc.start_time < multi.end_time
        multi_step = step_window(instance, multi.dagster_run.run_id, "catalogue")
        inproc_step = step_window(instance, inproc.dagster_run.run_id, "catalogue")
        assert multi_step[1] <= inproc_step[0], (multi_step, inproc_step)
        # ... because the in-process run waited for the pool, which the multiprocess run held
        # while its step ran in another process
        waits = [e.message for e in instance.all_logs(
            inproc.dagster_run.run_id, of_type=DagsterEventType.ENGINE_EVENT)
            if "blocked by limit for pool catalogue" in (e.message or "")]
        assert waits
        [step_start] = instance.all_logs(multi.dagster_run.run_id,
                                         of_type=DagsterEventType.STEP_START)
        assert step_start.dagster_event.pid not in (first.pid, None)
        assert not instance.event_log_storage.get_concurrency_info("catalogue").claimed_slots
    assert unreadable(store) == []


def test_writers_replace_files_instead_of_rewriting_them(tmp_path, colour_store):
    """A reader that opened the old file (another run's catalogue, detector, segmentation)
    reads it whole after a writer replaced it; an in-place rewrite would truncate it under
    the reader. Temporaries are unique per writer and none is left."""
    import mlflow
    from scrapy.utils.test import get_crawler

    from pipelines.assets.model_images import FrontViewConfig, front_model_images
    from pipelines.assets.training import LeaderboardConfig, gan_leaderboard
    from scrapers.demo_shop import draw
    from scrapers.pipelines import ProductImagesPipeline
    from training.checkpoint import save_checkpoint
    from training.classifier import ClassifierResult, save_classifier
    from training.descriptions import Vocabulary
    from training.human_parser import save_parser
    from training.models.classifier import AttributeClassifier
    from training.models.dcgan import define_G
    from training.models.parser import UNetParser
    from training.paths import StoreLayout
    from training.robustness import RobustnessResult, write_robustness
    from training.tracking import log_generator, mlflow_run
    from training.translator_board import translator_board

    old = b"old content, long enough to notice a truncation" * 100

    def reads_old_whole(paths: Path | list[Path], rewrite) -> bool:
        """Every path's old content is read whole through a reader opened before `rewrite`,
        and every path holds new content after it."""
        paths = [paths] if isinstance(paths, Path) else paths
        with contextlib.ExitStack() as stack:
            readers = []
            for path in paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(old)
                readers.append(stack.enter_context(path.open("rb")))
            rewrite()
            return all(r.read() == old and p.read_bytes() != old
                       for r, p in zip(readers, paths, strict=True))

    images = ProductImagesPipeline.from_crawler(
        get_crawler(settings_dict={"IMAGES_STORE": str(tmp_path / "images")}))
    image = tmp_path / "images" / "full" / "a.jpg"
    assert reads_old_whole(image, lambda: images.store.persist_file(
        "full/a.jpg", io.BytesIO(b"new image"), info=None))

    truth = tmp_path / "raw" / "demo" / "truth.json"
    shop = DemoShop(n_products=2, seed=0)
    assert reads_old_whole(truth, lambda: write_truth(shop, truth, masks=True))
    mask = next((truth.parent / "truth_masks").glob("*.png"))
    assert reads_old_whole(mask, lambda: write_truth(shop, truth, masks=True))

    meta = tmp_path / "raw" / "demo" / "crawls" / "x.meta.json"
    assert reads_old_whole(meta, lambda: write_text_atomically(meta, "{}"))
    table = tmp_path / "catalogue" / "catalogue.csv"
    assert reads_old_whole(table, lambda: write_atomically({table: lambda p: p.write_text("a")}))

    # front_model_images through Dagster: its choice (Parquet) and clusters preview, on a
    # catalogue of 6 demo products' model photos
    layout = StoreLayout(tmp_path / "store")
    shop, rows = DemoShop(n_products=6, seed=0), []
    for product in shop.products:
        urls = shop.image_urls(product)[1]
        paths = [f"raw/demo/images/full/{product.id}-{k}.jpg" for k in range(len(urls))]
        for k, rel in enumerate(paths):
            (layout.root / rel).parent.mkdir(parents=True, exist_ok=True)
            (layout.root / rel).write_bytes(draw.jpeg(draw.model_photo(product, k)[0]))
        rows.append({"id": product.id, "model_img_urls": urls, "model_img_paths": paths})
    layout.catalogue_dir.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(layout.catalogue_dir / "catalogue.parquet")
    storage = StorageResource(root=str(layout.root))
    assert reads_old_whole([layout.front_model_images, layout.clusters_preview],
                           lambda: materialize([front_model_images], resources={
                               "storage": storage}, run_config={"ops": {"front_model_images": {
                                   "config": FrontViewConfig(k=2, workers=1).model_dump()}}}))
    assert len(pd.read_parquet(layout.front_model_images)) == 6

    # the robustness sweep's csv, md and curves (a table as sweep_registered leaves it)
    sweep = pd.DataFrame([{"model": "fashion-classifier-conv v1", "attack": attack, "eps": eps,
                           "head": head, "accuracy": 0.9 - eps}
                          for attack in ("fgsm", "pgd") for eps in (0.0, 0.1)
                          for head in ("color", "mean")])
    timings = pd.DataFrame([{"model": "fashion-classifier-conv v1", "data": "packshots",
                             "images": 8, "sweep_s": 0.1}])
    out = layout.evaluation_dir
    assert reads_old_whole([out / f"robustness.{e}" for e in ("csv", "md", "png")],
                           lambda: write_robustness(RobustnessResult(sweep, timings), out))
    assert (out / "robustness.png").read_bytes().startswith(b"\x89PNG")

    # the leaderboards, on a registry holding one untrained DCGAN (nothing trains here): the
    # translators' table (empty: no translator registered) and gan_leaderboard through Dagster
    uri, artifacts = f"sqlite:///{tmp_path}/mlflow.db", str(tmp_path / "artifacts")
    assert reads_old_whole([out / "translators.md", out / "translators.csv"],
                           lambda: translator_board(mlflow.MlflowClient(uri), out))
    with mlflow_run("register", uri, artifacts):
        log_generator(define_G(16, 8), "dcgan", 16, {"variant": "baseline", "kind": "sampler"})
    # the model files a later step or the leaderboard reads while another run rewrites them
    classifier = ClassifierResult(AttributeClassifier({"color": 2}, width=4),
                                  {"color": ["black", "white"]}, {}, 0.0)
    assert reads_old_whole(layout.attribute_classifier, lambda: save_classifier(
        classifier, layout.attribute_classifier, width=4))
    parser = layout.root / "models" / "human_parser.pt"
    assert reads_old_whole(parser, lambda: save_parser(UNetParser(width=4, depth=1), parser))
    vocabulary = layout.root / "models" / "description_encoder.vocab.json"
    assert reads_old_whole(vocabulary, lambda: Vocabulary(["<pad>", "<unk>", "a"]).save(vocabulary))
    checkpoint = layout.root / "runs" / "dcgan" / "1" / "checkpoint.pt"
    assert reads_old_whole(checkpoint, lambda: save_checkpoint(
        checkpoint, 1, {"G": define_G(16, 8)}, {}, {}, {}))
    layout.packshots.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(colour_store, layout.packshots)
    board = [out / "leaderboard.md", out / "leaderboard.csv", out / "champions.png"]
    assert reads_old_whole(board, lambda: materialize([gan_leaderboard], resources={
        "storage": storage, "mlflow": MLflowResource(tracking_uri=uri, artifact_root=artifacts)},
        run_config={"ops": {"gan_leaderboard": {"config": LeaderboardConfig(
            samples=10).model_dump()}}}))
    assert "| dcgan" in board[0].read_text(encoding="utf-8")
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_every_asset_writing_the_store_is_in_a_pool():
    """Every asset writes the store, so two materialisations of one must never overlap: a
    training step is in the shared `gpu` pool, every other asset in a pool of its own name
    (dagster.yaml gives each a limit of 1). An asset added without one fails here."""
    from dagster import AssetsDefinition

    from pipelines.assets.pools import POOL, TRAINING_TAG
    from pipelines.definitions import defs

    assets = [a for a in defs.assets if isinstance(a, AssetsDefinition) and a.is_executable]
    assert len(assets) > 40  # every family's asset is here, not only the light ones
    wrong = {}
    for asset_def in assets:
        name = asset_def.key.path[-1]
        training = asset_def.op.tags.items() >= TRAINING_TAG.items()
        if asset_def.op.pool != (POOL if training else name):
            wrong[name] = asset_def.op.pool
    assert wrong == {}, f"assets without their pool (expected gpu for training, else the " \
                        f"asset's name): {wrong}"


def test_start_urls_are_checked_before_any_crawl():
    from pydantic import ValidationError

    from pipelines.assets.scrape import ScrapeConfig

    assert ScrapeConfig().start_urls == []
    url = "http://127.0.0.1:8800/damen/kleider/rot/"
    assert ScrapeConfig(start_urls=[url]).start_urls == [url]
    for bad, why in (("not-a-url", "not an absolute http"), ("http://a/x,y", "comma")):
        with pytest.raises(ValidationError, match=why):
            ScrapeConfig(start_urls=[bad])
