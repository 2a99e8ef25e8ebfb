"""Front-view selection, the person detector and crops, and the segmentation store, without
Dagster."""

import io

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.processing.front_view import FEATURES, load_thumbnail, photo_features, select_front
from pipelines.processing.h5store import read_image_store, write_image_store
from pipelines.processing.person_detector import (
    VARIANTS,
    DetectorWeightsError,
    box_ious,
    build_detector,
    crop_people,
    crop_square,
    detect_people,
    evaluate_detector,
    load_detector,
    save_detector,
    train_detector,
)
from pipelines.processing.segmentation import (
    COARSE,
    N_CLASSES,
    SIZE,
    SegmentationDataset,
    coarse_map,
    crop_person,
    export_fashiongan,
    import_fashiongan,
    one_hot,
    read_ids,
    write_store,
)
from scrapers.demo_shop.catalog import make_catalog
from scrapers.demo_shop.draw import jpeg, model_photo


def demo_photos(n: int, seed: int = 0):
    """(product ids, views, RGB arrays, label maps) of every model photo of n demo products."""
    ids, views, photos, labels = [], [], [], []
    for p in make_catalog(n, seed):
        for k, view in enumerate(p.views):
            photo, label = model_photo(p, k)
            # through JPEG, as the crawled files are
            photos.append(np.asarray(Image.open(io.BytesIO(jpeg(photo))).convert("RGB")))
            labels.append(np.asarray(label))
            ids.append(p.id)
            views.append(view)
    return ids, views, photos, labels


@pytest.fixture(scope="module")
def photos():
    return demo_photos(60)


def test_front_view_selection_on_demo(photos, tmp_path):
    ids, views, images, _ = photos
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(image).save(paths[-1], quality=90)
    feats = [photo_features(load_thumbnail(p)) for p in paths]
    named = np.stack([f[0] for f in feats])
    coarse = np.stack([f[1] for f in feats])
    assert named.shape == (len(paths), len(FEATURES))
    model, best = select_front(ids, named, coarse, k=8, seed=0)
    assert set(best) == set(ids)
    accuracy = np.mean([views[i] == "front" for i, _, _ in best.values()])
    assert accuracy >= 0.9  # the benchmark measures >= 0.95 on 200 and 1000 products
    # seeded: the same photos give the same choices
    assert select_front(ids, named, coarse, k=8, seed=0)[1] == best


def test_detector_variants_build_and_weights_errors(tmp_path):
    for variant in VARIANTS:
        assert build_detector(variant) is not None
    with pytest.raises(DetectorWeightsError, match="weights='coco'"):
        load_detector(None)
    with pytest.raises(DetectorWeightsError, match="does not exist"):
        load_detector(tmp_path / "missing.pt")
    with pytest.raises(ValueError):
        build_detector("yolo")


