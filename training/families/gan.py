"""GAN (Goodfellow et al., 2014) with the non-saturating generator loss, as the classic
collection trains it: D maximises log D(x) + log(1 − D(G(z))), G maximises log D(G(z)) (the
paper's practical alternative to minimising log(1 − D(G(z)))); one D and one G Adam step per
batch. BCE on logits (numerically the collection's Sigmoid + BCELoss, safe under bf16).
"""

from dataclasses import dataclass

from training.classic import R1_DEMO, ClassicConfig, ClassicGAN, detached
from training.family import register
from training.losses import bce


@dataclass
class GANConfig(ClassicConfig):
    """The original GAN: no options beyond the collection's. Its demo profile trains the
    infogan backbone (32 px) for 2,000 steps with a D without batch norm and the R1 penalty
    (γ = 1): on the 200-product demo shop the papers' batch-norm D collapses G to a few garments
    (benchmarks/README.md, "Small-data targets"). R1 is lazy there (4γ on every 4th D update):
    the same figures in 3 seeds, a fifth less time in make run, whose sampler GAN is."""

    PROFILES = {**ClassicConfig.PROFILES, "demo": {**R1_DEMO, "r1_every": 4}}


@register
class GAN(ClassicGAN):
    """GAN (non-saturating G loss) on the infogan or dcgan backbone."""

    name = "gan"
    Config = GANConfig
    in_demo = True  # full_pipeline's sampler: garments at its demo profile within make run
    losses = ("d_loss", "g_loss", "d_loss_real", "d_loss_fake")

    def step(self, real, labels, gen, measure):
        netG, netD = self.netG, self.D
        z = self.sample_z(len(real), gen)

        # (1) Update D: maximise log D(x) + log(1 - D(G(z)))
        with self.autocast:
            fake = netG(z)
            out_real, out_fake = self.both(netD, real, fake.detach())
            d_real, d_fake = bce(out_real, 1.0), bce(out_fake, 0.0)
            errD = d_real + d_fake + self.r1(real)
        self.update("optD", errD)

        # (2) Update G: maximise log D(G(z))
        with self.autocast:
            errG = bce(netD(fake), 1.0)
        self.update("optG", errG)
        return detached({"d_loss": errD, "g_loss": errG, "d_loss_real": d_real,
                         "d_loss_fake": d_fake})
