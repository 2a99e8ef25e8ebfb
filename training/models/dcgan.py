"""DCGAN (Radford et al., 2016) at 64x64, as in the official PyTorch DCGAN example.

    netG = define_G(nz=100, ngf=64, nc=3)
    netD = define_D(nc=3, ndf=64)
"""

import torch
from torch import nn


def weights_init(m: nn.Module) -> None:
    """N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales, as the DCGAN paper prescribes."""
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def downsampling_trunk(nc: int, ndf: int, batch_norm: bool = True,
                       bias: bool = False) -> list[nn.Module]:
    """64x64 -> 4x4 with ndf * 8 channels: strided 4x4 convolutions, batch norm after the
    first (unless batch_norm=False), LeakyReLU(0.2). The DCGAN discriminator's body, shared by
    BiGAN's E and D(x, z). bias: biases on the convolutions (what a batch norm's shift
    otherwise gives)."""
    def norm(channels: int) -> list[nn.Module]:
        return [nn.BatchNorm2d(channels)] if batch_norm else []

    return [
        nn.Conv2d(nc, ndf, 4, 2, 1, bias=bias),  # 32x32
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=bias),  # 16x16
        *norm(ndf * 2),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=bias),  # 8x8
        *norm(ndf * 4),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=bias),  # 4x4
        *norm(ndf * 8),
        nn.LeakyReLU(0.2, inplace=True),
    ]


class Generator(nn.Module):
    """z (N, nz, 1, 1) -> image (N, nc, 64, 64) in [-1, 1]."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3):
        super().__init__()
        self.nz = nz
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),  # 4x4
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),  # 8x8
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),  # 16x16
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # 32x32
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),  # 64x64
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class MinibatchStd(nn.Module):
    """Appends one feature map: the standard deviation of each feature over the batch,
    averaged to one number (Karras et al., 2018, ProGAN's minibatch standard deviation). A batch
    of near-identical samples has a small one, so D can tell a collapsed G from the data."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        std = x.float().std(dim=0, unbiased=False).mean().to(x.dtype)
        return torch.cat([x, std.expand(x.shape[0], 1, *x.shape[2:])], 1)


class Discriminator(nn.Module):
    """image (N, nc, 64, 64) -> logit (N,). With spectral_norm, every convolution's weight is
    divided by its largest singular value (Miyato et al., 2018) and, as in their SNGAN
    discriminator, batch norm is left out: D's Lipschitz bound then comes from SN alone. With
    minibatch_std, the 4x4 features get MinibatchStd's extra map before the last convolution.
    With batch_norm=False (and no spectral norm) the convolutions get biases instead: the D
    without normalisation that, with the R1 penalty, keeps G from collapsing on small data."""

    def __init__(self, nc: int = 3, ndf: int = 64, spectral_norm: bool = False,
                 minibatch_std: bool = False, batch_norm: bool = True):
        super().__init__()
        plain = not batch_norm and not spectral_norm
        self.main = nn.Sequential(
            *downsampling_trunk(nc, ndf, batch_norm=batch_norm and not spectral_norm,
                                bias=plain),
            *([MinibatchStd()] if minibatch_std else []),
            nn.Conv2d(ndf * 8 + int(minibatch_std), 1, 4, 1, 0, bias=False),  # 1x1
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


def define_G(nz: int = 100, ngf: int = 64, nc: int = 3) -> Generator:
    net = Generator(nz, ngf, nc)
    net.apply(weights_init)
    return net


def define_D(nc: int = 3, ndf: int = 64, spectral_norm: bool = False,
             minibatch_std: bool = False, batch_norm: bool = True) -> Discriminator:
    net = Discriminator(nc, ndf, spectral_norm, minibatch_std, batch_norm)
    net.apply(weights_init)
    for m in net.modules():  # the biases of a D without batch norm start at 0
        if isinstance(m, nn.Conv2d) and m.bias is not None:
            nn.init.zeros_(m.bias)
    if spectral_norm:  # after the init: SN rescales whatever weights it is given
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                nn.utils.parametrizations.spectral_norm(m)
    return net