def test_detector_trains_saves_and_loads(photos, tmp_path):
    ids, views, images, labels = photos
    boxes = []
    for label in labels:
        ys, xs = np.nonzero(label)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    result = train_detector(images[:40], boxes[:40], steps=3, batch_size=2, seed=0)
    assert len(result.losses) == 3 and all(np.isfinite(result.losses))
    path = save_detector(result.model, "demo_small", tmp_path / "det.pt", {"steps": 3})
    model, meta = load_detector(path)
    assert meta == {"variant": "demo_small", "steps": 3}
    for a, b in zip(result.model.state_dict().values(), model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    found = detect_people(model, images[:4], batch_size=2, min_score=0.0)
    assert len(found) == 4
    for hit in found:
        assert hit is None or (hit[0].shape == (4,) and 0.0 <= hit[1] <= 1.0)
    scores = evaluate_detector(model, images[:4], boxes[:4], min_score=0.0)
    assert scores["photos"] == 4
    assert all(0.0 <= scores[k] <= 1.0 for k in ("mean_iou", "iou_over_half", "recall"))
    # crop_people over files: a broken file is counted, every other photo accounted for
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.jpg")
        Image.fromarray(images[i]).save(paths[-1])
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    crops = crop_people(model, [(i, p) for i, p in enumerate(paths + [tmp_path / "broken.jpg"])],
                        size=32, batch_size=2, min_score=0.0, chunk=2)
    assert crops.drops["unreadable"] == 1
    assert len(crops.keys) + crops.drops["no_person"] == 3
    assert all(c.shape == (32, 32, 3) for c in crops.images)


def test_crop_square_and_iou():
    image = np.full((100, 60, 3), 200, np.uint8)
    image[20:80, 20:40] = (10, 20, 30)
    crop = crop_square(image, [20, 20, 40, 80], size=64, margin=0.0)
    assert crop.shape == (64, 64, 3) and crop.dtype == np.uint8
    assert tuple(crop[32, 32]) == (10, 20, 30)  # the person in the middle
    assert tuple(crop[32, 2]) == (200, 200, 200)  # padded with the background colour
    assert box_ious([[0, 0, 10, 10]], [[0, 0, 10, 10]])[0] == pytest.approx(1.0)
    assert box_ious([[0, 0, 10, 10]], [[5, 0, 15, 10]])[0] == pytest.approx(1 / 3)


def test_image_store_round_trip(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    path = write_image_store(tmp_path / "c.h5", [f"P{i}" for i in range(5)], images,
                             {"boxes": np.ones((5, 4), np.float32),
                              "scores": np.ones(5, np.float32)})
    store = read_image_store(path)
    assert store["ids"] == [f"P{i}" for i in range(5)]
    assert np.array_equal(store["images"], images)
    with h5py.File(path) as f:
        assert f["images"].chunks == (1, 64, 64, 3) and f["images"].compression == "gzip"
    with pytest.raises(ValueError):
        write_image_store(tmp_path / "bad.h5", ["a"], images)


@pytest.fixture(scope="module")
def segmentations(photos):
    ids, views, images, labels = photos
    front = [i for i, v in enumerate(views) if v == "front"]
    crops = [crop_person(images[i], labels[i]) for i in front]
    return ([ids[i] for i in front], np.stack([c[0] for c in crops]),
            np.stack([c[1] for c in crops]))


def test_segmentation_store_is_lossless(segmentations, tmp_path):
    ids, images, labels = segmentations
    assert labels.shape == (len(ids), SIZE, SIZE) and set(np.unique(labels)) <= set(range(7))
    path = write_store(tmp_path / "seg.h5", ids, images, labels)
    assert read_ids(path) == ids
    ds = SegmentationDataset(path)
    assert len(ds) == len(ids)
    for i in (0, len(ids) - 1, len(ids) // 2):  # random access
        onehot, image, coarse = ds[i]
        assert onehot.shape == (N_CLASSES, SIZE, SIZE) and onehot.dtype == torch.float32
        assert torch.equal(onehot.argmax(0).to(torch.uint8), torch.from_numpy(labels[i]))
        assert torch.all(onehot.sum(0) == 1)
        assert image.shape == (3, SIZE, SIZE) and -1.0 <= image.min() and image.max() <= 1.0
        assert coarse.shape == (COARSE, COARSE) and int(coarse.max()) <= 3
    assert np.array_equal(one_hot(labels).argmax(1), labels)
    with h5py.File(path) as f:
        assert f["labels"].chunks == (1, SIZE, SIZE) and f["labels"].compression == "gzip"
        stored = f["labels"].id.get_storage_size() / len(ids)
    assert stored * 50 < N_CLASSES * SIZE * SIZE * 4  # >= 50x smaller than 7 x float32


def test_coarse_map_majority():
    labels = np.zeros((1, SIZE, SIZE), np.uint8)
    labels[0, :16, :16] = 2  # hair -> coarse 1
    labels[0, :16, 16:32] = 1  # face -> coarse 2
    labels[0, 16:32, :16] = 5  # lower clothes -> rest (3)
    coarse = coarse_map(labels)
    assert coarse.shape == (1, 8, 8)
    assert coarse[0, 0, 0] == 1 and coarse[0, 0, 1] == 2 and coarse[0, 1, 0] == 3
    assert coarse[0, 7, 7] == 0


def test_fashiongan_layout_round_trip(segmentations, tmp_path):
    ids, images, labels = segmentations
    store = write_store(tmp_path / "seg.h5", ids, images, labels)
    exported = export_fashiongan(store, tmp_path / "G2.h5")
    with h5py.File(exported) as f:
        assert f["b_"].shape == (len(ids), 1, SIZE, SIZE)
        assert f["ih"].shape == (len(ids), 3, SIZE, SIZE)
        assert f["ih_mean"].shape == (3, SIZE, SIZE)
        b, ih, mean = f["b_"][:], f["ih"][:], f["ih_mean"][:]
    got_ids, got_images, got_labels = import_fashiongan(exported)
    assert got_ids == ids
    assert np.array_equal(got_labels, labels) and np.array_equal(got_images, images)
    again = export_fashiongan(write_store(tmp_path / "seg2.h5", got_ids, got_images,
                                          got_labels), tmp_path / "G2b.h5")
    with h5py.File(again) as f:
        assert np.array_equal(f["b_"][:], b)
        assert np.allclose(f["ih"][:], ih, atol=1e-6)
        assert np.allclose(f["ih_mean"][:], mean, atol=1e-6)


def test_demo_small_loads_at_the_size_it_was_trained_at(tmp_path):
    """The input size is part of a demo_small file (160x240 today); a file written before the
    size was recorded was trained at 240x360 and loads at that size, not at today's."""
    from pipelines.processing.person_detector import (
        DEMO_SMALL_SIZE,
        LEGACY_DEMO_SMALL_SIZE,
        build_detector,
        load_detector,
        save_detector,
    )
    from training.checkpoint import save_plain

    def size(model):
        return {"min_size": model.transform.min_size[0], "max_size": model.transform.max_size}

    model = build_detector("demo_small")
    assert size(model) == DEMO_SMALL_SIZE
    model, _ = load_detector(save_detector(model, "demo_small", tmp_path / "today.pt"))
    assert size(model) == DEMO_SMALL_SIZE
    bigger = build_detector("demo_small", min_size=200, max_size=300)
    model, _ = load_detector(save_detector(bigger, "demo_small", tmp_path / "big.pt"))
    assert size(model) == {"min_size": 200, "max_size": 300}
    old = save_plain({"variant": "demo_small", "build_kwargs": {},
                      "state_dict": bigger.state_dict(), "meta": {}}, tmp_path / "old.pt")
    model, _ = load_detector(old)
    assert size(model) == LEGACY_DEMO_SMALL_SIZE
