"""The human parser (training/human_parser.py): its checks of the segmentation store, the scores,
training, save/load with weights_only, the real-photo path (detector box -> the store's crop ->
label maps written in the store's layout, which the ICCV17 export still reads), and the
`human_parser` asset through Dagster's materialize. Real demo drawings, real HDF5 files."""

import io
import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from dagster import materialize
from PIL import Image

from pipelines.assets.fashiongan import HumanParserConfig, human_parser
from pipelines.processing.h5store import write_image_store
from pipelines.processing.segmentation import (
    SIZE,
    SegmentationDataset,
    crop_person,
    export_fashiongan,
    import_fashiongan,
    write_store,
)
from pipelines.resources import MLflowResource, StorageResource
from scrapers.demo_shop.catalog import make_catalog
from scrapers.demo_shop.draw import jpeg, model_photo
from training.checkpoint import UnsafeFileError
from training.human_parser import (
    PARSED_SOURCE,
    SegmentationStoreError,
    class_weights,
    confusion,
    crop_photo,
    crop_window,
    load_parser,
    main,
    parse,
    parse_photos,
    read_segmentation,
    save_parser,
    score_against_masks,
    scores,
    split_ids,
    train_parser,
    write_parsed,
)
from training.models.parser import UNetParser
from training.paths import StoreLayout

N = 24  # demo products


