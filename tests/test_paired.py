"""The image-to-image data: the paired store (training/paired.py), the paired and unpaired
datasets (training/datasets.py) through the real training loop, their bad-input errors, and
the `paired_images` asset through Dagster's materialize."""

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from dagster import AssetKey, materialize

from pipelines.assets.translation import paired_images, paired_images_arrays
from pipelines.processing.h5store import write_image_store
from pipelines.resources import StorageResource
from training.config import GANConfig
from training.datasets import (
    PairedDataset,
    UnpairedDataset,
    check_domain_sizes,
    open_dataset,
    to_unit_range,
)
from training.family import Family
from training.loop import train
from training.paired import build_paired_store
from training.paths import StoreLayout

N = 40  # packshots P0..P39; P(2k) black, P(2k+1) white
LABEL_NAMES = ["category_tops", "category_dresses", "color_black", "color_white"]
SPLIT = {5: 2, 6: 2, 7: 1}  # P5, P6 test, P7 val, the rest train
CROPPED = list(range(5, N))  # P0..P4 have no person crop


def product_image(i: int, person: bool, size: int) -> np.ndarray:
    """Red channel 5 * i (the product), green 255 for a person crop and 0 for a packshot (the
    domain), blue on the left half only (so a flip shows)."""
    image = np.zeros((size, size, 3), np.uint8)
    image[..., 0] = 5 * i
    image[..., 1] = 255 if person else 0
    image[:, : size // 2, 2] = 255
    return image


def write_stores(folder: Path, crop_ids: list[str] | None = None) -> tuple[Path, Path]:
    """packshots.h5 (64 px, labels, split) and person_crops.h5 (48 px, in another order, with
    two ids the packshots lack and P10 twice, its first crop the right one)."""
    labels = np.zeros((N, len(LABEL_NAMES)), np.uint8)
    labels[:, 0] = 1
    labels[np.arange(N) % 2 == 0, 2] = 1
    labels[np.arange(N) % 2 == 1, 3] = 1
    packshots = write_image_store(
        folder / "packshots.h5", [f"P{i}" for i in range(N)],
        np.stack([product_image(i, False, 64) for i in range(N)]),
        {"labels": labels, "split": np.array([SPLIT.get(i, 0) for i in range(N)], np.uint8)},
        attrs={"label_names": LABEL_NAMES, "split_names": ["train", "val", "test"]})
    if crop_ids is None:
        order = CROPPED[::-1]
        crop_ids = [f"P{i}" for i in order] + ["X1", "X2", "P10"]
        crops = [product_image(i, True, 48) for i in order]
        crops += [product_image(0, True, 48)] * 2 + [product_image(50, True, 48)]
    else:
        crops = [product_image(0, True, 48) for _ in crop_ids]
    person = write_image_store(folder / "person_crops.h5", crop_ids, np.stack(crops),
                               {"boxes": np.zeros((len(crops), 4), np.float32),
                                "scores": np.ones(len(crops), np.float32)})
    return packshots, person


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("paired")
    packshots, crops = write_stores(folder)
    paired = folder / "paired_images.h5"
    build_paired_store(packshots, crops, paired, min_test=6, seed=0)
    return {"packshots": packshots, "crops": crops, "paired": paired}


def products(images: torch.Tensor) -> list[int]:
    """The product number each image in [-1, 1] encodes in its red channel."""
    red = (images[:, 0].mean((1, 2)) + 1) * 127.5
    return [round(v / 5) for v in red.tolist()]


def flipped(images: torch.Tensor) -> torch.Tensor:
    """True where the blue half is on the right (the image was flipped)."""
    w = images.shape[-1]
    return images[:, 2, :, w // 2:].mean((1, 2)) > images[:, 2, :, : w // 2].mean((1, 2))


# ---- the paired store ------------------------------------------------------------------------

def test_pairs_join_by_product_id_with_the_labels_and_enough_test_pairs(stores, tmp_path):
    counts = build_paired_store(stores["packshots"], stores["crops"], tmp_path / "p.h5",
                                min_test=6, seed=0)
    assert counts["pairs"] == 35 and counts["packshots_without_crop"] == 5
    assert counts["crops_without_packshot"] == 2  # X1, X2
    # the catalogue's test split had 2 pairs: 4 train pairs move, so test holds min_test
    assert (counts["train"], counts["val"], counts["test"]) == (28, 1, 6)
    assert counts["moved_to_test"] == 4 and counts["size"] == 64
    with h5py.File(tmp_path / "p.h5", "r") as f:
        ids = [s.decode() for s in f["ids"][:]]
        a, b, split, labels = f["a"][:], f["b"][:], f["split"][:], f["labels"][:]
        assert list(f.attrs["label_names"]) == LABEL_NAMES
        assert list(f.attrs["split_names"]) == ["train", "val", "test"]
        assert (f.attrs["a_name"], f.attrs["b_name"]) == ("packshot", "person")
        moved = list(f.attrs["moved_to_test_ids"])
        assert f.attrs["moved_to_test"] == 4
    assert ids == [f"P{i}" for i in CROPPED]  # the packshot store's order
    assert a.shape == b.shape == (35, 64, 64, 3) and a.dtype == b.dtype == np.uint8
    numbers = [int(i[1:]) for i in ids]
    assert np.array_equal(a[:, 0, 0, 0], 5 * np.array(numbers))
    # the crop of the same product (resized 48 -> 64), P10's first crop
    assert np.abs(b[:, 5, 5, 0].astype(int) - 5 * np.array(numbers)).max() <= 1
    assert (a[..., 1] == 0).all() and (b[..., 1] >= 254).all()
    assert np.array_equal(labels[:, 2], [1 - n % 2 for n in numbers])
    assert {ids[i] for i in np.flatnonzero(split == 2)} == {"P5", "P6", *moved}
    assert all(SPLIT.get(int(m[1:]), 0) == 0 for m in moved)  # taken from train
    again = build_paired_store(stores["packshots"], stores["crops"], tmp_path / "q.h5",
                               min_test=6, seed=0)
    other = build_paired_store(stores["packshots"], stores["crops"], tmp_path / "r.h5",
                               min_test=6, seed=1)
    assert again["moved_to_test_ids"] == moved != other["moved_to_test_ids"]
    enough = build_paired_store(stores["packshots"], stores["crops"], tmp_path / "s.h5",
                                min_test=2)
    assert enough["moved_to_test"] == 0 and enough["test"] == 2


def test_no_overlap_and_stores_without_ids_or_images_are_one_line_errors(stores, tmp_path):
    out = tmp_path / "paired.h5"
    build_paired_store(stores["packshots"], stores["crops"], out, min_test=6)
    before = out.read_bytes()
    _, strangers = write_stores(tmp_path, crop_ids=["Q1", "Q2", "Q3"])
    with pytest.raises(ValueError, match=r"^no pairs: the 40 packshots .* and the 3 person "
                                         r"crops .* share no product id") as e:
        build_paired_store(stores["packshots"], strangers, out)
    assert "\n" not in str(e.value)
    assert out.read_bytes() == before  # the previous store is untouched
    assert not list(tmp_path.glob(".*.tmp"))
    no_ids = tmp_path / "no_ids.h5"
    with h5py.File(no_ids, "w") as f:
        f["images"] = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"person-crop store .*no_ids.h5: no ids dataset "
                                         r"\(it has: images\)"):
        build_paired_store(stores["packshots"], no_ids, out)
    with pytest.raises(ValueError, match=r"packshot store .*no_ids.h5: no ids"):
        build_paired_store(no_ids, stores["crops"], out)
    with pytest.raises(ValueError, match=r"person-crop store .*missing.h5: no such file"):
        build_paired_store(stores["packshots"], tmp_path / "missing.h5", out)


# ---- the datasets ----------------------------------------------------------------------------

def test_paired_batches_stay_aligned_flip_together_and_swap_with_direction(stores):
    data = open_dataset(stores["paired"], flip=True, seed=3, label_columns=("color",))
    assert isinstance(data, PairedDataset)
    assert (len(data), data.image_size, data.channels) == (35, 64, 3)
    assert (data.a_name, data.b_name) == ("packshot", "person")
    a, b = data.batch(torch.arange(len(data)))
    assert products(a) == products(b) == [int(i[1:]) for i in data.ids]
    assert (a[:, 1] == -1).all() and (b[:, 1] > 0.99).all()  # a packshots, b person crops
    assert torch.equal(flipped(a), flipped(b)) and 0 < int(flipped(a).sum()) < len(data)
    assert data.labels_of(torch.arange(3)).flatten().tolist() == [
        data.label_values["color"].index("white" if int(i[1:]) % 2 else "black")
        for i in data.ids[:3]]
    test = data.test_index()
    assert len(test) == 6 and len(data.train_index()) == 28
    assert {"P5", "P6"} <= {data.ids[i] for i in test}
    assert torch.equal(data.targets_of(test), to_unit_range(data.targets[test]))

    b2a = open_dataset(stores["paired"], direction="b2a", image_size=32)
    assert (b2a.a_name, b2a.b_name) == ("person", "packshot") and b2a.image_size == 32
    source, target = b2a.batch(torch.arange(4))
    assert (source[:, 1] > 0.99).all() and (target[:, 1] == -1).all()
    assert target.shape == (4, 3, 32, 32) and products(source) == products(target)


def test_unpaired_domains_by_label_column_and_by_store(stores):
    data = open_dataset(stores["packshots"], domains=("color", "black", "white"), seed=5)
    assert isinstance(data, UnpairedDataset)
    assert (data.a_name, data.b_name) == ("color=black", "color=white")
    assert len(data.images) == len(data.targets) == 20
    assert all(int(i[1:]) % 2 == 0 for i in data.ids)
    assert all(int(i[1:]) % 2 == 1 for i in data.target_ids)
    assert data.domain_sizes() == {"A color=black": 19, "B color=white": 18}
    a, b = data.batch(data.train_index()[:16])
    assert all(p % 2 == 0 for p in products(a))
    train_b = {int(data.target_ids[i][1:]) for i in data.b_pool}
    assert set(products(b)) <= train_b and len(set(products(b))) > 4  # random B rows
    twin = open_dataset(stores["packshots"], domains=("color", "black", "white"), seed=5)
    data.reseed(5)  # the B draws follow the dataset's generator alone
    assert torch.equal(twin.batch(torch.arange(16))[1], data.batch(torch.arange(16))[1])
    data.reseed(6)
    assert not torch.equal(twin.batch(torch.arange(16))[1], data.batch(torch.arange(16))[1])

    on_pairs = open_dataset(stores["paired"], domains=("color", "white", "black"))
    assert (on_pairs.images[:, 1] == 0).all()  # the paired store's packshots
    assert all(int(i[1:]) % 2 == 1 for i in on_pairs.ids)
    sides = open_dataset(stores["paired"], domains=("store", "packshot", "person"))
    assert (sides.a_name, sides.b_name) == ("packshot", "person")
    assert (sides.images[:, 1] == 0).all() and (sides.targets[:, 1] >= 254).all()
    assert len(sides.test_index()) == len(sides.target_test_index()) == 6
    swapped = open_dataset(stores["paired"], domains=("store", "packshot", "person"),
                           direction="b2a")
    assert (swapped.a_name, swapped.b_name) == ("person", "packshot")
    assert (swapped.images[:, 1] >= 254).all()


@dataclass
class TinyConfig(GANConfig):
    steps: int = 6
    batch_size: int = 4
    lr: float = 0.05
    log_every: int = 1
    sample_every: int = 100
    checkpoint_every: int = 100


class TinyTranslator(Family):
    """A 1x1 convolution fitted from black packshots to random white ones: its losses follow
    the B draws, so equal rows mean equal draws. Not registered (the registry stays as is)."""

    name = "tiny_translator"
    kind = "translator"
    Config = TinyConfig
    losses = ("l1",)
    seen: list = []

    @classmethod
    def data_options(cls, cfg):
        return {"domains": ("color", "black", "white"), "flip": True}

    @classmethod
    def check(cls, cfg, data):
        check_domain_sizes(data, cfg.batch_size)

    def build(self):
        net = self.to_device(torch.nn.Conv2d(3, 3, 1))
        self.modules, self.optimizers = {"G": net}, {"G": self.adam(net)}

    def train_index(self):
        return self.data.train_index()

    def step(self, real, labels, gen, measure):
        a, b = real
        TinyTranslator.seen.append((a.device.type, b.device.type,
                                    a.is_contiguous(memory_format=self.memory_format),
                                    b.is_contiguous(memory_format=self.memory_format)))
        with self.autocast:
            loss = (self.modules["G"](a) - b).abs().mean()
        self.update("G", loss)
        return {"l1": loss}

    def grids(self):
        return {"samples": self.modules["G"](self.data.images_of(torch.arange(4)))}


def loss_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]


