"""Differentiable augmentation for GANs on little data (Zhao et al., 2020, "Differentiable
Augmentation for Data-Efficient GAN Training").

With a few hundred images D memorises the training set within a few hundred steps (d_loss -> 0,
G's gradients vanish). DiffAugment applies the same policy to every image D sees, real and
generated, in D's update and in G's: the augmentations are differentiable, so G's gradient flows
back through them, and G is never rewarded for producing augmented images (D never sees an
un-augmented one). Real and fake images get independent draws of the same policy, as in the
paper. All randomness comes from the torch.Generator passed in (the loop's `gen`, saved in
checkpoints), so runs are reproducible and resume exactly.

Policies (comma-separated, applied in this order):
- color:       brightness ± 0.5, saturation x [0, 2], contrast x [0.5, 1.5], per image;
- translation: a shift of up to 1/8 of the side in x and y, per image, zero (grey) padding;
- cutout:      a zeroed square of half the side at a random place, per image.
`p` < 1 applies each operation to each image with probability p (a weaker augmentation).
"""

import torch
import torch.nn.functional as F

OPERATIONS = ("color", "translation", "cutout")
# the combinations the configs accept ("" = off)
POLICIES = ("", "color", "translation", "cutout", "color,translation", "translation,cutout",
            "color,cutout", "color,translation,cutout")


def parse_policy(policy: str) -> list[str]:
    """The operations of a policy string, in the canonical order; unknown names refused."""
    ops = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in ops if p not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(unknown)}; known: "
                         f"{', '.join(OPERATIONS)}")
    return [op for op in OPERATIONS if op in ops]


def _uniform(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(B, 1, 1, 1) uniform [0, 1) draws from the CPU generator, on x's device and dtype."""
    return torch.rand(x.shape[0], 1, 1, 1, generator=generator).to(x.device, x.dtype)


def color(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    x = x + (_uniform(x, generator) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_uniform(x, generator) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_uniform(x, generator) + 0.5) + mean


def translation(x: torch.Tensor, generator: torch.Generator | None = None,
                ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (b, 1, 1), generator=generator).to(x.device)
    tx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=generator).to(x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(b, device=x.device),
                                torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)  # zero border: out-of-image pixels
    return padded[gb, gy, gx].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None,
           ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=generator).to(x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=generator).to(x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(b, device=x.device),
                                torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)


AUGMENTATIONS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: str, generator: torch.Generator | None = None,
                 p: float = 1.0) -> torch.Tensor:
    """x (B, C, H, W) augmented by every operation of `policy` (differentiable in x; "" returns
    x itself and draws nothing, so a run without augmentation keeps its random stream). With
    p < 1 each operation is applied to each image with probability p."""
    for op in parse_policy(policy):
        out = AUGMENTATIONS[op](x, generator)
        if p < 1:
            keep = _uniform(x, generator) < p
            out = torch.where(keep, out, x)
        x = out
    return x
