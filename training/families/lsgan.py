"""LSGAN (Mao et al., 2017) with the a-b-c coding a = 0 (fake), b = 1 (real), c = 1 (what G
wants D to believe):

    min_D ½·E[(D(x) − 1)²] + ½·E[D(G(z))²]        min_G ½·E[(D(G(z)) − 1)²]

D's output is linear (no sigmoid); one D and one G Adam step per batch, as the collection
(which drops the ½, a constant factor). The squares are taken in fp32.
"""

from dataclasses import dataclass

import torch

from training.classic import R1_DEMO, ClassicConfig, ClassicGAN, detached
from training.family import register


@dataclass
class LSGANConfig(ClassicConfig):
    """LSGAN: the collection's options; the targets are the paper's a = 0, b = c = 1. Its demo
    profile is GAN's (training/families/gan.py): the infogan backbone for 2,000 steps, D
    without batch norm, R1 with γ = 1 (benchmarks/README.md, "Small-data targets")."""

    PROFILES = {**ClassicConfig.PROFILES, "demo": R1_DEMO}


def least_squares(output: torch.Tensor, target: float) -> torch.Tensor:
    """½·E[(D(·) − target)²] in fp32."""
    return 0.5 * (output.float() - target).pow(2).mean()


@register
class LSGAN(ClassicGAN):
    """LSGAN (least squares, a = 0, b = c = 1) on the infogan or dcgan backbone."""

    name = "lsgan"
    Config = LSGANConfig
    losses = ("d_loss", "g_loss", "d_loss_real", "d_loss_fake")

    def step(self, real, labels, gen, measure):
        netG, netD = self.netG, self.D
        z = self.sample_z(len(real), gen)

        # (1) Update D: real towards b = 1, fake towards a = 0
        with self.autocast:
            fake = netG(z)
            out_real, out_fake = self.both(netD, real, fake.detach())
            d_real, d_fake = least_squares(out_real, 1.0), least_squares(out_fake, 0.0)
            errD = d_real + d_fake + self.r1(real)
        self.update("optD", errD)

        # (2) Update G: fake towards c = 1
        with self.autocast:
            errG = least_squares(netD(fake), 1.0)
        self.update("optG", errG)
        return detached({"d_loss": errD, "g_loss": errG, "d_loss_real": d_real,
                         "d_loss_fake": d_fake})
