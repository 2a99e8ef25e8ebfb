"""Training data held in memory, mapped to [-1, 1]: the project's HDF5 image stores and
Fashion-MNIST's IDX files.

DataLoader workers inside a Dagster step can hang, and these data sets are small enough to hold
(10k 64x64 crops are 120 MB as uint8, Fashion-MNIST's 60k 28x28 images 47 MB), so the whole
image array is read once and kept as uint8 (N, C, H, W); batches are converted to float on the
fly. `open_dataset` is what --data opens: a folder is Fashion-MNIST, a file an HDF5 store; it
can resize and convert grey <-> RGB once, in memory, so a family meets the size it was built for.
Translators read two domains: a paired store (training/paired.py) as aligned (source, target)
batches (PairedDataset), or two domains of any store (UnpairedDataset) with the target side
drawn at random.
"""

import gzip
import struct
from pathlib import Path

import h5py
import numpy as np
import torch

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
                         "Shirt", "Sneaker", "Bag", "Ankle boot")
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
IDX_UBYTE = 0x08  # the IDX type code of unsigned bytes
LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, C, H, W) -> float32 in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


def label_groups(label_names: list[str], columns: tuple[str, ...] | list[str], source: str
                 ) -> dict[str, list[int]]:
    """{column: indices of its one-hot `<column>_<value>` entries in label_names}; a column
    with no entries is a one-line error naming the columns the store has."""
    groups = {c: [i for i, n in enumerate(label_names) if n.startswith(f"{c}_")]
              for c in columns}
    missing = [c for c, idx in groups.items() if not idx]
    if missing:
        known = sorted({n.rsplit("_", 1)[0] for n in label_names})
        raise ValueError(f"{source}: no label column {', '.join(map(repr, missing))}; "
                         f"the store has: {', '.join(known) or 'no labels'}")
    return groups


def read_label_index(onehot: np.ndarray | None, label_names: list[str],
                     columns: tuple[str, ...], n: int, source: str
                     ) -> tuple[torch.Tensor, dict[str, list[str]]]:
    """(class index per column (n, len(columns)), -1 = no value; {column: its values}) from a
    store's one-hot `labels` named `<column>_<value>`."""
    if not columns:
        return torch.zeros(n, 0, dtype=torch.long), {}
    if onehot is None:
        raise ValueError(f"{source}: label columns {list(columns)} asked for, but the store "
                         "has no `labels`")
    values, index = {}, []
    for column, idx in label_groups(label_names, columns, source).items():
        values[column] = [label_names[i][len(column) + 1:] for i in idx]
        block = onehot[:, idx]
        index.append(np.where(block.any(1), block.argmax(1), -1))
    return torch.from_numpy(np.stack(index, 1)).long(), values


class ImageDataset(torch.utils.data.Dataset):
    """uint8 images (N, C, H, W) with ids and a class index per asked label column (-1 = no
    value); items and batches are float32 in [-1, 1], optionally flipped left-right with the
    dataset's own seeded generator (restarted by `reseed`, saved by the loop's checkpoints)."""

    ids: list[str]
    images: torch.Tensor
    label_columns: tuple[str, ...]
    label_values: dict[str, list[str]]
    label_index: torch.Tensor

    def __init__(self, flip: bool = False, seed: int = 0):
        self.flip = flip
        self.generator = torch.Generator().manual_seed(seed)
        self.label_columns = ()
        self.label_values = {}

    @property
    def image_size(self) -> int:
        return self.images.shape[-1]

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    def reseed(self, seed: int) -> None:
        """Restart the flip stream (each torchrun rank flips with its own seed)."""
        self.generator.manual_seed(seed)

    def labels_of(self, index: torch.Tensor) -> torch.Tensor:
        """Class index per label column, (B, len(label_columns)); -1 = no value."""
        return self.label_index[index]

    def labelled(self) -> torch.Tensor:
        """Indices of the images with a value in every label column."""
        return torch.nonzero((self.label_index >= 0).all(1)).flatten()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.batch(torch.tensor([i]))[0]

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """A batch by index, without a DataLoader: (B, C, H, W) in [-1, 1]."""
        x = to_unit_range(self.images[index])
        if self.flip:
            flip = torch.rand(len(x), generator=self.generator) < 0.5
            x[flip] = x[flip].flip(-1)
        return x


