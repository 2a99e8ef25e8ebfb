"""A compressed HDF5 store of 7-class person segmentations, and a PyTorch Dataset over it.

The original notebooks kept each mask as 7 float32 channels (7 x 128 x 128 x 4 bytes = 448 KiB
a person). A label map holds the same information in one uint8 channel, and label maps compress
very well, so the store keeps `labels` uint8 (N, 128, 128) chunked per sample and compressed;
the one-hot tensor is rebuilt on the fly when a sample is read.

Layout of segmentation.h5:
    labels  uint8 (N, 128, 128)    0 background, 1 face, 2 hair, 3 arm, 4 upper clothes,
                                   5 lower clothes, 6 legs/rest
    images  uint8 (N, 128, 128, 3) the person, cropped like the labels
    coarse  uint8 (N, 8, 8)        0 background, 1 hair, 2 face, 3 rest: the down-sampled map
                                   the two-stage GAN conditions on
    ids     utf-8 (N,)
"""

from pathlib import Path

import h5py
import numpy as np
from PIL import Image

from pipelines.processing.demo_truth import photos_by_url
from pipelines.processing.h5store import atomic_h5

N_CLASSES = 7
SIZE = 128
COARSE = 8
CLASS_NAMES = ("background", "face", "hair", "arm", "upper_clothes", "lower_clothes", "legs")
COARSE_NAMES = ("background", "hair", "face", "rest")
TO_COARSE = np.array([0, 2, 1, 3, 3, 3, 3], np.uint8)  # 7-class label -> coarse class
STR = h5py.string_dtype("utf-8")


def crop_person(image: np.ndarray, labels: np.ndarray, size: int = SIZE,
                margin: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Square crop around the labelled person (plus a margin), padded with the background
    colour and label 0, resized to size x size (image bilinear, labels nearest)."""
    ys, xs = np.nonzero(labels)
    if len(ys) == 0:
        raise ValueError("the label map has no person")
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    side = int(round(max(y1 - y0, x1 - x0) * (1 + 2 * margin)))
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    top, left = cy - side // 2, cx - side // 2
    background = np.median(image[labels == 0], axis=0) if (labels == 0).any() else 255
    canvas = np.empty((side, side, 3), np.uint8)
    canvas[:] = np.asarray(background, np.uint8)
    lab = np.zeros((side, side), np.uint8)
    sy0, sx0 = max(0, top), max(0, left)
    sy1, sx1 = min(image.shape[0], top + side), min(image.shape[1], left + side)
    canvas[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = image[sy0:sy1, sx0:sx1]
    lab[sy0 - top:sy1 - top, sx0 - left:sx1 - left] = labels[sy0:sy1, sx0:sx1]
    img = Image.fromarray(canvas).resize((size, size), Image.Resampling.BILINEAR)
    lab_img = Image.fromarray(lab).resize((size, size), Image.Resampling.NEAREST)
    return np.asarray(img), np.asarray(lab_img)


COARSE_WEIGHTS = np.array([1.0, 4.0, 4.0, 2.0])  # background, hair, face, rest


def coarse_map(labels: np.ndarray, size: int = COARSE) -> np.ndarray:
    """(N, H, W) 7-class labels -> (N, size, size) 4-class map by a weighted vote per block.

    A plain majority loses the head and the limbs of a standing person at 8x8 (a head is
    narrower than one 16-pixel block), so hair and face count 4x and the rest 2x."""
    coarse = TO_COARSE[labels]
    n, h, w = coarse.shape
    blocks = coarse.reshape(n, size, h // size, size, w // size).transpose(0, 1, 3, 2, 4)
    blocks = blocks.reshape(n, size, size, -1)
    counts = np.stack([(blocks == c).sum(-1) * COARSE_WEIGHTS[c]
                       for c in range(len(COARSE_NAMES))], axis=-1)
    return counts.argmax(-1).astype(np.uint8)


PALETTE = np.array([(255, 255, 255), (241, 194, 125), (90, 56, 37), (230, 150, 120),
                    (220, 60, 60), (60, 90, 200), (120, 120, 120)], np.uint8)


def label_colors(labels: np.ndarray) -> np.ndarray:
    """Label maps (..., H, W) as RGB (..., H, W, 3) for previews."""
    return PALETTE[labels]


def one_hot(labels: np.ndarray) -> np.ndarray:
    """uint8 labels (..., H, W) -> float32 (..., 7, H, W)."""
    classes = np.arange(N_CLASSES, dtype=np.uint8).reshape(N_CLASSES, 1, 1)
    return (labels[..., None, :, :] == classes).astype(np.float32)


def write_store(path: Path, ids, images: np.ndarray, labels: np.ndarray,
                compression: str = "gzip", level: int | None = 4,
                attrs: dict | None = None) -> Path:
    """Write the store; chunked per sample so any sample decodes on its own. `attrs` are
    added to the file's (the human parser marks the label maps it wrote as its own)."""
    images = np.asarray(images, np.uint8)
    labels = np.asarray(labels, np.uint8)
    n = len(ids)
    if labels.shape != (n, SIZE, SIZE) or images.shape != (n, SIZE, SIZE, 3):
        raise ValueError(f"expected {n} labels of {SIZE}x{SIZE} and images of {SIZE}x{SIZE}x3,"
                         f" got {labels.shape} and {images.shape}")
    if labels.size and labels.max() >= N_CLASSES:
        raise ValueError(f"labels must be 0..{N_CLASSES - 1}, found {labels.max()}")
    opts = {"compression": compression, "shuffle": True}
    if compression == "gzip":
        opts["compression_opts"] = level
    path = Path(path)
    with atomic_h5(path) as f:
        chunk = lambda shape: (1, *shape[1:]) if n else None  # noqa: E731
        f.create_dataset("labels", data=labels, chunks=chunk(labels.shape), **opts)
        f.create_dataset("images", data=images, chunks=chunk(images.shape), **opts)
        coarse = coarse_map(labels) if n else np.zeros((0, COARSE, COARSE), np.uint8)
        f.create_dataset("coarse", data=coarse, chunks=chunk(coarse.shape), **opts)
        f.create_dataset("ids", data=np.array(list(ids), dtype=object), dtype=STR)
        f.attrs["classes"] = list(CLASS_NAMES)
        f.attrs["coarse_classes"] = list(COARSE_NAMES)
        for key, value in (attrs or {}).items():
            f.attrs[key] = value
    return path


def segmentations_from_demo(fronts, truth: dict, masks_dir: Path, store_root: Path
                            ) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, int]]:
    """(ids, images (N, 128, 128, 3), labels (N, 128, 128), drops) for the chosen front photos
    (rows with id, image_path relative to store_root, image_url) from the demo shop's label
    maps in masks_dir. A photo the truth has no mask for counts as `no_mask`, a photo that
    does not decode as `unreadable`; both are left out."""
    by_url = photos_by_url(truth)
    masks_dir, store_root = Path(masks_dir), Path(store_root)
    drops = {"no_mask": 0, "unreadable": 0}
    ids, images, labels = [], [], []
    for row in fronts.itertuples(index=False):
        mask_name = by_url.get(row.image_url, {}).get("mask")
        if not mask_name or not (masks_dir / mask_name).exists():
            drops["no_mask"] += 1
            continue
        try:
            with Image.open(store_root / row.image_path) as im:
                photo = np.asarray(im.convert("RGB"))
        except OSError:
            drops["unreadable"] += 1
            continue
        with Image.open(masks_dir / mask_name) as mask:
            image, label = crop_person(photo, np.asarray(mask))
        ids.append(row.id)
        images.append(image)
        labels.append(label)
    return (ids, np.stack(images) if images else np.zeros((0, SIZE, SIZE, 3), np.uint8),
            np.stack(labels) if labels else np.zeros((0, SIZE, SIZE), np.uint8), drops)


