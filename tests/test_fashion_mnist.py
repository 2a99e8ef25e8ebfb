"""Fashion-MNIST from its IDX files (written here in the real format, gzipped and plain),
open_dataset's folder/file dispatch, resizing and grey <-> RGB conversion, and every bad input
refused with a one-line error."""

import gzip
import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pipelines.processing.h5store import write_image_store
from training.datasets import (
    FASHION_MNIST_CLASSES,
    H5ImageDataset,
    IDXDataset,
    convert_channels,
    open_dataset,
    resize_images,
)

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding: 0, 0, type 0x08 (ubyte), ndim; big-endian int32 dims; the bytes."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    return header + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool) -> Path:
    data = idx_bytes(array)
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def fashion_folder(folder: Path, n_train: int = 20, n_test: int = 10, gz: bool = True
                   ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Four IDX files; image i of a split is filled with 10 * its class, so labels line up."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % 10
        images = np.broadcast_to((labels * 10 + (split == "test"))[:, None, None],
                                 (n, 28, 28)).astype(np.uint8).copy()
        images[:, :, :14] = 255  # left half white: flips are visible
        write_idx(folder / NAMES[split][0], images, gz)
        write_idx(folder / NAMES[split][1], labels, gz)
        out[split] = images, labels
    return out


@pytest.mark.parametrize("gz", [True, False])
def test_reads_both_splits_gzipped_or_plain(tmp_path, gz):
    truth = fashion_folder(tmp_path, gz=gz)
    ds = IDXDataset(tmp_path)
    assert len(ds) == 20 and ds.images.shape == (20, 1, 28, 28)
    assert ds.images.dtype == torch.uint8 and ds.image_size == 28 and ds.channels == 1
    assert torch.equal(ds.images[:, 0], torch.from_numpy(truth["train"][0]))
    assert ds.label_columns == ("class",)
    assert ds.label_values["class"] == list(FASHION_MNIST_CLASSES)
    assert ds.label_values["class"][9] == "Ankle boot" and len(FASHION_MNIST_CLASSES) == 10
    assert ds.labels_of(torch.tensor([0, 3, 19])).tolist() == [[0], [3], [9]]
    assert len(ds.labelled()) == 20 and ds.ids[0] == "train-00000"
    x = ds.batch(torch.arange(4))
    assert x.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() == 1.0
    test = IDXDataset(tmp_path, split="test")
    assert len(test) == 10 and test.ids[-1] == "test-00009"
    assert torch.equal(test.images[:, 0], torch.from_numpy(truth["test"][0]))


def test_flips_with_its_own_seed(tmp_path):
    fashion_folder(tmp_path)
    ds = IDXDataset(tmp_path, flip=True, seed=0)
    lefts = ds.batch(torch.zeros(32, dtype=torch.long))[:, 0, 0, 0]
    assert (lefts == 1.0).any() and (lefts < 1.0).any()
    ds.reseed(0)
    assert torch.equal(ds.batch(torch.zeros(32, dtype=torch.long))[:, 0, 0, 0], lefts)


def test_no_label_columns_means_no_labels(tmp_path):
    fashion_folder(tmp_path)
    ds = open_dataset(tmp_path)
    assert isinstance(ds, IDXDataset) and ds.label_columns == ()
    assert ds.label_index.shape == (20, 0)
    assert open_dataset(tmp_path, label_columns=["class"]).label_columns == ("class",)


def test_open_dataset_resizes_and_converts(tmp_path):
    fashion_folder(tmp_path)
    ds = open_dataset(tmp_path, image_size=32, channels=3, split="test")
    assert ds.images.shape == (10, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.image_size == 32 and ds.channels == 3
    assert torch.equal(ds.images[:, 0], ds.images[:, 2])  # grey repeated
    # a flat image stays flat through the antialiased resize
    flat = torch.full((2, 1, 28, 28), 77, dtype=torch.uint8)
    assert resize_images(flat, 64).eq(77).all()
    assert open_dataset(tmp_path, image_size=64).images.shape == (20, 1, 64, 64)


def test_rgb_store_to_grey_is_luma_and_grey_stores_load(tmp_path):
    rgb = np.zeros((2, 8, 8, 3), np.uint8)
    rgb[0] = (255, 0, 0)
    rgb[1] = (0, 0, 255)
    path = write_image_store(tmp_path / "rgb.h5", ["r", "b"], rgb)
    grey = open_dataset(path, channels=1, image_size=4)
    assert grey.images.shape == (2, 1, 4, 4)
    assert grey.images[0].eq(76).all() and grey.images[1].eq(29).all()  # 0.299, 0.114 * 255
    for shape in ((3, 8, 8), (3, 8, 8, 1)):
        p = write_image_store(tmp_path / f"g{len(shape)}.h5", ["a", "b", "c"],
                              np.full(shape, 9, np.uint8))
        ds = H5ImageDataset(p)
        assert ds.images.shape == (3, 1, 8, 8) and ds.channels == 1
    with pytest.raises(ValueError, match="cannot convert 2-channel"):
        convert_channels(torch.zeros(1, 2, 4, 4, dtype=torch.uint8), 3)
    with pytest.raises(ValueError, match="channels must be 1"):
        open_dataset(path, channels=4)


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def test_missing_files_name_the_four_files(tmp_path):
    with pytest.raises(ValueError) as e:
        IDXDataset(tmp_path)
    message = one_line(e)
    for name in (*NAMES["train"], *NAMES["test"]):
        assert name in message
    assert ".gz" in message and str(tmp_path) in message and "fashion-mnist" in message
    fashion_folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    IDXDataset(tmp_path, split="train")  # the train split needs only its two files
    with pytest.raises(ValueError, match="no t10k-labels-idx1-ubyte;"):
        IDXDataset(tmp_path, split="test")
    with pytest.raises(ValueError, match="split must be one of"):
        IDXDataset(tmp_path, split="val")


def test_wrong_magic_number(tmp_path):
    fashion_folder(tmp_path, gz=False)
    images = tmp_path / "train-images-idx3-ubyte"
    labels = (tmp_path / "train-labels-idx1-ubyte").read_bytes()
    images.write_bytes(labels)  # a labels file where the images belong
    with pytest.raises(ValueError) as e:
        IDXDataset(tmp_path)
    message = one_line(e)
    assert str(images) in message and "magic number 0x00000801, expected 0x00000803" in message


def test_wrong_image_dimensions(tmp_path):
    fashion_folder(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((20, 32, 32), np.uint8), gz=True)
    with pytest.raises(ValueError) as e:
        IDXDataset(tmp_path)
    assert "items of 32x32, expected 28x28" in one_line(e)


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_file(tmp_path, gz):
    fashion_folder(tmp_path, gz=gz)
    name = "train-images-idx3-ubyte"
    path = tmp_path / (name + ".gz" if gz else name)
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    cut = raw[:-100]
    path.write_bytes(gzip.compress(cut) if gz else cut)
    with pytest.raises(ValueError) as e:
        IDXDataset(tmp_path)
    message = one_line(e)
    assert str(path) in message and "20 x 28 x 28 = 15680 bytes" in message
    assert "holds 15580" in message


def test_truncated_gzip_stream(tmp_path):
    fashion_folder(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError) as e:
        IDXDataset(tmp_path)
    assert str(path) in one_line(e) and "gzip" in one_line(e)


def test_images_and_labels_count_mismatch(tmp_path):
    fashion_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(19, np.uint8), gz=True)
    with pytest.raises(ValueError) as e:
        IDXDataset(tmp_path)
    assert "has 20 images but" in one_line(e) and "19 labels" in one_line(e)


def test_labels_out_of_range_and_unknown_column(tmp_path):
    fashion_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(20, 10, np.uint8), gz=True)
    with pytest.raises(ValueError, match="label 10, expected classes 0-9"):
        IDXDataset(tmp_path)
    with pytest.raises(ValueError, match="no label column 'color'; Fashion-MNIST has: class"):
        open_dataset(tmp_path, label_columns=["color"])