def test_the_loop_moves_tuples_and_a_resumed_run_draws_the_same_b_images(stores, tmp_path):
    TinyTranslator.seen.clear()
    whole = train(TinyTranslator, TinyConfig(), stores["packshots"], tmp_path / "whole")
    assert whole["steps_run"] == 6
    assert TinyTranslator.seen == [("cpu", "cpu", True, True)] * 6  # channels_last tuples
    train(TinyTranslator, TinyConfig(steps=3), stores["packshots"], tmp_path / "parts")
    resumed = train(TinyTranslator, TinyConfig(), stores["packshots"], tmp_path / "parts")
    assert resumed["resumed_from"] == 3
    assert loss_rows(tmp_path / "parts") == loss_rows(tmp_path / "whole")


# ---- bad input -------------------------------------------------------------------------------

def test_bad_domains_and_too_small_domains_are_one_line_errors(stores, tmp_path):
    packshots, paired = stores["packshots"], stores["paired"]
    cases = [
        (packshots, ("sleeve_length", "short", "long"),
         r"no label column 'sleeve_length'; the store has: category, color"),
        (packshots, ("color", "black", "purple"),
         r"no value 'purple' in label column 'color'; it has: black, white"),
        (packshots, ("color", "black", "black"), r"A and B are both color='black'"),
        (packshots, ("color", "black"), r"domains must be \(column, value A, value B\)"),
        (packshots, ("store", "packshot", "person"), r"need a paired store"),
        (paired, ("store", "packshot", "model"),
         r"no domain 'model' in the store; it has: packshot, person"),
        (tmp_path, ("color", "black", "white"), r"need an HDF5 store"),
    ]
    for path, domains, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            open_dataset(path, domains=domains)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"direction 'b2a' needs a paired store"):
        open_dataset(packshots, direction="b2a")
    with pytest.raises(ValueError, match=r"direction must be one of \['a2b', 'b2a'\]"):
        open_dataset(paired, direction="sideways")
    with pytest.raises(ValueError, match=r"no label column 'fit'"):
        open_dataset(paired, label_columns=("fit",))

    data = open_dataset(packshots, domains=("color", "black", "white"))
    with pytest.raises(ValueError, match=r"too few training images per domain for batch_size "
                                         r"10 \(each needs 2 batches, 20\): A color=black: 19, "
                                         r"B color=white: 18"):
        check_domain_sizes(data, 10)
    check_domain_sizes(data, 9)
    with pytest.raises(ValueError, match=r"packshot \(train\): 28, person \(train\): 28"):
        check_domain_sizes(open_dataset(paired), 15)
    out = tmp_path / "refused"
    with pytest.raises(ValueError, match=r"A color=black: 19, B color=white: 18"):
        train(TinyTranslator, TinyConfig(batch_size=10), packshots, out)
    assert not out.exists()  # refused before training


