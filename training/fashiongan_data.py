"""The two-stage FashionGAN's data: the segmentation store joined by product id with the
descriptions file.

    datasets/segmentation.h5   labels uint8 (N, 128, 128) 0..6, images uint8 (N, 128, 128, 3),
                               coarse uint8 (N, 8, 8) 0..3 (m(S0)), ids
                               (pipelines/processing/segmentation.py)
    datasets/descriptions.h5   ids, d float32 (M, 100) the description encoder's hidden state,
                               skin float32 (M, 3) mean RGB of arms and face in [-1, 1]
                               (training/description_encoder.py)

A product is a training example when both files hold it; the condition of both GANs is
d + skin (103 numbers). `batch(idx)` is the tuple the frame's loop passes to the family's step:

    image      float (B, 3, S, S) in [-1, 1]
    labels     long  (B, 1, S, S) 0..6 (the channel axis keeps every tensor 4-D: the loop moves
               tuple batches with the channels_last memory format, which needs rank 4)
    coarse     float (B, 4, 8, 8) one-hot m(S0)
    condition  float (B, C, 1, 1) d + skin
    mismatched float (B, C, 1, 1) another training product's condition, for D's
               mismatched-description term

The mismatched rows and the flips are drawn with the dataset's own generator, which the loop
checkpoints: a resumed run draws the same ones. `image_size` 64 halves images (antialiased)
and labels (nearest) so a demo fits minutes on a CPU; m(S0) stays 8x8. A seeded hash of each
id holds out `holdout` of the products for the measures (stable when the store grows).
"""

import hashlib
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from pipelines.processing.segmentation import (
    CLASS_NAMES,
    COARSE,
    COARSE_NAMES,
    N_CLASSES,
    SIZE,
    coarse_map,
)
from training.datasets import TEST_SPLIT, TRAIN_SPLIT, ImageDataset, resize_images, to_unit_range

N_COARSE = len(COARSE_NAMES)
SKIN_DIM = 3


class FashionGANDataError(ValueError):
    """Data the two-stage FashionGAN cannot train on; the message names the count and the
    first offending product."""


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def read_segmentation_store(path: Path) -> dict:
    """ids, images (N, 128, 128, 3), labels (N, 128, 128), coarse (N, 8, 8) of a segmentation
    store, checked: images present, labels 0-6, shapes; coarse rebuilt from the labels when
    the store has none."""
    with h5py.File(path, "r") as f:
        if "labels" not in f or "ids" not in f:
            raise FashionGANDataError(f"{path} is not a segmentation store: it needs labels and "
                                      f"ids, it holds {', '.join(sorted(f)) or 'nothing'}")
        ids = _strings(f["ids"][:])
        n = len(ids)
        if "images" not in f:
            first = f" (the first is product {ids[0]!r})" if ids else ""
            raise FashionGANDataError(
                f"{path} has no images: its {n} label maps{first} have no photo for stage 2 "
                "to learn from; rebuild it with segmentation_store or the human_parser asset")
        labels, images = f["labels"][:], f["images"][:]
        coarse = f["coarse"][:] if "coarse" in f else None
    if labels.shape != (n, SIZE, SIZE) or images.shape != (n, SIZE, SIZE, 3):
        raise FashionGANDataError(
            f"{path}: expected labels ({n}, {SIZE}, {SIZE}) and images ({n}, {SIZE}, {SIZE}, "
            f"3) for its {n} ids, found {labels.shape} and {images.shape}")
    if n == 0:
        raise FashionGANDataError(f"{path} holds no samples")
    top = labels.reshape(n, -1).max(1)
    bad = np.flatnonzero(top >= N_CLASSES)
    if len(bad):
        raise FashionGANDataError(
            f"{len(bad)} of {n} label maps in {path} hold labels outside 0-{N_CLASSES - 1} "
            f"(up to {int(top.max())}); the first is product {ids[bad[0]]!r}. The classes "
            f"are {', '.join(f'{i} {c}' for i, c in enumerate(CLASS_NAMES))}")
    if coarse is None or coarse.shape != (n, COARSE, COARSE):
        coarse = coarse_map(labels.astype(np.uint8))
    if coarse.max() >= N_COARSE:
        bad = np.flatnonzero(coarse.reshape(n, -1).max(1) >= N_COARSE)
        raise FashionGANDataError(
            f"{len(bad)} of {n} coarse maps in {path} hold classes outside 0-{N_COARSE - 1}; "
            f"the first is product {ids[bad[0]]!r}")
    return {"ids": ids, "images": images.astype(np.uint8), "labels": labels.astype(np.uint8),
            "coarse": coarse.astype(np.uint8)}


