"""Metrics computed the same way for every model.

Offline, the feature space is the project's attribute classifier (penultimate layer); with an
Inception weights file the same functions give the standard FID/KID on Inception features.
"""

import numpy as np
import torch
from scipy import linalg

from training.losses import bce


def symmetry_error(images: torch.Tensor) -> float:
    """Mean |x − flip(x)| over images (N, C, H, W) in [-1, 1]: 0 for perfectly symmetric
    images. Compare a generator's figure with the same figure on real images."""
    return float((images - images.flip(-1)).abs().mean())


def mean_abs_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean |a − b|: the reconstruction error of BiGAN (pixels, latents) and of flip-inversion."""
    return float((a.float() - b.float()).abs().mean())


@torch.no_grad()
def flip_gap(d_logits, fake: torch.Tensor) -> float:
    """The discriminator's loss on flipped minus original generated images (target "fake"):
    near 0 when D does not care which way a garment faces; d_logits maps images to logits."""
    loss_orig = bce(d_logits(fake), 0.0)
    loss_flip = bce(d_logits(fake.flip(-1)), 0.0)
    return float(loss_flip - loss_orig)


@torch.no_grad()
def embed(feature_fn, images: torch.Tensor, batch_size: int = 256,
          device: torch.device | None = None) -> np.ndarray:
    """Features of images (N, 3, H, W) in [-1, 1], in batches (moved to `device`, the
    feature net's, when given), as float64."""
    out = [feature_fn(images[i:i + batch_size].to(device or images.device)).double().cpu()
           .numpy()
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0))


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> float:
    """‖μr − μf‖² + Tr(Σr + Σf − 2 (Σr Σf)^½) between two feature sets (N, D)."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    # a tiny ridge keeps the matrix square root defined when there are fewer samples than
    # feature dimensions (a small demo catalogue); it changes the distance by ~1e-6 * D
    eps = np.eye(real.shape[1]) * 1e-6
    s1, s2 = np.cov(real, rowvar=False) + eps, np.cov(fake, rowvar=False) + eps
    covmean = linalg.sqrtm(s1 @ s2).real
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def kernel_inception_distance(real: np.ndarray, fake: np.ndarray, subsets: int = 10,
                              subset_size: int = 100, seed: int = 0) -> float:
    """Unbiased MMD² with the cubic polynomial kernel, averaged over random subsets (KID)."""
    rng = np.random.default_rng(seed)
    d = real.shape[1]
    m = min(subset_size, len(real), len(fake))
    total = 0.0
    for _ in range(subsets):
        x = real[rng.choice(len(real), m, replace=False)]
        y = fake[rng.choice(len(fake), m, replace=False)]
        kxx, kyy, kxy = [(a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y))]
        total += ((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                  + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(total / subsets)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al., 2019): the share of generated
    samples inside the real k-NN manifold, and of real samples inside the generated one."""

    def radii(x: np.ndarray) -> np.ndarray:
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, min(k, len(x) - 1)]

    def inside(points: np.ndarray, ref: np.ndarray, r: np.ndarray) -> float:
        d = np.linalg.norm(points[:, None] - ref[None], axis=-1)
        return float((d <= r[None]).any(1).mean())

    return inside(fake, real, radii(real)), inside(real, fake, radii(fake))


def mode_coverage(categories: np.ndarray, colors: np.ndarray, n_categories: int,
                  n_colors: int) -> float:
    """Share of the category x colour classes present among predicted labels of samples."""
    found = set(zip(categories.tolist(), colors.tolist(), strict=True))
    return len(found) / (n_categories * n_colors)


def mode_coverage_real(categories: np.ndarray, colors: np.ndarray, real_categories: np.ndarray,
                       real_colors: np.ndarray) -> float:
    """Share of the category x colour classes found among the real images that the samples
    reach. The vocabulary's product counts classes no garment of the data has (the real
    images themselves reach only part of it), so this is the coverage a perfect sampler scores
    1 on."""
    real = set(zip(real_categories.tolist(), real_colors.tolist(), strict=True))
    found = set(zip(categories.tolist(), colors.tolist(), strict=True))
    return len(found & real) / len(real) if real else 0.0
