"""Training data held in memory from the project's HDF5 stores, mapped to [-1, 1].

DataLoader workers inside a Dagster step can hang, and these stores are small enough to hold
(10k 64x64 crops are 120 MB as uint8), so the whole `images` array is read once and kept as
uint8; batches are converted to float on the fly.
"""

from pathlib import Path

import h5py
import numpy as np
import torch


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 in [-1, 1]."""
    return images.float().div(127.5).sub(1.0)


class H5ImageDataset(torch.utils.data.Dataset):
    """`images` uint8 (N, H, W, 3) of an HDF5 store (person_crops.h5, packshots.h5, ...) with
    its `ids`; items are float32 (3, H, W) tensors in [-1, 1], optionally flipped."""

    def __init__(self, path: Path, flip: bool = False, seed: int = 0):
        with h5py.File(path, "r") as f:
            images = f["images"][:]
            self.ids = [s.decode() if isinstance(s, bytes) else s for s in f["ids"][:]]
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"{path}: expected images uint8 (N, H, W, 3), got "
                             f"{images.dtype} {images.shape}")
        self.images = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
        self.flip = flip
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.batch(torch.tensor([i]))[0]

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """A batch by index, without a DataLoader: (B, 3, H, W) in [-1, 1]."""
        x = to_unit_range(self.images[index])
        if self.flip:
            flip = torch.rand(len(x), generator=self.generator) < 0.5
            x[flip] = x[flip].flip(-1)
        return x


def holdout_split(n: int, fraction: float, generator: torch.Generator
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) indices: a seeded random `fraction` of n (at least one) held out."""
    order = torch.randperm(n, generator=generator)
    n_out = max(1, int(round(fraction * n)))
    return order[n_out:], order[:n_out]
