"""DCGAN with the symmetry loss of "Enhancing Symmetry in GAN Generated Fashion Images".

Three variants, one step:
- baseline:  D minimises d_loss_real + d_loss_fake, G minimises g_loss_orig;
- augment:   the same, on real images flipped left-right at random;
- symmetric: D also sees flipped real and flipped generated images and minimises
             d_loss_mean = mean(d_loss_real, d_loss_fake, d_loss_real_flip, d_loss_fake_flip);
             G minimises g_loss_mean = (g_loss_orig + g_loss_flip) / 2.
All six losses are logged for every variant; where a variant does not optimise the flip terms
they are measured (without gradients) at each logging step, so the paper's Fig. 3 can be drawn
for each. D outputs logits and the losses are BCE-with-logits, which is numerically the same as
the example's Sigmoid + BCELoss and safe under bf16 autocast. The report adds the symmetry
errors, the flip gap and flip-inversion repair (§2.2) before/after grids.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from training.checkpoint import load_plain
from training.config import GANConfig
from training.datasets import H5ImageDataset
from training.family import Family, option, register
from training.grids import save_image_grid
from training.losses import bce
from training.metrics import flip_gap, mean_abs_error, symmetry_error
from training.models.dcgan import define_D, define_G
from training.repair import flip_inversion

VARIANTS = ("baseline", "augment", "symmetric")
LOSSES = ("d_loss_real", "d_loss_fake", "g_loss_orig", "d_loss_real_flip", "d_loss_fake_flip",
          "g_loss_flip")


@dataclass
class DCGANConfig(GANConfig):
    variant: str = option("symmetric", "baseline, augment (random flips of the real images) "
                          "or symmetric (the six-loss objective)", choices=VARIANTS)
    repair_steps: int = option(100, "Adam steps of the flip-inversion repair in the report",
                               ge=0)


@register
class DCGAN(Family):
    """DCGAN 64x64: baseline, flip augmentation, or the symmetry loss; flip-inversion repair."""

    name = "dcgan"
    Config = DCGANConfig
    losses = (*LOSSES, "d_loss_mean", "g_loss_mean")
    variants = {v: {"variant": v} for v in VARIANTS}
    in_demo = True

    @classmethod
    def check(cls, cfg: DCGANConfig, data: H5ImageDataset) -> None:
        if data.image_size != 64 or data.channels != 3:
            raise ValueError(f"dcgan trains on 64x64 RGB images; the data is "
                             f"{data.image_size}x{data.image_size}x{data.channels}")

    @classmethod
    def data_options(cls, cfg: DCGANConfig) -> dict:
        return {"flip": cfg.variant == "augment"}

    def build(self) -> None:
        cfg = self.cfg
        self.netG = self.to_device(define_G(cfg.nz, cfg.ngf))
        self.netD = self.to_device(define_D(3, cfg.ndf))
        self.modules = {"netG": self.netG, "netD": self.netD}
        self.optimizers = {"optG": self.adam(self.netG), "optD": self.adam(self.netD)}
        self.fixed_noise = torch.randn(64, cfg.nz, 1, 1,
                                       generator=torch.Generator().manual_seed(1))

    def step(self, real, labels, gen, measure):
        cfg, netG, netD = self.cfg, self.netG, self.netD
        noise = torch.randn(cfg.batch_size, cfg.nz, 1, 1, generator=gen).to(self.device)
        symmetric = cfg.variant == "symmetric"

        # (1) Update D
        with self.autocast:
            fake = netG(noise)
            d_real, d_fake = bce(netD(real), 1.0), bce(netD(fake.detach()), 0.0)
            if symmetric:
                d_real_flip = bce(netD(real.flip(-1)), 1.0)
                d_fake_flip = bce(netD(fake.detach().flip(-1)), 0.0)
                errD = (d_real + d_fake + d_real_flip + d_fake_flip) / 4
            else:
                errD = d_real + d_fake
        self.update("optD", errD)

        # (2) Update G
        with self.autocast:
            g_orig = bce(netD(fake), 1.0)
            if symmetric:
                g_flip = bce(netD(fake.flip(-1)), 1.0)
                errG = (g_orig + g_flip) / 2
            else:
                errG = g_orig
        self.update("optG", errG)

        if not measure:
            return {}
        if not symmetric:  # the flip terms, measured, not optimised
            with torch.no_grad(), self.autocast:
                d_real_flip = bce(netD(real.flip(-1)), 1.0)
                d_fake_flip = bce(netD(fake.detach().flip(-1)), 0.0)
                g_flip = bce(netD(fake.detach().flip(-1)), 1.0)
        values = (d_real, d_fake, g_orig, d_real_flip, d_fake_flip, g_flip)
        row = {name: round(v.item(), 5) for name, v in zip(LOSSES, values, strict=True)}
        row["d_loss_mean"] = round(sum(row[k] for k in LOSSES if k.startswith("d_")) / 4, 5)
        row["g_loss_mean"] = round((row["g_loss_orig"] + row["g_loss_flip"]) / 2, 5)
        return row

    def grids(self):
        return {"samples": self.netG(self.fixed_noise.to(self.device))}

    def finish(self, out_dir: Path) -> dict:
        torch.save(self.netG.state_dict(), Path(out_dir) / "generator.pt")
        return {"variant": self.cfg.variant}

    def sampler(self):
        return self.netG

    def registry_tags(self):
        return {**super().registry_tags(), "variant": self.cfg.variant}

    def report(self, out_dir, summary):
        metrics, before, after = symmetry_report(
            self.netG, self.data, self.cfg.nz, repair_steps=self.cfg.repair_steps,
            seed=self.cfg.seed, netD=self.netD)
        paths = [save_image_grid(images, Path(out_dir) / f"flip_inversion_{name}.png")
                 for name, images in (("before", before), ("after", after))]
        return metrics, {"flip_inversion": paths}


def symmetry_report(netG: torch.nn.Module, data: H5ImageDataset, nz: int, n: int = 256,
                    n_repair: int = 16, repair_steps: int = 100, seed: int = 0,
                    netD: torch.nn.Module | None = None
                    ) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Flip-inversion repair on n_repair samples and the flip gap (with D): (metrics, samples
    before, repaired after), in [-1, 1]. The symmetry errors of generated and real images are
    the shared metrics' (training.evaluation), computed once, under one name."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, nz, 1, 1, generator=g)
    with torch.no_grad():
        fake = netG.eval()(z)
    z_hat, repaired, history = flip_inversion(netG, fake[:n_repair], z[:n_repair],
                                              steps=repair_steps)
    metrics = {
        # before/after on the same n_repair samples
        "symmetry_error_before_repair": symmetry_error(fake[:n_repair]),
        "symmetry_error_repaired": symmetry_error(repaired),
        "flip_inversion_reconstruction_error": mean_abs_error(repaired, fake[:n_repair].flip(-1)),
        "flip_inversion_objective_start": history[0],
        "flip_inversion_objective_end": history[-1],
    }
    if netD is not None:
        metrics["flip_gap"] = flip_gap(netD.eval(), fake)
    return {k: round(v, 5) for k, v in metrics.items()}, fake[:n_repair], repaired


def load_generator(out_dir: Path, cfg: DCGANConfig) -> torch.nn.Module:
    """The trained generator of a run folder, on the CPU, in eval mode."""
    netG = define_G(cfg.nz, cfg.ngf)
    netG.load_state_dict(load_plain(Path(out_dir) / "generator.pt", "DCGAN generator file"))
    return netG.eval()
