"""Segmentation store: bytes per sample against 7-channel float32, and decode speed.

    python benchmarks/segmentation_store.py [--products 200]

Label maps are the demo shop's masks of each product's front photo, cropped to 128x128 as the
segmentation_store asset does. Decode = read one sample from the HDF5 file by random index
and expand it to a 7x128x128 float32 one-hot array, on one core (torch and BLAS threads 1).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipelines.processing.segmentation import (  # noqa: E402
    N_CLASSES,
    SIZE,
    SegmentationDataset,
    crop_person,
    one_hot,
    write_store,
)
from scrapers.demo_shop.catalog import make_catalog  # noqa: E402
from scrapers.demo_shop.draw import model_photo  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--products", type=int, default=200)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    ids, images, labels = [], [], []
    for p in make_catalog(args.products, 0):
        photo, label = model_photo(p, p.views.index("front"))
        image, lab = crop_person(np.asarray(photo), np.asarray(label))
        ids.append(p.id)
        images.append(image)
        labels.append(lab)
    images, labels = np.stack(images), np.stack(labels)
    dense = N_CLASSES * SIZE * SIZE * 4
    print(f"{len(ids)} samples; 7-channel float32 layout: {dense} bytes/sample\n")
    print("| compression | label bytes/sample | smaller than float32 7ch | image bytes/sample "
          "| labels -> one-hot/s | Dataset[i] (one-hot + image + coarse)/s |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for compression, level in (("gzip", 4), ("gzip", 9), ("lzf", None)):
        with tempfile.TemporaryDirectory() as tmp:
            path = write_store(Path(tmp) / "s.h5", ids, images, labels, compression, level)
            with h5py.File(path) as f:
                lb = f["labels"].id.get_storage_size() / len(ids)
                ib = f["images"].id.get_storage_size() / len(ids)
                order = rng.permutation(np.tile(np.arange(len(ids)), 10))
                dset = f["labels"]
                t0 = time.perf_counter()
                for i in order:
                    one_hot(dset[i])
                decode = len(order) / (time.perf_counter() - t0)
            ds = SegmentationDataset(path)
            ds[0]
            order = rng.permutation(len(ids))
            t0 = time.perf_counter()
            for i in order:
                ds[int(i)]
            full = len(order) / (time.perf_counter() - t0)
            name = f"{compression}{'' if level is None else ' ' + str(level)}"
            print(f"| {name} | {lb:.0f} | {dense / lb:.0f}x | {ib:.0f} | {decode:.0f} | "
                  f"{full:.0f} |", flush=True)


if __name__ == "__main__":
    main()
