"""Metrics computed the same way for every model. (So far: the symmetry error.)"""

import torch


def symmetry_error(images: torch.Tensor) -> float:
    """Mean |x − flip(x)| over images (N, C, H, W) in [-1, 1]: 0 for perfectly symmetric
    images. Compare a generator's figure with the same figure on real images."""
    return float((images - images.flip(-1)).abs().mean())
