"""The single-GAN baseline the FashionGAN study compared with: (z, d, m(S0)) -> the image
directly, no segmentation in between (training/families/fashiongan.py has the two stages).

Same data, same tricks (options of FashionGANBaseConfig), same measures, so the two compare
on equal terms; one step is "(1) update D, (2) update G":

    (1) D:  w0 L(D(x, d, m), 1) + w1 L(D(x, d', m), 0) + w2 L(D(x̂, d, m), 0),  x̂ = G(z, d, m)
    (2) G:  L(D(x̂, d, m), 1) + λ_l1 |x̂ − x|

Body coherence here is the parse of x̂ against the person's own map (there is no stage-1 map);
the exported translator takes the same inputs as the two-stage one (segmentation one-hot,
d + skin) and reads only m(S0) from the segmentation.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from training.families.fashiongan import FashionGANBaseConfig, FashionGANFamily, bce_to
from training.family import register
from training.models.fashiongan import SingleTranslator, define_single_D, define_single_G


@dataclass
class FashionGANSingleConfig(FashionGANBaseConfig):
    pass


@register
class FashionGANSingle(FashionGANFamily):
    """Single-GAN baseline of the two-stage FashionGAN: (z, description, m(S0)) -> image
    directly, the same tricks and measures."""

    name = "fashiongan_single"
    Config = FashionGANSingleConfig
    losses = ("d_real", "d_mismatched", "d_fake", "g_adv", "g_l1", "lr")
    measures = ("frechet_distance", "l1", "fd_image", "body_miou", "swap_rate_diag",
                "swap_rate_off")

    def build(self) -> None:
        cfg, data = self.cfg, self.data
        size, cond = data.image_size, data.cond_dim
        self.netG = self.to_device(define_single_G(cfg.nz, cond, cfg.ngf, size, cfg.norm))
        self.netD = self.to_device(define_single_D(cond, cfg.ndf, size, cfg.norm))
        self.modules = {"netG": self.netG, "netD": self.netD}
        self.optimizers = {"optG": self.adam(self.netG), "optD": self.adam(self.netD)}

    def step(self, real, labels, gen, measure):
        cfg = self.cfg
        x, _maps, coarse, c, c_mis = real
        z = self.noise(len(x), gen)
        self.set_lr()

        # (1) Update D on (photo, d), (photo, d'), (G's image, d), each with m(S0)
        with self.autocast:
            fake = self.netG(z, c, coarse)
        d = self.d_step(self.netD, "optD", x, fake.detach(), c, c_mis, coarse, coarse, gen,
                        measure)

        # (2) Update G: fool D, stay close to the photo
        self.netD.requires_grad_(False)
        with self.autocast:
            g_adv = bce_to(self.netD(self.noisy(fake, gen), c, coarse), 1.0)
        g_l1 = F.l1_loss(fake.float(), x.float())
        self.update("optG", g_adv + cfg.lambda_l1 * g_l1)
        self.netD.requires_grad_(True)
        if not measure:
            return {}
        row = {"g_adv": g_adv, "g_l1": g_l1, "lr": torch.tensor(cfg.lr * self.lr_factor()),
               **{f"d_{k}": v for k, v in d.items()}}
        return {k: row[k] for k in self.losses}

    def draw(self, index, condition=None, seed=0):
        data = self.data
        c = data.condition_of(index) if condition is None else condition
        z = torch.randn(len(index), self.cfg.nz, 1, 1, generator=torch.Generator()
                        .manual_seed(seed))
        with self.in_eval():
            image = self.netG(z.to(self.device), c.to(self.device),
                              data.coarse_of(index).to(self.device))
        return {"image": image.float().clamp(-1, 1).cpu()}

    def grids(self):
        """Rows of 8 held-out persons: the single GAN's image, the photo (fixed z)."""
        index = self.shown(8)
        return {"samples": torch.cat([self.draw(index, seed=1)["image"],
                                      self.data.images_of(index)])}

    def translator(self) -> nn.Module:
        return SingleTranslator(self.netG)
