"""Losses shared by the families."""

import torch
import torch.nn.functional as F


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    """BCE-with-logits against a constant label (1.0 real, 0.0 fake, 0.9 smoothed). Numerically
    the official example's Sigmoid + BCELoss, and safe under bf16 autocast (computed in fp32)."""
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def pseudo_huber(diff: torch.Tensor, gamma: float = 0.05) -> torch.Tensor:
    """Mean pseudo-Huber penalty γ²(√(1 + (d/γ)²) − 1): quadratic for |d| ≪ γ, linear (≈ γ|d|)
    beyond, so a few badly reconstructed pixels or latents do not dominate the loss."""
    diff = diff.float()
    return (gamma ** 2 * (torch.sqrt(1 + (diff / gamma) ** 2) - 1)).mean()
