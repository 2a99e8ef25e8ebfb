"""Image grids written during and after training (samples, repairs, reconstructions)."""

from pathlib import Path

import torch
from torchvision.utils import save_image


def save_image_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> Path:
    """Images (N, 3, H, W) in [-1, 1] as one PNG, nrow per row."""
    save_image(images.detach().float().cpu(), path, nrow=nrow, normalize=True,
               value_range=(-1, 1))
    return Path(path)


def reconstruction_grid(originals: torch.Tensor, recon: torch.Tensor, path: Path) -> Path:
    """Rows of 8 held-out originals, each followed by the row of their reconstructions."""
    rows = [t for i in range(0, len(originals), 8)
            for t in (originals[i:i + 8], recon[i:i + 8])]
    return save_image_grid(torch.cat([r.detach().float().cpu() for r in rows]), path)
