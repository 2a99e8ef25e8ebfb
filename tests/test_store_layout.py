"""The store layout (every output named once, as the README lists it), the one atomic HDF5
writer, and the library functions the segmentation and person-detector assets call."""

import re

import h5py
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipelines.processing.demo_truth import annotated_photos, load_truth
from pipelines.processing.h5store import atomic_h5, read_image_store, write_image_store
from pipelines.processing.person_detector import (
    detector_training_split,
    held_out,
    heldout_scores,
    load_detector,
    save_detector,
    train_on_samples,
)
from pipelines.processing.segmentation import (
    SIZE,
    crop_person,
    export_fashiongan,
    import_fashiongan,
    segmentations_from_demo,
    write_store,
)
from pipelines.resources import StorageResource
from scrapers.demo_shop import DemoShop, draw, write_truth
from training.paths import (
    REPO_ROOT,
    StoreLayout,
    mlflow_artifact_root,
    mlflow_tracking_uri,
    store_layout,
)

# ---- the layout ---------------------------------------------------------------------------

# each line of the README's "Where outputs land" block (placeholders filled in as below) ->
# the layout path it is, or the layout folder it lies in
README_ENTRIES = {
    "raw/demo/crawls/X.jsonl": lambda lay: lay.crawls("demo"),
    "raw/demo/crawls/X.stats.json": lambda lay: lay.crawls("demo"),
    "raw/demo/crawls/X.meta.json": lambda lay: lay.crawls("demo"),
    "raw/demo/logs/X.log": lambda lay: lay.crawl_logs("demo"),
    "raw/demo/images/full/X.jpg": lambda lay: lay.images("demo"),
    "raw/demo/truth.json": lambda lay: lay.truth("demo"),
    "httpcache/": lambda lay: lay.httpcache,
    "catalogue/catalogue.csv": lambda lay: lay.catalogue_csv,
    "catalogue/catalogue.parquet": lambda lay: lay.catalogue_parquet,
    "catalogue/images/X/X.jpg": lambda lay: lay.catalogue_images,
    "catalogue/img_attr.csv": lambda lay: lay.img_attr_csv,
    "catalogue/splits.csv": lambda lay: lay.splits_csv,
    "catalogue/translation_report.json": lambda lay: lay.translation_report,
    "model_images/front_model_images.parquet": lambda lay: lay.front_model_images,
    "models/person_detector.pt": lambda lay: lay.person_detector,
    "datasets/person_crops.h5": lambda lay: lay.person_crops,
    "datasets/segmentation.h5": lambda lay: lay.segmentation,
    "datasets/packshots.h5": lambda lay: lay.packshots,
    "datasets/paired_images.h5": lambda lay: lay.paired_images,
    "datasets/descriptions.h5": lambda lay: lay.descriptions,
    "models/description_encoder.pt": lambda lay: lay.description_encoder,
    "models/human_parser.pt": lambda lay: lay.human_parser,
    "runs/dcgan/0123abcd/": lambda lay: lay.runs("dcgan", "0123abcd-ef45-6789"),
    "models/attribute_classifier.pt": lambda lay: lay.attribute_classifier,
    "evaluation/leaderboard.md": lambda lay: lay.leaderboard_md,
    "evaluation/scores.parquet": lambda lay: lay.scores,
    "evaluation/champions.png": lambda lay: lay.champions_png,
    "evaluation/translators.md": lambda lay: lay.evaluation_dir,  # translator_board
    "evaluation/robustness.csv": lambda lay: lay.evaluation_dir,  # write_robustness
    "dagster_home/": lambda lay: lay.dagster_home,
    "mlflow/": lambda lay: lay.mlflow_dir,
}
PLACEHOLDERS = {"<shop>": "demo", "<asset>": "dcgan", "<run id[:8]>": "0123abcd"}