def front_photo(product) -> tuple[np.ndarray, np.ndarray]:
    """(RGB photo through JPEG, as crawled; its 7-class label map) of the front view."""
    photo, label = model_photo(product, product.views.index("front"))
    return (np.asarray(Image.open(io.BytesIO(jpeg(photo))).convert("RGB")),
            np.asarray(label))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo's front photos and masks (full size) and the segmentation store built from
    them as segmentation_store builds it (crop_person + write_store)."""
    folder = tmp_path_factory.mktemp("parser")
    products = make_catalog(N, 0)
    photos, masks, crops, labels = [], [], [], []
    for p in products:
        photo, mask = front_photo(p)
        image, label = crop_person(photo, mask)
        photos.append(photo)
        masks.append(mask)
        crops.append(image)
        labels.append(label)
    ids = [p.id for p in products]
    store = write_store(folder / "segmentation.h5", ids, np.stack(crops), np.stack(labels))
    return {"folder": folder, "ids": ids, "photos": photos, "masks": masks, "store": store,
            "images": np.stack(crops), "labels": np.stack(labels)}


@pytest.fixture(scope="module")
def trained(demo):
    return train_parser(read_segmentation(demo["store"]), steps=3, batch_size=4, seed=0)


# ---- bad input -----------------------------------------------------------------------------

def write_raw(path, ids, labels, images=None):
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=labels)
        if images is not None:
            f.create_dataset("images", data=images)
        f.create_dataset("ids", data=np.array(ids, dtype=object),
                         dtype=h5py.string_dtype("utf-8"))
    return path


def test_labels_outside_the_seven_classes_are_refused_naming_count_and_first_id(demo,
                                                                                tmp_path):
    labels = demo["labels"].copy()
    labels[3, 5, 5] = 9
    labels[7, 0, 0] = 255
    path = write_raw(tmp_path / "bad.h5", demo["ids"], labels, demo["images"])
    with pytest.raises(SegmentationStoreError, match=rf"2 of {N} label maps .* outside 0-6 "
                                                     rf"\(up to 255\); the first is product "
                                                     f"'{demo['ids'][3]}'"):
        read_segmentation(path)


def test_a_store_without_images_is_refused_naming_count_and_first_id(demo, tmp_path):
    path = write_raw(tmp_path / "noimages.h5", demo["ids"], demo["labels"])
    with pytest.raises(SegmentationStoreError, match=rf"no images: its {N} label maps \(the "
                                                     rf"first is product '{demo['ids'][0]}'\)"):
        read_segmentation(path)
    blank = demo["images"].copy()
    blank[[4, 9]] = 0
    path = write_raw(tmp_path / "blank.h5", demo["ids"], demo["labels"], blank)
    with pytest.raises(SegmentationStoreError, match=rf"2 of {N} images .* blank .* first is "
                                                     f"product '{demo['ids'][4]}'"):
        read_segmentation(path)
    with pytest.raises(FileNotFoundError, match="segmentation_store"):
        read_segmentation(tmp_path / "missing.h5")


def test_the_cli_reports_bad_input_in_one_line(demo, tmp_path, capsys):
    path = write_raw(tmp_path / "noimages.h5", demo["ids"], demo["labels"])
    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(path)])
    assert exit_.value.code == 2
    assert f"no images: its {N} label maps" in capsys.readouterr().err


# ---- scores, training, save/load ------------------------------------------------------------

def test_scores_are_pixel_accuracy_and_iou_per_class():
    truth = np.zeros((1, 4, 4), np.uint8)
    truth[0, :2] = 1  # 8 face pixels, 8 background
    pred = truth.copy()
    pred[0, 0, :2] = 0  # 2 face pixels called background
    s = scores(confusion(pred, truth))
    assert s["pixel_accuracy"] == 14 / 16
    assert s["iou"]["face"] == 6 / 8 and s["iou"]["background"] == 8 / 10
    assert s["iou"]["hair"] is None  # in neither: no IoU, not in the mean
    assert s["miou"] == round((6 / 8 + 8 / 10) / 2, 4)


def test_class_weights_lift_the_small_classes(demo):
    w = class_weights(demo["labels"])
    assert w[0] < 1 < w[1] and w[2] > 1 and w.max() <= 10  # background down, face/hair up


def test_split_holds_products_out_by_id_and_both_sides_are_non_empty(demo):
    train, test = split_ids(demo["ids"], 0, 0.2)
    assert len(test) and len(train) and not set(train) & set(test)
    assert sorted([*train, *test]) == list(range(N))
    again, _ = split_ids(demo["ids"] + ["DS00999999"], 0, 0.2)  # stable when the store grows
    assert set(train) <= set(again)


def test_train_scores_held_out_products_and_saves_loads_with_weights_only(demo, trained,
                                                                          tmp_path):
    s = trained.scores
    assert set(s) >= {"pixel_accuracy", "miou", "iou", "samples"}
    assert 0 <= s["pixel_accuracy"] <= 1 and 0 <= s["miou"] <= 1
    assert s["samples"] == len(trained.test_ids) and not set(trained.test_ids) & set(
        trained.train_ids)
    path = save_parser(trained.model, tmp_path / "parser.pt", s, {"steps": 3})
    model, info = load_parser(path)
    assert info["scores"]["pixel_accuracy"] == s["pixel_accuracy"]
    a, b = parse(trained.model, demo["images"][:4]), parse(model, demo["images"][:4])
    assert a.shape == (4, SIZE, SIZE) and a.dtype == np.uint8 and np.array_equal(a, b)
    # any size in, 128x128 label maps out
    assert parse(model, demo["images"][:2, ::2, ::2]).shape == (2, SIZE, SIZE)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not written by save_parser"):
        load_parser(tmp_path / "other.pt")
    torch.save({"state_dict": {}, "config": {"width": 8}, "x": UNetParser}, tmp_path / "evil.pt")
    with pytest.raises(UnsafeFileError):
        load_parser(tmp_path / "evil.pt")


def test_cli_trains_and_prints_a_json_line(demo, tmp_path, capsys):
    out = tmp_path / "p.pt"
    summary = main(["--data", str(demo["store"]), "--out", str(out), "--steps", "2",
                    "--batch-size", "4"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line == summary and out.is_file() and 0 <= line["miou"] <= 1
    assert main(["--data", str(demo["store"]), "--weights", str(out)])["samples"] == \
        line["samples"]


# ---- real photos -----------------------------------------------------------------------------

def test_a_detector_box_crops_the_photo_exactly_as_the_store_crops_the_mask(demo):
    """The real-photo path crops at the person's box the way crop_person crops at the mask:
    the same window, so parsed label maps line up with the demo store's."""
    for k in (0, 5):
        mask = demo["masks"][k]
        ys, xs = np.nonzero(mask)
        box = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
        image, window = crop_photo(demo["photos"][k], box)
        assert image.shape == (SIZE, SIZE, 3)
        assert np.array_equal(crop_window(mask, window), demo["labels"][k])
        assert np.abs(image.astype(int) - demo["images"][k].astype(int)).mean() < 3