def read_descriptions(path: Path) -> dict:
    """ids, d (M, D), skin (M, 3) of a descriptions file, checked: present and finite."""
    if not Path(path).is_file():
        raise FashionGANDataError(
            f"descriptions {path}: no such file; the description_encoder asset writes "
            "datasets/descriptions.h5 (python -m training fashiongan --descriptions FILE)")
    with h5py.File(path, "r") as f:
        missing = [k for k in ("ids", "d", "skin") if k not in f]
        if missing:
            raise FashionGANDataError(
                f"{path} is not a descriptions file: no {', '.join(missing)} (it holds "
                f"{', '.join(sorted(f)) or 'nothing'}); expected ids, d (N, hidden), skin "
                "(N, 3)")
        ids = _strings(f["ids"][:])
        d, skin = f["d"][:].astype(np.float32), f["skin"][:].astype(np.float32)
    if d.ndim != 2 or len(d) != len(ids) or skin.shape != (len(ids), SKIN_DIM):
        raise FashionGANDataError(f"{path}: expected d ({len(ids)}, hidden) and skin "
                                  f"({len(ids)}, 3), found {d.shape} and {skin.shape}")
    bad = np.flatnonzero(~np.isfinite(np.concatenate([d, skin], 1)).all(1))
    if len(bad):
        raise FashionGANDataError(f"{len(bad)} of {len(ids)} descriptions in {path} hold NaN "
                                  f"or infinite values; the first is product {ids[bad[0]]!r}")
    return {"ids": ids, "d": d, "skin": skin}


def held_out(product_id: str, seed: int = 0, share: float = 0.1) -> bool:
    """Whether a product is held out for the measures: a hash of seed and id, so the split
    does not move when the store grows."""
    h = int(hashlib.sha1(f"fashiongan:{seed}:{product_id}".encode()).hexdigest()[:8], 16)
    return h / 0xFFFFFFFF < share


MIN_HELD_OUT = 2  # a Fréchet distance needs two samples (a covariance)