# ---- the asset -------------------------------------------------------------------------------

def test_paired_images_asset_writes_the_store_with_counts_and_a_preview(tmp_path):
    layout = StoreLayout(tmp_path / "store")
    layout.datasets_dir.mkdir(parents=True)
    packshots, crops = write_stores(layout.datasets_dir)
    assert (packshots, crops) == (layout.packshots, layout.person_crops)
    result = materialize([paired_images, paired_images_arrays],
                         resources={"storage": StorageResource(root=str(layout.root))},
                         run_config={"ops": {"paired_images": {"config": {"min_test": 6}}}})
    assert result.success
    metadata = result.asset_materializations_for_node("paired_images")[0].metadata
    assert metadata["pairs"].value == 35 and metadata["moved_to_test"].value == 4
    assert metadata["splits"].value == {"train": 28, "val": 1, "test": 6}
    assert metadata["preview"].value.startswith("![packshots over person crops](data:image/")
    assert metadata["path"].value == str(layout.paired_images)
    checks = result.get_asset_check_evaluations()
    assert [c.passed for c in checks] == [True]
    data = open_dataset(layout.paired_images)
    assert isinstance(data, PairedDataset) and len(data) == 35


def test_paired_images_is_built_by_both_jobs():
    """train_job's translators read it, and so does full_pipeline's (pix2pix)."""
    from pipelines.definitions import defs, full_pipeline, train_job

    graph = defs.resolve_asset_graph()
    assert AssetKey("paired_images") in train_job.selection.resolve(graph)
    assert AssetKey("paired_images") in full_pipeline.selection.resolve(graph)
