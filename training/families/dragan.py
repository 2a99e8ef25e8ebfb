"""DRAGAN (Kodali et al., 2017): the GAN objective (non-saturating G loss) with a gradient
penalty around the real data, λ·E[(‖∇D(x̂)‖₂ − 1)²] at x̂ = x + α(x_p − x), x_p = x + c·std(x)·u,
u ~ U[0, 1] per pixel, α ~ U[0, 1] per sample: the perturbation of the authors' code and of the
collection (c = 0.5), λ = 10 as the paper (the collection used 0.25). One D and one G
Adam(2e-4, (0.5, 0.999)) step per batch, as the collection. D has layer norm (or none) instead
of batch norm: the penalty is per sample. The penalty's double backward runs in bf16 where the
step does (penalty_bf16; fp32 as an option).
"""

from dataclasses import dataclass

import torch

from training.classic import SMALL_DATA_DEMO, ClassicConfig, ClassicGAN, detached
from training.family import option, register
from training.losses import bce, gradient_penalty


@dataclass
class DRAGANConfig(ClassicConfig):
    lambda_gp: float = option(10.0, "weight λ of the gradient penalty (the paper's 10)", ge=0)
    perturb: float = option(0.5, "c: x_p = x + c·std(x)·U[0, 1]", gt=0)
    d_norm: str = option("layer", "D's normalisation (no batch norm with a gradient penalty)",
                         choices=("layer", "none"))
    penalty_bf16: bool = option(True, "the penalty's double backward under bf16 autocast too, "
                                "where bf16 is on: 1.1-1.4x the images/s on the CPU, the same "
                                "scores at 3 seeds (false: in fp32)")

    # the demo: the 32 px nets for 2,000 steps, D without normalisation (benchmarks/README.md,
    # "Small-data targets": at the former 300 steps G collapsed in one seed of three)
    PROFILES = {**ClassicConfig.PROFILES, "demo": SMALL_DATA_DEMO}


def perturbed(real: torch.Tensor, c: float, gen: torch.Generator) -> torch.Tensor:
    """x̂ = x + α(x_p − x), x_p = x + c·std(x)·u: points in a noisy neighbourhood of the data."""
    real = real.float()
    u = torch.rand(real.shape, generator=gen).to(real.device)
    alpha = torch.rand(len(real), 1, 1, 1, generator=gen).to(real.device)
    return real + alpha * (c * real.std() * u)


@register
class DRAGAN(ClassicGAN):
    """DRAGAN (gradient penalty around perturbed real data, λ = 10) on either backbone."""

    name = "dragan"
    Config = DRAGANConfig
    losses = ("d_loss", "g_loss", "d_loss_real", "d_loss_fake", "gradient_penalty")
    small_data = ("augment", "ema")  # its own penalty; no R1
    penalty = True

    def step(self, real, labels, gen, measure):
        cfg, netG, netD = self.cfg, self.netG, self.D
        z = self.sample_z(len(real), gen)

        # (1) Update D: the GAN loss + the penalty around the real data
        with self.autocast:
            fake = netG(z)
            out_real, out_fake = self.both(netD, real, fake.detach())  # no batch norm in D
            d_real, d_fake = bce(out_real, 1.0), bce(out_fake, 0.0)
        penalty = gradient_penalty(self.netD, perturbed(real, cfg.perturb, gen),
                                   bf16=self.penalty_bf16)
        errD = d_real + d_fake + cfg.lambda_gp * penalty
        self.update("optD", errD)

        # (2) Update G: maximise log D(G(z))
        with self.autocast:
            errG = bce(netD(fake), 1.0)
        self.update("optG", errG)
        return detached({"d_loss": errD, "g_loss": errG, "d_loss_real": d_real,
                         "d_loss_fake": d_fake, "gradient_penalty": penalty})