class H5ImageDataset(ImageDataset):
    """`images` uint8 of an HDF5 store (person_crops.h5, packshots.h5, ...) with its `ids`:
    RGB (N, H, W, 3) or grey (N, H, W, 1) / (N, H, W); items are float32 (C, H, W) tensors
    in [-1, 1], optionally flipped.

    label_columns (e.g. ("category", "color")) reads the store's one-hot `labels` (named by the
    `label_names` attribute, `<column>_<value>`) as one class index per column, -1 where the
    product has no value: `labels_of(index)` (B, len(label_columns)), `label_values[column]`."""

    def __init__(self, path: Path, flip: bool = False, seed: int = 0,
                 label_columns: tuple[str, ...] | list[str] = ()):
        super().__init__(flip, seed)
        with h5py.File(path, "r") as f:
            images = f["images"][:]
            self.ids = [s.decode() if isinstance(s, bytes) else s for s in f["ids"][:]]
            onehot = f["labels"][:] if label_columns and "labels" in f else None
            names = [str(n) for n in f.attrs.get("label_names", [])]
        if images.dtype == np.uint8 and images.ndim == 3:
            images = images[..., None]  # grey (N, H, W)
        if images.ndim != 4 or images.shape[-1] not in (1, 3) or images.dtype != np.uint8:
            raise ValueError(f"{path}: expected images uint8 (N, H, W, 3), (N, H, W, 1) or "
                             f"(N, H, W), got {images.dtype} {images.shape}")
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        self.label_columns = tuple(label_columns)
        self.label_index, self.label_values = read_label_index(
            onehot, names, self.label_columns, len(images), str(path))


DIRECTIONS = ("a2b", "b2a")
TRAIN_SPLIT, TEST_SPLIT = 0, 2  # the stores' split codes: 0 train, 1 val, 2 test


def is_paired_store(path: Path) -> bool:
    """A paired store (training/paired.py) holds its two domains as datasets `a` and `b`."""
    try:
        with h5py.File(path, "r") as f:
            return "a" in f and "b" in f
    except OSError:  # not HDF5: H5ImageDataset says so
        return False


def read_domains_store(path: Path) -> dict:
    """A paired store or an image store as arrays: {name: images (N, C, H, W) uint8} (`a`
    and `b`, or `images`), ids, one-hot labels and their names, split (0 = train where the
    store has none), the paired store's domain names."""
    with h5py.File(path, "r") as f:
        keys = ("a", "b") if "a" in f and "b" in f else ("images",)
        missing = [k for k in (*keys, "ids") if k not in f]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)}; expected an image store "
                             "(images, ids) or a paired store (a, b, ids)")
        out = {"images": {}, "ids": [s.decode() if isinstance(s, bytes) else str(s)
                                     for s in f["ids"][:]]}
        n = len(out["ids"])
        for key in keys:
            images = f[key][:]
            if images.dtype == np.uint8 and images.ndim == 3:
                images = images[..., None]
            if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3) \
                    or len(images) != n:
                raise ValueError(f"{path}: expected `{key}` uint8 ({n}, H, W, 3) or "
                                 f"({n}, H, W, 1), got {images.dtype} {images.shape}")
            out["images"][key] = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        out["labels"] = f["labels"][:] if "labels" in f else None
        out["label_names"] = [str(x) for x in f.attrs.get("label_names", [])]
        out["split"] = (torch.from_numpy(f["split"][:].astype(np.int64)) if "split" in f
                        else torch.zeros(n, dtype=torch.long))
        out["split_names"] = [str(x) for x in f.attrs.get("split_names",
                                                           ["train", "val", "test"])]
        out["names"] = (str(f.attrs.get("a_name", "a")), str(f.attrs.get("b_name", "b")))
    return out


def check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {list(DIRECTIONS)}, got {direction!r}")