def test_gan_cli_trains_on_an_idx_folder(tmp_path):
    from training.family import load_families

    if "gan" not in load_families():
        pytest.skip("the `gan` family is not registered yet (training/families/gan.py)")
    fashion_folder(tmp_path / "fmnist", n_train=16, n_test=4)
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "training", "gan", "--data", str(tmp_path / "fmnist"),
         "--out", str(out), "--steps", "2", "--batch-size", "4", "--backbone", "infogan",
         "--image-size", "28", "--no-progress"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 and (out / "checkpoint.pt").exists()


def test_conditional_families_use_the_ten_classes(tmp_path):
    """CGAN conditioned on `class`, infoGAN's categorical code supervised by it: the sampler
    tags carry the ten Fashion-MNIST classes."""
    from training.family import get_family
    from training.latent import sampler_inputs
    from training.loop import train

    fashion_folder(tmp_path / "fmnist", n_train=20, n_test=4)
    small = {"steps": 2, "batch_size": 4, "nz": 8, "ngf": 4, "ndf": 4, "log_every": 1,
             "backbone": "infogan", "image_size": 28}
    for name, options in (("cgan", {"label_columns": ["class"]}),
                          ("infogan", {"label_column": "class"})):
        family = get_family(name)
        cfg = family.Config(**small, **options)
        summary = train(name, cfg, tmp_path / "fmnist", tmp_path / name)
        assert summary["label_sizes"] == [10] and summary["channels"] == 1
        model = family.restore(cfg, open_dataset(tmp_path / "fmnist",
                                                 **family.data_options(cfg)), tmp_path / name)
        tags = model.registry_tags()
        assert json.loads(tags["label_values"])["class"] == list(FASHION_MNIST_CLASSES)
        inputs, _ = sampler_inputs(3, tags)
        assert model.sampler()(inputs).shape == (3, 1, 28, 28)
