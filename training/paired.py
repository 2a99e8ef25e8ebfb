"""The paired store every image-to-image translator reads: each product's packshot (`a`) beside
the person wearing it (`b`), joined by product id, with the packshot store's labels and splits.

Built once (the `paired_images` asset, datasets/paired_images.h5) so pix2pix, CycleGAN,
StarGAN, Fader networks, MUNIT and the colouriser all train and are measured on the same pairs.
The catalogue's test split is about 1% (2 products on the demo shop), too few to measure a
translator on, so a seeded `min_test` pairs are taken from train when it holds fewer; the
moved ids are recorded in the store.
"""

from pathlib import Path

import h5py
import numpy as np
import torch

from pipelines.processing.h5store import STR, atomic_h5
from training.datasets import convert_channels, resize_images

SPLIT_NAMES = ("train", "val", "test")
TRAIN, VAL, TEST = range(3)
A_NAME, B_NAME = "packshot", "person"


def read_store(path: Path, what: str) -> dict:
    """images (N, C, H, W) uint8 RGB, ids, and (when there) labels, label_names, split; a store
    without `images` or `ids`, or with images of another shape, is a one-line error."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} store {path}: no such file")
    with h5py.File(path, "r") as f:
        missing = [k for k in ("images", "ids") if k not in f]
        if missing:
            raise ValueError(f"{what} store {path}: no {' and no '.join(missing)} dataset "
                             f"(it has: {', '.join(sorted(f)) or 'nothing'}); pairs join "
                             "two image stores by their ids")
        images = f["images"][:]
        ids = [s.decode() if isinstance(s, bytes) else str(s) for s in f["ids"][:]]
        out = {"ids": ids,
               "labels": f["labels"][:] if "labels" in f else None,
               "label_names": [str(n) for n in f.attrs.get("label_names", [])],
               "split": f["split"][:] if "split" in f else None}
    if images.ndim == 3:
        images = images[..., None]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"{what} store {path}: expected images uint8 (N, H, W, 3), got "
                         f"{images.dtype} {images.shape}")
    if len(images) != len(ids):
        raise ValueError(f"{what} store {path}: {len(images)} images but {len(ids)} ids")
    out["images"] = convert_channels(torch.from_numpy(images).permute(0, 3, 1, 2), 3)
    return out


def build_paired_store(packshots_h5: Path | str, crops_h5: Path | str, out_h5: Path | str,
                       min_test: int = 16, seed: int = 0, size: int | None = None) -> dict:
    """Join the packshot store and the person-crop store by product id (in the packshot
    store's order; a product with several crops keeps its first) and write one HDF5 store
    atomically: `ids`, `a` (packshots) and `b` (person crops), both uint8 (N, size, size, 3)
    (size: the packshots' own unless given), `labels` + `label_names` copied, `split` 0/1/2 +
    `split_names`. When the test split holds fewer than `min_test` pairs, seeded train pairs
    become test until it holds min_test (at most half of train moves). Returns the counts."""
    if min_test < 0:
        raise ValueError(f"min_test must be >= 0, got {min_test!r}")
    if size is not None and size < 1:
        raise ValueError(f"size must be >= 1, got {size!r}")
    shots = read_store(Path(packshots_h5), "packshot")
    crops = read_store(Path(crops_h5), "person-crop")
    crop_row: dict[str, int] = {}
    for i, pid in enumerate(crops["ids"]):
        crop_row.setdefault(pid, i)
    rows = [(i, crop_row[pid]) for i, pid in enumerate(shots["ids"]) if pid in crop_row]
    if not rows:
        raise ValueError(f"no pairs: the {len(shots['ids'])} packshots ({packshots_h5}) and "
                         f"the {len(crops['ids'])} person crops ({crops_h5}) share no product "
                         "id; build both stores from the same catalogue")
    ia = torch.tensor([r[0] for r in rows])
    ib = torch.tensor([r[1] for r in rows])
    side = size or shots["images"].shape[-1]
    a = resize_images(shots["images"][ia], side)
    b = resize_images(crops["images"][ib], side)
    ids = [shots["ids"][i] for i in ia.tolist()]
    n = len(ids)
    split = (shots["split"][ia.numpy()].astype(np.uint8) if shots["split"] is not None
             else np.zeros(n, np.uint8))
    if shots["labels"] is not None:
        labels, label_names = shots["labels"][ia.numpy()], shots["label_names"]
    else:
        labels, label_names = np.zeros((n, 0), np.uint8), []

    train = np.flatnonzero(split == TRAIN)
    moved_n = min(max(0, min_test - int((split == TEST).sum())), len(train) // 2)
    moved = np.sort(np.random.default_rng(seed).choice(train, moved_n, replace=False))
    split[moved] = TEST
    moved_ids = [ids[i] for i in moved.tolist()]

    out = Path(out_h5)
    with atomic_h5(out) as f:
        for name, images in (("a", a), ("b", b)):
            f.create_dataset(name, data=images.permute(0, 2, 3, 1).numpy(),
                             chunks=(1, side, side, 3), compression="gzip",
                             compression_opts=4, shuffle=True)
        f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STR)
        f.create_dataset("labels", data=labels)
        f.create_dataset("split", data=split)
        f.attrs["label_names"] = label_names
        f.attrs["split_names"] = list(SPLIT_NAMES)
        f.attrs["a_name"], f.attrs["b_name"] = A_NAME, B_NAME
        f.attrs["moved_to_test"] = moved_n
        f.attrs["moved_to_test_ids"] = moved_ids
        f.attrs["min_test"], f.attrs["seed"] = min_test, seed
    counts = {name: int((split == k).sum()) for k, name in enumerate(SPLIT_NAMES)}
    return {"pairs": n, **counts, "moved_to_test": moved_n, "moved_to_test_ids": moved_ids,
            "packshots": len(shots["ids"]), "person_crops": len(crops["ids"]),
            "packshots_without_crop": len(shots["ids"]) - n,
            "crops_without_packshot": len(set(crops["ids"]) - set(ids)),
            "size": side, "path": str(out)}