class PairedDataset(ImageDataset):
    """A paired store (datasets/paired_images.h5): `images` is the source domain, `targets`
    the target, aligned row by row (the same product); `batch(idx)` is the tuple (source,
    target) in [-1, 1], flipped together. direction "a2b" translates `a` (packshots) into `b`
    (person crops), "b2a" the other way. `split` (0 train, 1 val, 2 test), labels as in
    H5ImageDataset (of the product, so of both images)."""

    targets: torch.Tensor

    def __init__(self, path: Path | str, flip: bool = False, seed: int = 0,
                 label_columns: tuple[str, ...] | list[str] = (), direction: str = "a2b"):
        super().__init__(flip, seed)
        check_direction(direction)
        path = Path(path)
        store = read_domains_store(path)
        if set(store["images"]) != {"a", "b"}:
            raise ValueError(f"{path}: not a paired store (no datasets `a` and `b`)")
        keys, names = ("a", "b"), store["names"]
        if direction == "b2a":
            keys, names = keys[::-1], names[::-1]
        self.direction = direction
        self.images, self.targets = (store["images"][k] for k in keys)
        self.a_name, self.b_name = names
        self.ids, self.split, self.split_names = store["ids"], store["split"], store["split_names"]
        self.label_columns = tuple(label_columns)
        self.label_index, self.label_values = read_label_index(
            store["labels"], store["label_names"], self.label_columns, len(self.ids), str(path))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.batch(torch.tensor([i]))
        return a[0], b[0]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(source, target) (B, C, H, W) each in [-1, 1]; a flipped pair flips both."""
        a, b = to_unit_range(self.images[index]), to_unit_range(self.targets[index])
        if self.flip:
            flip = torch.rand(len(a), generator=self.generator) < 0.5
            a[flip], b[flip] = a[flip].flip(-1), b[flip].flip(-1)
        return a, b

    def targets_of(self, index: torch.Tensor) -> torch.Tensor:
        """The target images of `index` in [-1, 1], never flipped (for measures)."""
        return to_unit_range(self.targets[index])

    def images_of(self, index: torch.Tensor) -> torch.Tensor:
        """The source images of `index` in [-1, 1], never flipped."""
        return to_unit_range(self.images[index])

    def train_index(self) -> torch.Tensor:
        return torch.nonzero(self.split == TRAIN_SPLIT).flatten()

    def test_index(self) -> torch.Tensor:
        return torch.nonzero(self.split == TEST_SPLIT).flatten()

    def domain_sizes(self) -> dict[str, int]:
        """Training images per domain (check_domain_sizes names them)."""
        n = len(self.train_index())
        return {f"{self.a_name} (train)": n, f"{self.b_name} (train)": n}


class UnpairedDataset(ImageDataset):
    """Two domains of different sizes for unpaired translation (CycleGAN, MUNIT): `images` is
    domain A, `targets` domain B. domains = (column, value_a, value_b) takes the products with
    each value of a label column (`color`, "black", "white") from an image store's `images` or
    a paired store's packshots (`a`); ("store", "packshot", "person") takes a paired store's
    two sides. `batch(idx)` is (A[idx], B[random training rows drawn with the dataset's
    generator]), each flipped on its own; the loop checkpoints that generator, so a resumed run
    draws the same B images. direction "b2a" swaps the domains."""

    targets: torch.Tensor

    def __init__(self, path: Path | str, domains: tuple[str, str, str] | list[str],
                 flip: bool = False, seed: int = 0,
                 label_columns: tuple[str, ...] | list[str] = (), direction: str = "a2b"):
        super().__init__(flip, seed)
        check_direction(direction)
        path = Path(path)
        if isinstance(domains, str) or len(domains) != 3:
            raise ValueError(f"domains must be (column, value A, value B), e.g. (color, black, "
                             f"white) or (store, packshot, person), got {domains!r}")
        column, value_a, value_b = (str(d) for d in domains)
        if direction == "b2a":
            value_a, value_b = value_b, value_a
        if value_a == value_b:
            raise ValueError(f"domains: A and B are both {column}={value_a!r}; name two values")
        store = read_domains_store(path)
        self.label_columns = tuple(label_columns)
        label_index, self.label_values = read_label_index(
            store["labels"], store["label_names"], self.label_columns, len(store["ids"]),
            str(path))
        if column == "store":
            sides = dict(zip(store["names"], ("a", "b"), strict=True))
            if "a" not in store["images"]:
                raise ValueError(f"{path}: domains ('store', …) need a paired store (datasets "
                                 "`a` and `b`, e.g. datasets/paired_images.h5)")
            unknown = [v for v in (value_a, value_b) if v not in sides]
            if unknown:
                raise ValueError(f"{path}: no domain {', '.join(map(repr, unknown))} in the "
                                 f"store; it has: {', '.join(store['names'])}")
            rows = torch.arange(len(store["ids"]))
            picked = [(store["images"][sides[v]], rows) for v in (value_a, value_b)]
        else:
            images = store["images"].get("a", store["images"].get("images"))
            if store["labels"] is None:
                raise ValueError(f"{path}: domains by label column {column!r} need the "
                                 "store's `labels`, and it has none")
            names = store["label_names"]
            idx = label_groups(names, (column,), str(path))[column]
            values = [names[i][len(column) + 1:] for i in idx]
            unknown = [v for v in (value_a, value_b) if v not in values]
            if unknown:
                raise ValueError(f"{path}: no value {', '.join(map(repr, unknown))} in label "
                                 f"column {column!r}; it has: {', '.join(values)}")
            picked = []
            for v in (value_a, value_b):
                has = store["labels"][:, names.index(f"{column}_{v}")] > 0
                rows = torch.from_numpy(np.flatnonzero(has))
                picked.append((images[rows], rows))
        (self.images, rows_a), (self.targets, rows_b) = picked
        self.domains = (column, value_a, value_b)
        self.direction = direction
        self.a_name, self.b_name = (value_a, value_b) if column == "store" else \
            (f"{column}={value_a}", f"{column}={value_b}")
        self.ids = [store["ids"][i] for i in rows_a.tolist()]
        self.target_ids = [store["ids"][i] for i in rows_b.tolist()]
        self.split, self.target_split = store["split"][rows_a], store["split"][rows_b]
        self.split_names = store["split_names"]
        self.label_index, self.target_label_index = label_index[rows_a], label_index[rows_b]
        self.b_pool = torch.nonzero(self.target_split == TRAIN_SPLIT).flatten()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.batch(torch.tensor([i]))
        return a[0], b[0]

    def batch(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(A[index], as many B training images drawn at random), each in [-1, 1]."""
        if not len(self.b_pool):
            raise ValueError(f"domain B {self.b_name} has no training images")
        draw = torch.randint(0, len(self.b_pool), (len(index),), generator=self.generator)
        a = to_unit_range(self.images[index])
        b = to_unit_range(self.targets[self.b_pool[draw]])
        if self.flip:
            for x in (a, b):
                flip = torch.rand(len(x), generator=self.generator) < 0.5
                x[flip] = x[flip].flip(-1)
        return a, b

    def images_of(self, index: torch.Tensor) -> torch.Tensor:
        """Domain A images of `index` in [-1, 1], never flipped (for measures)."""
        return to_unit_range(self.images[index])

    def targets_of(self, index: torch.Tensor) -> torch.Tensor:
        """Domain B images of `index` (rows of `targets`) in [-1, 1], never flipped."""
        return to_unit_range(self.targets[index])

    def train_index(self) -> torch.Tensor:
        """Domain A's training rows (B's are `b_pool`)."""
        return torch.nonzero(self.split == TRAIN_SPLIT).flatten()

    def test_index(self) -> torch.Tensor:
        """Domain A's test rows."""
        return torch.nonzero(self.split == TEST_SPLIT).flatten()

    def target_test_index(self) -> torch.Tensor:
        """Domain B's test rows."""
        return torch.nonzero(self.target_split == TEST_SPLIT).flatten()

    def domain_sizes(self) -> dict[str, int]:
        """Training images per domain (check_domain_sizes names them)."""
        return {f"A {self.a_name}": len(self.train_index()), f"B {self.b_name}": len(self.b_pool)}