def readme_outputs() -> list[str]:
    """The first path of each entry line of the README's "Where outputs land" block."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("## Where outputs land", 1)[1].split("```")[1]
    out = []
    for line in block.splitlines():
        if not re.match(r"^  \S", line):  # the root line and continuation lines
            continue
        for key, value in PLACEHOLDERS.items():
            line = line.replace(key, value)
        out.append(re.sub(r"<[^>]*>", "X", line).split()[0])
    return out


def test_layout_names_every_output_the_readme_lists(tmp_path):
    layout = StoreLayout(tmp_path)
    assert sorted(readme_outputs()) == sorted(README_ENTRIES)
    for entry, named in README_ENTRIES.items():
        path, target = tmp_path / entry, named(layout)
        assert path == target or target in path.parents, (entry, target)
    # the siblings the README names on the same line
    assert layout.img_attr == tmp_path / "catalogue/img_attr.parquet"
    assert layout.splits == tmp_path / "catalogue/splits.parquet"
    assert layout.leaderboard_csv == tmp_path / "evaluation/leaderboard.csv"
    assert layout.clusters_preview == layout.front_model_images.with_name("clusters_preview.jpg")
    assert layout.dataset("fashion_mnist") == tmp_path / "datasets/fashion_mnist.h5"
    assert layout.file("raw/demo/images/full/a.jpg") == tmp_path / "raw/demo/images/full/a.jpg"


def test_truth_masks_are_where_the_demo_shop_writes_them(tmp_path):
    layout = StoreLayout(tmp_path)
    write_truth(DemoShop(2, 0), layout.truth("demo"), masks=True)
    assert layout.truth("demo").is_file()
    assert layout.truth_masks("demo").is_dir() and any(layout.truth_masks("demo").iterdir())


def test_storage_resource_and_env_follow_one_layout(tmp_path, monkeypatch):
    storage = StorageResource(root=str(tmp_path))
    assert storage.layout == StoreLayout(tmp_path)
    assert storage.layout.packshots == tmp_path / "datasets" / "packshots.h5"
    assert storage.path("anything", "else.txt") == tmp_path / "anything" / "else.txt"
    monkeypatch.setenv("FASHION_GAN_STORE", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    layout = store_layout()
    assert layout.root == tmp_path / "elsewhere"
    assert mlflow_tracking_uri() == f"sqlite:///{layout.mlflow_db}"
    assert mlflow_artifact_root() == layout.mlflow_artifacts == layout.mlflow_dir / "artifacts"


# ---- atomic HDF5 writes ----------------------------------------------------------------------

def leftovers(folder, keep):
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


def test_atomic_h5_failure_keeps_the_previous_file(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (4, 16, 16, 3), dtype=np.uint8)
    path = write_image_store(tmp_path / "store.h5", list("abcd"), images)
    before = path.read_bytes()
    # a real writer failing midway: the images are written, then an extra has the wrong rows
    with pytest.raises(ValueError, match="rows for 4 ids"):
        write_image_store(path, list("wxyz"), images[::-1], {"boxes": np.zeros((3, 4))})
    assert path.read_bytes() == before
    assert leftovers(tmp_path, {"store.h5"}) == []
    # any exception, an interrupt included, inside the block
    for error in (RuntimeError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(error)), atomic_h5(path) as f:
            f.create_dataset("half", data=np.zeros(10))
            raise error
        assert path.read_bytes() == before
        assert leftovers(tmp_path, {"store.h5"}) == []
    assert read_image_store(path)["ids"] == list("abcd")


def test_atomic_h5_success_replaces_and_creates_folders(tmp_path):
    path = tmp_path / "new" / "deeper" / "x.h5"
    with atomic_h5(path) as f:
        f.create_dataset("a", data=np.arange(3))
        assert not path.exists()  # readers see nothing until the block ends
    with atomic_h5(path) as f:
        f.create_dataset("b", data=np.arange(4))
    with h5py.File(path, "r") as f:
        assert list(f) == ["b"]
    assert leftovers(path.parent, {"x.h5"}) == []


def test_segmentation_writers_are_atomic(tmp_path):
    labels = np.zeros((2, SIZE, SIZE), np.uint8)
    labels[:, 40:90, 50:80] = 4
    images = np.full((2, SIZE, SIZE, 3), 200, np.uint8)
    store = write_store(tmp_path / "seg.h5", ["a", "b"], images, labels)
    exported = export_fashiongan(store, tmp_path / "seg_fg.h5")
    ids, _, back = import_fashiongan(exported)
    assert ids == ["a", "b"] and np.array_equal(back, labels)
    before = store.read_bytes()
    with pytest.raises(ValueError):
        write_store(store, ["a"], images, labels)
    assert store.read_bytes() == before
    assert leftovers(tmp_path, {"seg.h5", "seg_fg.h5"}) == []


# ---- the demo's segmentations and the detector's samples --------------------------------------

@pytest.fixture(scope="module")
def demo_store(tmp_path_factory):
    """A store holding what the demo crawl and front_model_images leave: truth.json, its
    masks, every model photo under raw/demo/images/full/, and a photo table (id, image_path,
    image_url) of every model photo."""
    root = tmp_path_factory.mktemp("store")
    layout = StoreLayout(root)
    shop = DemoShop(24, 0)
    write_truth(shop, layout.truth("demo"), masks=True)
    full = layout.images("demo") / "full"
    full.mkdir(parents=True)
    rows = []
    for p in shop.products:
        for k, url in enumerate(shop.image_urls(p)[1]):
            photo, _ = draw.model_photo(p, k)
            rel = f"raw/demo/images/full/{p.id}-{k}.jpg"
            (root / rel).write_bytes(draw.jpeg(photo))
            rows.append({"id": p.id, "image_path": rel, "image_url": url})
    return layout, pd.DataFrame(rows)


def test_segmentations_from_demo(demo_store):
    layout, photos = demo_store
    truth = load_truth(layout.truth("demo"))
    fronts = photos.groupby("id").head(1).reset_index(drop=True).head(6).copy()
    # one photo the truth does not know, one whose mask is gone, one that does not decode
    fronts.loc[0, "image_url"] = "/img/unknown/model-0.jpg"
    gone = layout.truth_masks("demo") / "gone.png"
    truth = {**truth}
    pid1 = fronts.loc[1, "id"]
    truth[pid1] = {**truth[pid1], "model_photos": [
        {**ph, "mask": "gone.png"} if ph["url"] == fronts.loc[1, "image_url"] else ph
        for ph in truth[pid1]["model_photos"]]}
    assert not gone.exists()
    broken = layout.root / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    fronts.loc[2, "image_path"] = "broken.jpg"
    ids, images, labels, drops = segmentations_from_demo(fronts, truth, layout.truth_masks(),
                                                         layout.root)
    assert drops == {"no_mask": 2, "unreadable": 1}
    assert ids == list(fronts["id"][3:])
    assert images.shape == (3, SIZE, SIZE, 3) and labels.shape == (3, SIZE, SIZE)
    # the same crop the asset made in place
    row = fronts.iloc[3]
    mask = next(ph["mask"] for ph in truth[row["id"]]["model_photos"]
                if ph["url"] == row["image_url"])
    expected = crop_person(np.asarray(Image.open(layout.root / row["image_path"])
                                      .convert("RGB")),
                           np.asarray(Image.open(layout.truth_masks() / mask)))
    assert np.array_equal(images[0], expected[0]) and np.array_equal(labels[0], expected[1])
    # nothing usable: empty arrays of the right shape
    ids, images, labels, drops = segmentations_from_demo(fronts.head(1), truth,
                                                         layout.truth_masks(), layout.root)
    assert ids == [] and images.shape == (0, SIZE, SIZE, 3) and labels.shape == (0, SIZE, SIZE)


def test_detector_training_split(demo_store):
    layout, photos = demo_store
    samples = annotated_photos(photos, load_truth(layout.truth("demo")))
    assert len(samples) == len(photos)
    train, test = detector_training_split(samples, seed=3, holdout=0.3)
    train_ids, test_ids = {s[0] for s in train}, {s[0] for s in test}
    assert train and test and not train_ids & test_ids  # split by product
    assert all(s[2]["view"] == "front" for s in test)
    assert train == [s for s in samples if not held_out(s[0], 3, 0.3)]
    assert test == [s for s in samples if held_out(s[0], 3, 0.3) and s[2]["view"] == "front"]
    capped, same_test = detector_training_split(samples, seed=3, holdout=0.3,
                                                max_train_photos=10)
    assert same_test == test and len(capped) == 10
    assert capped == [s for s in train if s in capped]  # a subset, in the original order
    assert detector_training_split(samples, 3, 0.3, 10)[0] == capped  # seeded
    assert detector_training_split(samples, 3, 0.3, len(train))[0] == train
    assert detector_training_split([], 0, 0.2, 5) == ([], [])


def test_detector_trains_and_scores_from_the_store(demo_store, tmp_path):
    layout, photos = demo_store
    samples = annotated_photos(photos, load_truth(layout.truth("demo")))
    train, test = detector_training_split(samples, seed=0, holdout=0.3, max_train_photos=12)
    lines = []
    model, meta = train_on_samples(train, layout.root, steps=2, batch_size=2, seed=0,
                                   log=lines.append)
    assert set(meta) == {"trained_on", "train_photos", "steps", "train_wall_s", "final_loss",
                         "device"}
    assert meta["train_photos"] == 12 and meta["steps"] == 2 and lines
    _, loaded = load_detector(save_detector(model, "demo_small", tmp_path / "d.pt", meta))
    assert loaded == {**meta, "variant": "demo_small"}
    scores = heldout_scores(model, test, layout.root, min_score=0.0)
    assert set(scores) == {"heldout_front_photos", "heldout_mean_iou", "heldout_recall"}
    assert scores["heldout_front_photos"] == len(test)
    assert 0.0 <= scores["heldout_mean_iou"] <= 1.0 and 0.0 <= scores["heldout_recall"] <= 1.0