def split_codes(ids: list[str], seed: int, share: float) -> torch.Tensor:
    """0 (train) or 2 (test) per id: the hash's choice, topped up from the end to
    MIN_HELD_OUT held out (and at least as many left to train) when the store is small."""
    test = np.array([held_out(i, seed, share) for i in ids], bool)
    floor = min(MIN_HELD_OUT, len(ids) // 2) if share > 0 else 0
    for i in range(len(ids) - 1, -1, -1):
        if test.sum() >= floor:
            break
        test[i] = True
    while len(ids) - test.sum() < min(2, len(ids)) and test.any():
        test[np.flatnonzero(test)[0]] = False
    return torch.from_numpy(np.where(test, TEST_SPLIT, TRAIN_SPLIT)).long()


def resize_labels(labels: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 label maps (N, H, W) -> (N, size, size), nearest (a class never blends)."""
    if labels.shape[-1] == size:
        return labels
    out = F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest")
    return out[:, 0].to(torch.uint8)


class FashionGANDataset(ImageDataset):
    """The segmentation store joined with the descriptions by id (see the module's doc):
    uint8 images (N, 3, S, S), `maps` (N, S, S), `coarse` (N, 8, 8), `condition` float
    (N, C); `split` 0 train / 2 test (held out)."""

    maps: torch.Tensor
    coarse: torch.Tensor
    condition: torch.Tensor
    split: torch.Tensor

    def __init__(self, path: Path | str, descriptions: Path | str, image_size: int | None = None,
                 flip: bool = False, seed: int = 0, holdout: float = 0.1, split_seed: int = 0):
        super().__init__(flip, seed)
        path, descriptions = Path(path), Path(descriptions)
        if not 0 <= holdout < 1:
            raise FashionGANDataError(f"holdout must be in [0, 1), got {holdout!r}")
        store = read_segmentation_store(path)
        text = read_descriptions(descriptions)
        row_of = {i: r for r, i in enumerate(text["ids"])}
        keep = [r for r, i in enumerate(store["ids"]) if i in row_of]
        if not keep:
            raise FashionGANDataError(
                f"no product is in both {path} ({len(store['ids'])} ids, the first "
                f"{store['ids'][0]!r}) and {descriptions} ({len(text['ids'])} ids"
                + (f", the first {text['ids'][0]!r}" if text["ids"] else "")
                + "): write the descriptions for this store's products")
        self.without_description = len(store["ids"]) - len(keep)
        self.ids = [store["ids"][r] for r in keep]
        rows = [row_of[i] for i in self.ids]
        images = torch.from_numpy(store["images"][keep]).permute(0, 3, 1, 2).contiguous()
        maps = torch.from_numpy(store["labels"][keep])
        if image_size is not None:
            if image_size < 32 or image_size > SIZE or image_size & (image_size - 1):
                raise FashionGANDataError(f"image_size must be a power of two from 32 to "
                                          f"{SIZE}, got {image_size!r}")
            images, maps = resize_images(images, image_size), resize_labels(maps, image_size)
        self.images, self.maps = images, maps
        self.coarse = torch.from_numpy(store["coarse"][keep])
        self.condition = torch.from_numpy(np.concatenate([text["d"][rows], text["skin"][rows]],
                                                         1))
        self.split = split_codes(self.ids, split_seed, holdout)
        self.a_name, self.b_name = "segmentation", "person"
        self.source, self.descriptions = path, descriptions

    # ---- sizes --------------------------------------------------------------------------
    @property
    def cond_dim(self) -> int:
        return self.condition.shape[1]

    @property
    def classes(self) -> int:
        return N_CLASSES

    def train_index(self) -> torch.Tensor:
        return torch.nonzero(self.split == TRAIN_SPLIT).flatten()

    def test_index(self) -> torch.Tensor:
        return torch.nonzero(self.split == TEST_SPLIT).flatten()

    # ---- unflipped views, for measures and grids ------------------------------------------
    def images_of(self, index: torch.Tensor) -> torch.Tensor:
        """Images (B, 3, S, S) in [-1, 1]."""
        return to_unit_range(self.images[index])

    def maps_of(self, index: torch.Tensor) -> torch.Tensor:
        """Label maps (B, S, S) long."""
        return self.maps[index].long()

    def onehot_of(self, index: torch.Tensor) -> torch.Tensor:
        """Label maps as one-hots (B, 7, S, S) float."""
        return F.one_hot(self.maps_of(index), N_CLASSES).permute(0, 3, 1, 2).float()

    def coarse_of(self, index: torch.Tensor) -> torch.Tensor:
        """m(S0) one-hot (B, 4, 8, 8) float."""
        return F.one_hot(self.coarse[index].long(), N_COARSE).permute(0, 3, 1, 2).float()

    def condition_of(self, index: torch.Tensor) -> torch.Tensor:
        """d + skin (B, C)."""
        return self.condition[index]

    # ---- training batches -----------------------------------------------------------------
    def mismatched_rows(self, index: torch.Tensor) -> torch.Tensor:
        """For each row of `index` another training product, drawn with the dataset's
        generator (never the row itself while there are two training products)."""
        pool = self.train_index()
        if len(pool) < 2:
            raise FashionGANDataError(f"a mismatched description needs 2 training products, "
                                      f"there are {len(pool)}")
        k = torch.randint(0, len(pool), (len(index),), generator=self.generator)
        rows = pool[k]
        same = rows == index
        rows[same] = pool[(k[same] + 1) % len(pool)]
        return rows

    def mismatched(self, index: torch.Tensor) -> torch.Tensor:
        """Conditions (B, C) of other training products: D's mismatched-description term."""
        return self.condition[self.mismatched_rows(index)]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(image, labels, coarse, condition, mismatched), every tensor 4-D (module doc);
        a flipped example flips its image, labels and m(S0) together."""
        mismatched = self.mismatched(index)
        x, labels, coarse = self.images_of(index), self.maps_of(index)[:, None], \
            self.coarse_of(index)
        if self.flip:
            flip = torch.rand(len(x), generator=self.generator) < 0.5
            x[flip], labels[flip], coarse[flip] = (x[flip].flip(-1), labels[flip].flip(-1),
                                                   coarse[flip].flip(-1))
        return (x, labels, coarse, self.condition_of(index)[:, :, None, None],
                mismatched[:, :, None, None])

    def __getitem__(self, i: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[0] for t in self.batch(torch.tensor([i])))

    def domain_sizes(self) -> dict[str, int]:
        return {"products (train)": len(self.train_index()),
                "products (held out)": len(self.test_index())}


def open_fashiongan(path: Path | str, descriptions: Path | str, image_size: int | None = None,
                    flip: bool = False, seed: int = 0) -> FashionGANDataset:
    """What open_dataset returns for a segmentation store given a descriptions file."""
    if not str(descriptions):
        raise FashionGANDataError("the two-stage FashionGAN needs the descriptions file "
                                  "(datasets/descriptions.h5, the description_encoder asset): "
                                  "--descriptions FILE")
    return FashionGANDataset(path, descriptions, image_size=image_size, flip=flip, seed=seed)
