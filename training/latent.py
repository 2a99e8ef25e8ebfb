"""The inputs of every registered sampler, from its registry tags alone.

A sampler (kind `sampler` or `conditional`) takes one tensor (N, D, 1, 1): the latent z drawn
from its prior (tag `latent`), followed for conditional samplers by one one-hot block per label
column (tags `label_columns`, `label_sizes`). So the leaderboard samples each model the way it
was trained, and a user can too:
- `normal`: z ~ N(0, I) (DCGAN and most of the classic collection);
- `uniform`: z ~ U[-1, 1] (BiGAN);
- `infogan:<noise>:<categorical>:<continuous>`: z ~ N(0, I) for the noise, a one-hot
  categorical code, continuous codes ~ U[-1, 1] (infoGAN), <noise + categorical + continuous>
  dimensions in all.
"""

import torch

LATENTS = ("normal", "uniform", "infogan:<noise>:<categorical>:<continuous>")


def infogan_dims(kind: str) -> tuple[int, int, int]:
    _, noise, cat, cont = kind.split(":")
    return int(noise), int(cat), int(cont)


def sample_latent(n: int, nz: int, kind: str = "normal",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """z shaped (n, nz, 1, 1) for the DCGAN-style generators."""
    if kind == "normal":
        return torch.randn(n, nz, 1, 1, generator=generator)
    if kind == "uniform":
        return torch.rand(n, nz, 1, 1, generator=generator) * 2 - 1
    if kind.startswith("infogan:"):
        noise, cat, cont = infogan_dims(kind)
        if noise + cat + cont != nz:
            raise ValueError(f"latent {kind!r} has {noise + cat + cont} dimensions, nz is {nz}")
        codes = torch.randint(0, max(cat, 1), (n,), generator=generator)
        return torch.cat([torch.randn(n, noise, generator=generator),
                          one_hot(codes, cat),
                          torch.rand(n, cont, generator=generator) * 2 - 1], 1).view(n, nz, 1, 1)
    raise ValueError(f"latent must be one of {LATENTS}, got {kind!r}")


def one_hot(index: torch.Tensor, size: int) -> torch.Tensor:
    """(N,) class indices -> (N, size) float one-hot."""
    return torch.nn.functional.one_hot(index.long(), size).float() if size else \
        torch.zeros(len(index), 0)


def condition(labels: torch.Tensor, sizes: list[int] | tuple[int, ...]) -> torch.Tensor:
    """(N, k) class indices, one per label column -> (N, sum(sizes)) concatenated one-hots."""
    return torch.cat([one_hot(labels[:, i], s) for i, s in enumerate(sizes)], 1)


def sampler_inputs(n: int, tags: dict, generator: torch.Generator | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(inputs (n, D, 1, 1), requested labels (n, k) or None) for a registered version's tags:
    `nz` and `latent`, plus `label_columns` / `label_sizes` for a conditional sampler, whose
    labels are drawn uniformly per column."""
    nz = int(tags.get("nz", 100))
    z = sample_latent(n, nz, tags.get("latent", "normal"), generator)
    sizes = [int(s) for s in str(tags.get("label_sizes", "")).split(",") if s]
    if not sizes:
        return z, None
    labels = torch.stack([torch.randint(0, s, (n,), generator=generator) for s in sizes], 1)
    return torch.cat([z.flatten(1), condition(labels, sizes)], 1)[..., None, None], labels
