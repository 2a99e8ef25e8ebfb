"""Flip-inversion repair (§2.2 of "Enhancing Symmetry in GAN Generated Fashion Images").

Flip a generated image X and search the latent space for the code whose image is that flip:

    ẑ = argmin_z ‖G(z) − flip(X)‖² + λ‖z‖²     (Adam on z, G frozen)

G(ẑ) is the repaired image: the generator's own rendering of the mirrored garment, which the
paper compares with X for symmetry. The squared norms are means over pixels and latent
dimensions, so λ does not depend on the image size or nz.
"""

import torch
from torch import nn


def flip_inversion(netG: nn.Module, images: torch.Tensor, z_init: torch.Tensor,
                   steps: int = 200, lr: float = 0.05, lam: float = 1e-3
                   ) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """(ẑ, G(ẑ), the objective per step) for generated images (N, 3, H, W) in [-1, 1]."""
    # on the generator's device (the frame's: training.runtime.init_distributed)
    dev = next(netG.parameters()).device
    target = images.detach().to(dev).flip(-1)
    z = z_init.detach().to(dev).clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    was_training = netG.training
    netG.eval()
    requires = [p.requires_grad for p in netG.parameters()]
    for p in netG.parameters():
        p.requires_grad_(False)
    history = []
    try:
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            loss = (netG(z) - target).pow(2).mean() + lam * z.pow(2).mean()
            loss.backward()
            opt.step()
            history.append(loss.item())
        with torch.no_grad():
            repaired = netG(z)
    finally:
        for p, r in zip(netG.parameters(), requires, strict=True):
            p.requires_grad_(r)
        netG.train(was_training)
    return z.detach(), repaired, history