def test_parsed_photos_land_in_the_store_layout_and_export_to_iccv17(demo, trained, tmp_path):
    paths = []
    for k, photo in enumerate(demo["photos"][:6]):
        paths.append(tmp_path / f"{k}.jpg")
        Image.fromarray(photo).save(paths[-1])
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    boxes = []
    for mask in demo["masks"][:6]:
        ys, xs = np.nonzero(mask)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    items = [(demo["ids"][k], paths[k], boxes[k]) for k in range(6)]
    items += [("no-box", paths[0], None), ("broken", tmp_path / "broken.jpg", boxes[0])]
    parsed = parse_photos(trained.model, items)
    assert parsed.ids == demo["ids"][:6]
    assert parsed.drops == {"no_box": 1, "unreadable": 1}
    store = write_parsed(tmp_path / "parsed.h5", parsed, "parser.pt")
    data = SegmentationDataset(store)
    onehot, image, coarse = data[2]
    assert onehot.shape == (7, SIZE, SIZE) and coarse.shape == (8, 8)
    with h5py.File(store) as f:
        assert f.attrs["source"] == PARSED_SOURCE and f["labels"].chunks == (1, SIZE, SIZE)
    ids, images, labels = import_fashiongan(export_fashiongan(store, tmp_path / "G2.h5"))
    assert ids == parsed.ids and np.array_equal(labels, np.stack(parsed.labels))
    # the parser never trains on its own output
    with pytest.raises(SegmentationStoreError, match="label maps the human parser wrote"):
        train_parser(read_segmentation(store), steps=1)
    # perfect labels score 1; the masks are compared in the same window
    parsed.labels = [crop_window(m, w) for m, w in zip(demo["masks"], parsed.windows,
                                                        strict=False)]
    masks = {}
    for k in range(6):
        masks[demo["ids"][k]] = tmp_path / f"{k}.png"
        Image.fromarray(demo["masks"][k]).save(masks[demo["ids"][k]])
    perfect = score_against_masks(parsed, masks, set(demo["ids"][:4]))
    assert perfect["pixel_accuracy"] == 1.0 and perfect["miou"] == 1.0
    assert perfect["samples"] == 4


# ---- the asset -------------------------------------------------------------------------------

def demo_store_folder(demo, root):
    """A store root as the pipeline leaves it: segmentation.h5, the front photos on disk with
    front_model_images.parquet, person_crops.h5 (detector boxes) and the demo's truth masks."""
    layout = StoreLayout(root)
    layout.segmentation.parent.mkdir(parents=True)
    layout.segmentation.write_bytes(demo["store"].read_bytes())
    images = layout.images("demo") / "full"
    images.mkdir(parents=True)
    masks = layout.truth_masks("demo")
    masks.mkdir(parents=True)
    rows, truth, boxes = [], {}, []
    for pid, photo, mask in zip(demo["ids"], demo["photos"], demo["masks"], strict=True):
        Image.fromarray(photo).save(images / f"{pid}.jpg")
        Image.fromarray(mask).save(masks / f"{pid}.png")
        url = f"http://demo.invalid/{pid}.jpg"
        ys, xs = np.nonzero(mask)
        box = [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1]
        boxes.append(box)
        truth[pid] = {"model_photos": [{"url": url, "view": "front", "box": box,
                                        "mask": f"{pid}.png"}]}
        rows.append({"id": pid, "image_path": f"raw/demo/images/full/{pid}.jpg",
                     "image_url": url, "cluster": 0, "distance": 0.0})
    layout.truth("demo").write_text(json.dumps(truth))
    layout.front_model_images.parent.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(layout.front_model_images)
    write_image_store(layout.person_crops, demo["ids"][1:],  # the first: no person found
                      np.zeros((N - 1, 8, 8, 3), np.uint8),
                      {"boxes": np.asarray(boxes[1:], np.float32),
                       "scores": np.ones(N - 1, np.float32)})
    return layout


def test_human_parser_asset_trains_scores_and_parses_front_photos(demo, tmp_path):
    layout = demo_store_folder(demo, tmp_path / "store")
    resources = {"storage": StorageResource(root=str(layout.root)),
                 "mlflow": MLflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                                          artifact_root=str(tmp_path / "artifacts"))}
    result = materialize([human_parser], resources=resources, run_config={"ops": {
        "human_parser": {"config": HumanParserConfig(
            steps=2, batch_size=4, parse_front_photos=True,
            parse_into="segmentation_parsed").model_dump()}}})
    assert result.success
    [event] = result.asset_materializations_for_node("human_parser")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert 0 <= meta["heldout_pixel_accuracy"] <= 1 and 0 <= meta["heldout_miou"] <= 1
    assert set(meta["per_class_iou"]) == {"background", "face", "hair", "arm",
                                          "upper_clothes", "lower_clothes", "legs"}
    assert meta["heldout_samples"] + meta["train_samples"] == N
    assert "photo | truth | parse" in meta["preview"]
    assert meta["parsed_photos"] == N - 1 and meta["parse_drop_reasons"]["no_box"] == 1
    assert 1 <= meta["front_photo_samples"] <= meta["heldout_samples"]  # held-out, boxed
    assert 0 <= meta["front_photo_miou"] <= 1
    assert layout.human_parser.is_file()
    parsed = read_segmentation(layout.dataset("segmentation_parsed"))
    assert parsed.source == PARSED_SOURCE and parsed.ids == demo["ids"][1:]
    # a weights file instead of training: scored on the same held-out products
    again = materialize([human_parser], resources=resources, run_config={"ops": {
        "human_parser": {"config": {"weights": str(layout.human_parser)}}}})
    [event] = again.asset_materializations_for_node("human_parser")
    assert event.metadata["heldout_miou"].value == meta["heldout_miou"]
    assert event.metadata["train_samples"].value == 0