def check_domain_sizes(data: ImageDataset, batch_size: int) -> None:
    """Refuse, before training, a domain with fewer than 2 batches of training images: a
    one-line ValueError naming every domain's count."""
    sizes = (data.domain_sizes() if hasattr(data, "domain_sizes")
             else {"images": len(data)})
    need = 2 * batch_size
    if any(n < need for n in sizes.values()):
        said = ", ".join(f"{name}: {n}" for name, n in sizes.items())
        raise ValueError(f"too few training images per domain for batch_size {batch_size} "
                         f"(each needs 2 batches, {need}): {said}")


def idx_path(folder: Path, name: str) -> Path | None:
    """The IDX file `name` in folder, gzipped or plain (the .gz wins when both are there)."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: Path, ndim: int, item_shape: tuple[int, ...] = ()) -> np.ndarray:
    """An IDX file of unsigned bytes with `ndim` dimensions (items of `item_shape`), checked:
    the magic number, the dimensions and the size the header promises (one-line ValueErrors
    naming the file)."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: not a readable gzip file ({e}); re-download it or "
                         "store it unzipped") from None
    head = 4 + 4 * ndim
    expected_magic = (IDX_UBYTE << 8) | ndim
    if len(raw) < 4 or struct.unpack(">I", raw[:4])[0] != expected_magic:
        got = f"0x{struct.unpack('>I', raw[:4])[0]:08x}" if len(raw) >= 4 else "nothing"
        raise ValueError(f"{path}: not an IDX file of {ndim}-D unsigned bytes: magic number "
                         f"{got}, expected 0x{expected_magic:08x}")
    if len(raw) < head:
        raise ValueError(f"{path}: truncated IDX header ({len(raw)} bytes, expected {head})")
    dims = struct.unpack(f">{ndim}I", raw[4:head])
    if item_shape and tuple(dims[1:]) != item_shape:
        raise ValueError(f"{path}: items of {'x'.join(map(str, dims[1:]))}, expected "
                         f"{'x'.join(map(str, item_shape))} (Fashion-MNIST)")
    size = int(np.prod(dims, dtype=np.int64))
    if len(raw) - head != size:
        raise ValueError(f"{path}: the header promises {' x '.join(map(str, dims))} = {size} "
                         f"bytes, the file holds {len(raw) - head} (truncated or not this "
                         "file?)")
    return np.frombuffer(raw, np.uint8, size, head).reshape(dims)


