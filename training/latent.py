"""The latent distributions of the families: DCGAN samples z ~ N(0, I), BiGAN z ~ U[-1, 1].
Registered generators carry theirs as the model-version tag `latent`, so the leaderboard
samples each the way it was trained."""

import torch

LATENTS = ("normal", "uniform")


def sample_latent(n: int, nz: int, kind: str = "normal",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """z shaped (n, nz, 1, 1) for the DCGAN-style generators."""
    if kind == "normal":
        return torch.randn(n, nz, 1, 1, generator=generator)
    if kind == "uniform":
        return torch.rand(n, nz, 1, 1, generator=generator) * 2 - 1
    raise ValueError(f"latent must be one of {LATENTS}, got {kind!r}")
