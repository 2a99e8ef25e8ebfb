"""Image stores in HDF5: uint8 images chunked per sample and compressed, utf-8 ids, extras;
and `atomic_h5`, the one way this project writes an HDF5 file.

Used for datasets/person_crops.h5 (extras: boxes, scores) and other per-sample image stores.
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

STR = h5py.string_dtype("utf-8")


@contextmanager
def atomic_h5(path: Path) -> Iterator[h5py.File]:
    """An h5py.File open for writing on a temporary file beside `path`, renamed onto `path`
    once the block ends and the file is closed. Any exception removes the temporary file and
    leaves a previous `path` untouched, so readers never see a half-written store; the
    temporary name is unique, so two writers of the same target never share it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with h5py.File(tmp, "x") as f:
            yield f
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_image_store(path: Path, ids, images: np.ndarray, extras: dict | None = None,
                      attrs: dict | None = None) -> Path:
    """images uint8 (N, H, W, C); ids (N,); extras: arrays with N rows. Written atomically."""
    images = np.asarray(images, np.uint8)
    ids = list(ids)
    if len(images) != len(ids):
        raise ValueError(f"{len(ids)} ids for {len(images)} images")
    path = Path(path)
    with atomic_h5(path) as f:
        chunks = (1, *images.shape[1:]) if len(images) else None
        f.create_dataset("images", data=images, chunks=chunks, compression="gzip",
                         compression_opts=4, shuffle=True)
        f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STR)
        for name, values in (extras or {}).items():
            values = np.asarray(values)
            if len(values) != len(ids):
                raise ValueError(f"{name}: {len(values)} rows for {len(ids)} ids")
            f.create_dataset(name, data=values)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def read_image_store(path: Path) -> dict[str, np.ndarray | list[str]]:
    """Every dataset of the file in memory; ids as Python strings."""
    with h5py.File(path, "r") as f:
        out = {name: f[name][:] for name in f}
    out["ids"] = [s.decode() if isinstance(s, bytes) else s for s in out["ids"]]
    return out
