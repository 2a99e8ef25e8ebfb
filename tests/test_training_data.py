"""The in-memory training dataset over an HDF5 image store."""

import h5py
import numpy as np
import pytest
import torch

from pipelines.processing.h5store import write_image_store
from training.datasets import H5ImageDataset


def test_maps_uint8_to_unit_range_and_flips(tmp_path):
    images = np.zeros((4, 8, 8, 3), np.uint8)
    images[:, :, :4] = 255  # left half white
    images[1] = 0
    path = write_image_store(tmp_path / "x.h5", ["a", "b", "c", "d"], images)
    ds = H5ImageDataset(path)
    assert len(ds) == 4 and ds.ids == ["a", "b", "c", "d"]
    x = ds[0]
    assert x.shape == (3, 8, 8) and x.dtype == torch.float32
    assert x[:, :, 0].eq(1.0).all() and x[:, :, 7].eq(-1.0).all()
    assert ds[1].eq(-1.0).all()
    flipped = H5ImageDataset(path, flip=True, seed=0).batch(torch.arange(4).repeat(8))
    lefts = flipped[:, 0, 0, 0]
    assert (lefts == 1.0).any() and (lefts[torch.arange(32) % 4 != 1] == -1.0).any()


def test_reads_grey_and_rejects_other_layouts(tmp_path):
    path = write_image_store(tmp_path / "g.h5", ["a"], np.zeros((1, 8, 8, 1), np.uint8))
    assert H5ImageDataset(path).images.shape == (1, 1, 8, 8)
    for name, images in (("rgba", np.zeros((1, 8, 8, 4), np.uint8)),
                         ("float", np.zeros((1, 8, 8, 3), np.float32))):
        path = tmp_path / f"{name}.h5"
        with h5py.File(path, "w") as f:  # write_image_store would cast to uint8
            f["images"] = images
            f["ids"] = ["a"]
        with pytest.raises(ValueError, match=r"expected images uint8 \(N, H, W, 3\)"):
            H5ImageDataset(path)