def read_ids(path: Path) -> list[str]:
    with h5py.File(path, "r") as f:
        return [s.decode() if isinstance(s, bytes) else s for s in f["ids"][:]]


class SegmentationDataset:
    """Random-access PyTorch Dataset: (one-hot 7x128x128 float32, image 3x128x128 in [-1, 1],
    coarse 8x8 int64). The file is opened lazily, once per process (DataLoader workers too)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._file = None
        with h5py.File(self.path, "r") as f:
            self._len = len(f["labels"])

    def __len__(self) -> int:
        return self._len

    def _h5(self):
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def __getitem__(self, i: int):
        import torch

        f = self._h5()
        labels = f["labels"][i]
        image = f["images"][i]
        return (torch.from_numpy(one_hot(labels)),
                torch.from_numpy(image).permute(2, 0, 1).float().div(127.5).sub(1.0),
                torch.from_numpy(f["coarse"][i].astype(np.int64)))

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None
        return state


# ---- the ICCV17 FashionGAN layout ---------------------------------------------------------
# G2.h5 of "Be Your Own Prada" (Zhu et al.): b_ (N, 1, 128, 128) labels 0-6, ih (N, 3, 128, 128)
# float images with ih_mean (3, 128, 128) subtracted, in [0, 1] before that. Written from MATLAB,
# so the two spatial axes are stored transposed (the Lua code permutes 1,2,4,3 on reading).

def import_fashiongan(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(ids, images uint8 (N, 128, 128, 3), labels uint8 (N, 128, 128)) from a G2.h5-style file."""
    with h5py.File(path, "r") as f:
        b = f["b_"][:]
        ih = f["ih"][:].astype(np.float64)
        mean = f["ih_mean"][:].astype(np.float64) if "ih_mean" in f else 0.0
        ids = ([s.decode() if isinstance(s, bytes) else str(s) for s in f["ids"][:]]
               if "ids" in f else [f"fashiongan-{i:06d}" for i in range(len(b))])
    labels = np.transpose(b[:, 0], (0, 2, 1)).round().astype(np.uint8)
    images = np.transpose(ih + mean, (0, 3, 2, 1))  # N,3,W,H -> N,H,W,3
    if images.max() <= 1.5:
        images = images * 255.0
    return ids, np.clip(images.round(), 0, 255).astype(np.uint8), labels


def export_fashiongan(store: Path, path: Path) -> Path:
    """Write the store back in the G2.h5 layout (b_, ih, ih_mean; ids added)."""
    with h5py.File(store, "r") as f:
        labels, images = f["labels"][:], f["images"][:]
        ids = f["ids"][:]
    x = images.astype(np.float32).transpose(0, 3, 2, 1) / 255.0  # N,H,W,3 -> N,3,W,H
    mean = x.mean(0) if len(x) else np.zeros((3, SIZE, SIZE), np.float32)
    with atomic_h5(path) as f:
        f.create_dataset("b_", data=labels.transpose(0, 2, 1)[:, None].astype(np.uint8),
                         compression="gzip")
        f.create_dataset("ih", data=(x - mean).astype(np.float32), compression="gzip")
        f.create_dataset("ih_mean", data=mean.astype(np.float32))
        f.create_dataset("ids", data=ids, dtype=STR)
    return Path(path)
