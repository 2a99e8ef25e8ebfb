"""Flip-inversion repair and the symmetry error."""

import torch

from training.metrics import symmetry_error
from training.models.dcgan import define_G
from training.repair import flip_inversion


def test_symmetry_error():
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    assert symmetry_error(x + x.flip(-1)) == 0.0
    assert symmetry_error(x) > 0.1


def test_flip_inversion_finds_a_code_for_the_flipped_image():
    torch.manual_seed(0)
    netG = define_G(nz=16, ngf=8)
    z0 = torch.randn(4, 16, 1, 1)
    with torch.no_grad():
        x = netG.eval()(z0)
    before = float((x - x.flip(-1)).pow(2).mean())
    z_hat, repaired, history = flip_inversion(netG, x, z0, steps=60, lr=0.05)
    assert z_hat.shape == z0.shape and repaired.shape == x.shape
    assert history[-1] < 0.5 * history[0]
    after = float((repaired - x.flip(-1)).pow(2).mean())
    assert after < before  # G(ẑ) is closer to flip(X) than X itself is
    assert all(p.requires_grad for p in netG.parameters())  # G is left as it was