def missing_idx_message(folder: Path, missing: list[str]) -> str:
    names = ", ".join(n for pair in IDX_FILES.values() for n in pair)
    return (f"{folder}: no {', '.join(missing)}; a Fashion-MNIST folder holds the four IDX "
            f"files {names} (each gzipped .gz or plain); put them in {folder} (nothing is "
            f"downloaded at run time; with internet they are at {FASHION_MNIST_URL})")


class IDXDataset(ImageDataset):
    """Fashion-MNIST from its four IDX files in a folder (gzipped or not): one split's 28x28
    grey images (N, 1, 28, 28) and the ten classes as the label column `class`
    (`label_values["class"]` = the class names). Nothing is downloaded."""

    def __init__(self, folder: Path | str, split: str = "train", flip: bool = False,
                 seed: int = 0, label_columns: tuple[str, ...] | list[str] = ("class",)):
        super().__init__(flip, seed)
        folder = Path(folder)
        if split not in IDX_FILES:
            raise ValueError(f"split must be one of {list(IDX_FILES)}, got {split!r}")
        unknown = [c for c in label_columns if c != "class"]
        if unknown:
            raise ValueError(f"{folder}: no label column {', '.join(map(repr, unknown))}; "
                             "Fashion-MNIST has: class")
        names = IDX_FILES[split]
        paths = [idx_path(folder, n) for n in names]
        missing = [n for n, p in zip(names, paths, strict=True) if p is None]
        if missing:
            raise ValueError(missing_idx_message(folder, missing))
        images = read_idx(paths[0], 3, (28, 28))
        labels = read_idx(paths[1], 1)
        if len(images) != len(labels):
            raise ValueError(f"{paths[0]} has {len(images)} images but {paths[1]} has "
                             f"{len(labels)} labels; expected one label per image")
        if len(labels) and labels.max() >= len(FASHION_MNIST_CLASSES):
            raise ValueError(f"{paths[1]}: label {int(labels.max())}, expected classes 0-"
                             f"{len(FASHION_MNIST_CLASSES) - 1}")
        self.split = split
        self.ids = [f"{split}-{i:05d}" for i in range(len(images))]
        self.images = torch.from_numpy(images.copy()).unsqueeze(1)
        self.classes = torch.from_numpy(labels.astype(np.int64))
        self.label_columns = tuple(label_columns)
        if self.label_columns:
            self.label_values = {"class": list(FASHION_MNIST_CLASSES)}
            self.label_index = self.classes[:, None].repeat(1, len(self.label_columns))
        else:
            self.label_index = torch.zeros(len(images), 0, dtype=torch.long)


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size), antialiased bilinear, in chunks.

    interpolate's own uint8 kernel (the same filter in fixed point, at most one grey level
    from the float path) is 4-8x faster on the CPU (60k 28->64: 2.6 s against 21 s); the
    float path is the fallback where a torch build lacks it."""
    if images.shape[-2:] == (size, size):
        return images
    out = torch.empty(len(images), images.shape[1], size, size, dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        part = images[i:i + chunk]
        try:
            out[i:i + chunk] = torch.nn.functional.interpolate(
                part, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        except (RuntimeError, NotImplementedError):
            x = torch.nn.functional.interpolate(part.float(), size=(size, size),
                                                mode="bilinear", antialias=True,
                                                align_corners=False)
            out[i:i + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def convert_channels(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 (N, C, H, W) grey <-> RGB: grey -> RGB repeats, RGB -> grey is ITU-R 601 luma."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 1 and channels == 3:
        return images.repeat(1, 3, 1, 1)
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round_().clamp_(0, 255) \
            .to(torch.uint8)
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels "
                     "(1 = grey, 3 = RGB)")


def holdout_split(n: int, fraction: float, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) indices: a seeded random `fraction` of n (at least one) held out."""
    order = torch.randperm(n, generator=generator)
    n_out = max(1, int(round(fraction * n)))
    return order[n_out:], order[:n_out]


