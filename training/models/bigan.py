"""BiGAN (Donahue et al., 2017) at 64x64: encoder E, generator G, joint discriminator D(x, z).

    netG = define_G(nz=100, ngf=64)          # the DCGAN generator, z ~ U[-1, 1]^nz
    netE = define_E(nz=100, nef=64, nc=3)
    netD = define_D(nz=100, nc=3, ndf=64)

Every constructor takes `bn_momentum`, PyTorch's batch-norm momentum (1 − the running
averages' decay): 0.1 is PyTorch's default; the style-images paper's decay 0.97 is 0.03.
"""

import torch
from torch import nn

from training.models import dcgan
from training.models.dcgan import downsampling_trunk, weights_init

__all__ = ["define_D", "define_E", "define_G", "set_bn_momentum"]
BN_MOMENTUM = 0.1  # PyTorch's default: what BiGAN trained with before the option existed


def set_bn_momentum(net: nn.Module, momentum: float) -> nn.Module:
    """Set the running-statistics momentum of every batch norm in `net` (in place)."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum
    return net


class Encoder(nn.Module):
    """image (N, nc, 64, 64) -> z (N, nz, 1, 1): the DCGAN discriminator's trunk with nz
    outputs. Unbounded, as in BiGAN; L_AD pulls E(G(z)) back into [-1, 1]."""

    def __init__(self, nz: int = 100, nef: int = 64, nc: int = 3):
        super().__init__()
        self.main = nn.Sequential(
            *downsampling_trunk(nc, nef),
            nn.Conv2d(nef * 8, nz, 4, 1, 0),  # 1x1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


class JointDiscriminator(nn.Module):
    """(image (N, nc, 64, 64), z (N, nz, 1, 1)) -> logit (N,): an image path (the DCGAN
    discriminator's trunk), a latent path of 1x1 convolutions, and a joint path over both,
    with dropout as in ALI (Dumoulin et al., 2017)."""

    def __init__(self, nz: int = 100, nc: int = 3, ndf: int = 64, hidden: int = 512,
                 dropout: float = 0.2):
        super().__init__()
        self.x_path = nn.Sequential(
            *downsampling_trunk(nc, ndf),
            nn.Conv2d(ndf * 8, hidden, 4, 1, 0),  # 1x1
            nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
        )
        self.z_path = nn.Sequential(
            nn.Conv2d(nz, hidden, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout),
            nn.Conv2d(hidden, hidden, 1), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout),
        )
        self.joint = nn.Sequential(
            nn.Conv2d(2 * hidden, 2 * hidden, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Dropout(dropout),
            nn.Conv2d(2 * hidden, 1, 1),
        )

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        h = torch.cat([self.x_path(x), self.z_path(z.to(x.dtype))], dim=1)
        return self.joint(h).view(-1)


def define_G(nz: int = 100, ngf: int = 64, nc: int = 3,
             bn_momentum: float = BN_MOMENTUM) -> dcgan.Generator:
    return set_bn_momentum(dcgan.define_G(nz, ngf, nc), bn_momentum)


def define_E(nz: int = 100, nef: int = 64, nc: int = 3,
             bn_momentum: float = BN_MOMENTUM) -> Encoder:
    net = Encoder(nz, nef, nc)
    net.apply(weights_init)
    return set_bn_momentum(net, bn_momentum)


def define_D(nz: int = 100, nc: int = 3, ndf: int = 64, dropout: float = 0.2,
             bn_momentum: float = BN_MOMENTUM) -> JointDiscriminator:
    net = JointDiscriminator(nz, nc, ndf, dropout=dropout)
    net.apply(weights_init)
    return set_bn_momentum(net, bn_momentum)