def fit_images(images: torch.Tensor, image_size: int | None, channels: int | None
               ) -> torch.Tensor:
    """Resize and convert grey <-> RGB once (converting first when that leaves less to
    resize)."""
    fewer = channels is not None and channels < images.shape[1]
    if fewer:
        images = convert_channels(images, channels)
    if image_size is not None:
        images = resize_images(images, image_size)
    if channels is not None and not fewer:
        images = convert_channels(images, channels)
    return images


def open_dataset(path: Path | str, flip: bool = False, seed: int = 0,
                 label_columns: tuple[str, ...] | list[str] = (), image_size: int | None = None,
                 channels: int | None = None, split: str = "train", direction: str = "a2b",
                 domains: tuple[str, str, str] | list[str] | None = None,
                 descriptions: Path | str | None = None) -> ImageDataset:
    """The training data behind --data: a folder is Fashion-MNIST (IDXDataset, `split`), a
    file an HDF5 image store (H5ImageDataset; its split is the families' holdout), a paired
    store (datasets `a` and `b`) a PairedDataset in `direction`, and any store with `domains`
    an UnpairedDataset. image_size and channels (1 grey, 3 RGB) convert the images (and a
    translator's targets) once, in memory. A segmentation store with `descriptions` (the
    two-stage FashionGAN's) is a training.fashiongan_data.FashionGANDataset."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"--data {path}: no such file or folder")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (RGB), got {channels!r}")
    if image_size is not None and image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size!r}")
    check_direction(direction)
    if descriptions is not None:  # segmentation.h5 joined with descriptions.h5 by product id
        from training.fashiongan_data import open_fashiongan

        return open_fashiongan(path, descriptions, image_size=image_size, flip=flip, seed=seed)
    data: ImageDataset
    if domains:
        if path.is_dir():
            raise ValueError(f"--data {path}: domains {tuple(domains)} need an HDF5 store "
                             "(packshots.h5 or paired_images.h5), not a Fashion-MNIST folder")
        data = UnpairedDataset(path, domains, flip=flip, seed=seed,
                               label_columns=label_columns, direction=direction)
    elif not path.is_dir() and is_paired_store(path):
        data = PairedDataset(path, flip=flip, seed=seed, label_columns=label_columns,
                             direction=direction)
    elif direction != "a2b":
        raise ValueError(f"--data {path}: direction {direction!r} needs a paired store "
                         "(datasets `a` and `b`: datasets/paired_images.h5) or domains")
    elif path.is_dir():
        data = IDXDataset(path, split=split, flip=flip, seed=seed, label_columns=label_columns)
    else:
        data = H5ImageDataset(path, flip=flip, seed=seed, label_columns=label_columns)
    data.images = fit_images(data.images, image_size, channels)
    if isinstance(data, (PairedDataset, UnpairedDataset)):
        data.targets = fit_images(data.targets, image_size, channels)
    return data
