"""The shared base of the classic GAN collection (the families the "pytorch-generative-model-
collections" study of Fashion-MNIST compared): GAN, LSGAN, WGAN, WGAN-GP, DRAGAN, CGAN, ACGAN,
infoGAN, EBGAN, BEGAN.

Every one of them trains on either backbone of training/models/classic.py (`backbone`: the
collection's infoGAN nets at 28/32 px, or the DCGAN nets at 64 px) — an option, not a copy of
the family. `ClassicGAN` builds G and D from the backbone, asks open_dataset for the size and
channels the backbone makes, keeps the fixed-noise grid, exports the generator and its registry
tags. A family module then holds only its config (its own options: n_critic, clipping, λ, ...)
and its `step`, overriding a hook where it needs another net or optimiser:

- `latent_dim` / `cond_dim`: G's input is (N, latent_dim + cond_dim, 1, 1): z from the family's
  prior (`latent`), then e.g. CGAN's one-hots (training/latent.py's sampler convention);
- `build_G`, `build_D` (the head: outputs, cond_channels, aux/Q heads, norm, or an autoencoder),
  `build_optimizers` ({"optD": …, "optG": …} Adam(lr, (beta1, beta2)) by default);
- `fixed_inputs` (the grid's 64 inputs; by default `sampler_inputs` of the registry tags).

The frame's small-data tools work for every family of the collection: a step judges images
through `self.D` (D itself, or D behind the DiffAugment policy `augment`, the same policy for
real and generated images in D's update and in G's), and with `ema_decay` every update of G's
optimiser also moves G's moving average, which the grids draw and the registry exports (its
batch-norm statistics recomputed for the averaged weights: training/ema.py).
EBGAN and BEGAN take EMA only: their D reconstructs its input, whose target would have to be
the augmented image. The families with a real/fake D (GAN, LSGAN, CGAN, ACGAN, infoGAN) add
`self.r1(real)`, the R1 penalty (`r1_gamma`), to D's loss; the critics with a penalty of their
own (WGAN-GP, DRAGAN) or with clipped weights (WGAN) do not. `d_norm` (batch, layer, none) is
every family's D normalisation; the penalty critics default to layer norm.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from training.augment import diff_augment
from training.config import GANConfig
from training.ema import EMA
from training.family import Family, option
from training.latent import sample_latent, sampler_inputs
from training.losses import r1_loss
from training.models.classic import (
    BACKBONES,
    NORMS,
    SUPPORTED_SIZES,
    check_backbone,
    define_D,
    define_G,
)

if TYPE_CHECKING:
    from training.datasets import ImageDataset

DEFAULT_SIZE = {"infogan": 32, "dcgan": 64}
# the demo profiles of the families whose small-data targets they meet (benchmarks/README.md,
# "Small-data targets"): the 32 px nets long enough and a D without batch norm (DRAGAN, whose
# own penalty regularises D), plus the R1 penalty (GAN, LSGAN); the papers' batch-norm D
# collapses G on the 200-product demo shop
SMALL_DATA_DEMO = {"backbone": "infogan", "steps": 2000, "d_norm": "none"}
R1_DEMO = {**SMALL_DATA_DEMO, "r1_gamma": 1.0}
IMAGE_SIZES = tuple(sorted({s for sizes in SUPPORTED_SIZES.values() for s in sizes}))


@dataclass
class ClassicConfig(GANConfig):
    """The collection's shared options: Adam(2e-4, (0.5, 0.999)), z of 62 dimensions."""

    backbone: str = option("dcgan", "infogan (the collection's FC + 2 conv nets, 28/32 px) or "
                           "dcgan (the DCGAN nets, 64 px)", choices=BACKBONES)
    image_size: int | None = option(None, "image side the data is resized to (unset: 32 for "
                                    "the infogan backbone, 64 for dcgan)", choices=IMAGE_SIZES)
    channels: int | None = option(None, "1 (grey) or 3 (RGB), the data converted once "
                                  "(unset: the data's)", choices=(1, 3))
    nz: int = option(62, "latent dimensions (62 as the collection)", ge=1)
    beta2: float = option(0.999, "Adam beta2", ge=0, lt=1)
    d_norm: str = option("batch", "D's normalisation: batch (the papers'), layer or none "
                         "(with r1_gamma, none keeps D from collapsing G on a few hundred "
                         "images)", choices=NORMS)


def target_size(cfg: ClassicConfig) -> int:
    """The image side this config trains at: image_size, else the backbone's default."""
    check_backbone(cfg.backbone)
    return cfg.image_size or DEFAULT_SIZE[cfg.backbone]


def detached(row: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A loss row without its graphs (the loop reads it only at logging steps)."""
    return {k: v.detach() for k, v in row.items()}


class Augmented(nn.Module):
    """D behind the DiffAugment policy (training/augment.py): what every image D judges
    passes through. Holds no weights of its own (D's stay under D's name in checkpoints); its
    random draws come from torch's global generator, which the checkpoints save, so a resumed
    run draws the same augmentations."""

    def __init__(self, net: nn.Module, policy: str, p: float):
        super().__init__()
        self.net, self.policy, self.p = net, policy, p

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.policy, None, self.p)

    def forward(self, x: torch.Tensor, *args) -> torch.Tensor:
        return self.net(self.augment(x), *args)

    def heads(self, x: torch.Tensor, *args):
        return self.net.heads(self.augment(x), *args)


class ClassicGAN(Family):
    """Base of the classic collection's families (not registered itself)."""

    Config: ClassVar[type] = ClassicConfig
    small_data = ("augment", "ema", "r1")

    # ----- data --------------------------------------------------------------------------------
    @classmethod
    def check(cls, cfg: ClassicConfig, data: "ImageDataset") -> None:
        size = target_size(cfg)
        check_backbone(cfg.backbone, size)
        if data.image_size != size:
            raise ValueError(f"{cls.name} with the {cfg.backbone} backbone trains on {size} px "
                             f"images; the data is {data.image_size} px")
        if data.channels not in (1, 3) or (cfg.channels and data.channels != cfg.channels):
            raise ValueError(f"{cls.name} trains on {cfg.channels or '1 or 3'} channels; the "
                             f"data has {data.channels}")

    @classmethod
    def data_options(cls, cfg: ClassicConfig) -> dict:
        """open_dataset resizes to the backbone's size (and converts grey <-> RGB) once, in
        memory; an unknown backbone or size is refused here, before the data is read."""
        size = target_size(cfg)
        check_backbone(cfg.backbone, size)
        options: dict = {"image_size": size}
        if cfg.channels:
            options["channels"] = cfg.channels
        return options

    # ----- networks ----------------------------------------------------------------------------
    @property
    def image_size(self) -> int:
        return self.data.image_size

    @property
    def channels(self) -> int:
        return self.data.channels

    @property
    def latent_dim(self) -> int:
        """Dimensions of z, drawn from the `latent` prior (infoGAN: noise + codes)."""
        return self.cfg.nz

    @property
    def cond_dim(self) -> int:
        """Dimensions of the condition after z in G's input (CGAN: the one-hots)."""
        return 0

    @property
    def sampler_dim(self) -> int:
        return self.latent_dim + self.cond_dim

    def build_G(self) -> nn.Module:
        cfg = self.cfg
        return define_G(cfg.backbone, self.latent_dim, self.image_size, self.channels,
                        cfg.ngf, cond_dim=self.cond_dim)

    def build_D(self) -> nn.Module:
        cfg = self.cfg
        return define_D(cfg.backbone, self.image_size, self.channels, cfg.ndf,
                        norm=cfg.d_norm)

    def build_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"optD": self.adam(self.netD), "optG": self.adam(self.netG)}

    def adam(self, *modules: nn.Module, lr: float | None = None,
             betas: tuple[float, float] | None = None) -> torch.optim.Adam:
        """Adam with the config's lr and (beta1, beta2)."""
        return super().adam(*modules, lr=lr,
                            betas=betas or (self.cfg.beta1, self.cfg.beta2))

    def fixed_inputs(self) -> torch.Tensor:
        """The 64 inputs of every sample grid, drawn as a registry user would draw them."""
        return sampler_inputs(64, self.registry_tags(), torch.Generator().manual_seed(1))[0]

    def build(self) -> None:
        self.netG = self.to_device(self.build_G())
        self.netD = self.to_device(self.build_D())
        self.modules = {"netG": self.netG, "netD": self.netD}
        self.optimizers = self.build_optimizers()
        self.fixed_noise = self.fixed_inputs()
        cfg = self.cfg
        self.D = Augmented(self.netD, cfg.augment, cfg.augment_p) if cfg.augment else self.netD
        self.ema = EMA(self.netG, cfg.ema_decay, cfg.ema_warmup) if cfg.ema_decay else None
        if self.ema is not None:  # in modules: checkpoints save the average, resume continues it
            self.modules["netG_ema"] = self.ema
        # the optimisers that move G (G's own, or e.g. one shared with a Q head)
        self.g_optimizers = {name for name in self.optimizers
                             if any(m is self.netG for m in self.networks_of(name))}

    def update(self, optimizer: str, loss: torch.Tensor, max_grad_norm: float = 0.0) -> None:
        """The frame's update, then G's moving average follows every step that moved G."""
        super().update(optimizer, loss, max_grad_norm)
        if self.ema is not None and optimizer in self.g_optimizers:
            self.ema.update(self.netG)

    # ----- training ----------------------------------------------------------------------------
    def sample_z(self, n: int, gen: torch.Generator) -> torch.Tensor:
        """z (n, latent_dim, 1, 1) from the family's prior, drawn from the loop's generator."""
        return sample_latent(n, self.latent_dim, self.latent, gen).to(self.device)

    def r1(self, real: torch.Tensor, *args) -> torch.Tensor:
        """R1's term of D's loss, γ/2·E‖∇ₓD(x)‖² at the real batch (0 when r1_gamma is 0),
        through D as the step sees it (behind the augmentation when augment is set, as
        StyleGAN2-ADA); extra args (a condition) go to D."""
        return r1_loss(self.cfg.r1_gamma, self.D, real, *args, every=self.cfg.r1_every,
                       step=self.current_step, bf16=self.penalty_bf16)

    def generator_step(self, n_critic: int) -> bool:
        """Whether G is updated on this step: after every n_critic-th D update (the WGAN
        papers' schedule, `(iter + 1) % n_critic == 0` as the collection)."""
        return (self.current_step + 1) % n_critic == 0

    def critic_generator_step(self, fake: torch.Tensor, update_g: bool,
                              measure: bool) -> torch.Tensor:
        """WGAN's G step, −E[critic(G(z))]: an update on every n_critic-th step, measured
        without gradients on logging steps between, else the last value (kept in self.g_loss)."""
        if update_g:
            with self.autocast:
                self.g_loss = -self.D(fake).float().mean()
            self.update("optG", self.g_loss)
        elif measure:
            with torch.no_grad(), self.autocast:
                self.g_loss = -self.D(fake).float().mean()
        return self.g_loss

    def grids(self) -> dict[str, torch.Tensor]:
        return {"samples": self.sampler()(self.fixed_noise.to(self.device))}

    # ----- export ------------------------------------------------------------------------------
    def finish(self, out_dir: Path) -> dict:
        torch.save(self.sampler().state_dict(), Path(out_dir) / "generator.pt")
        return {"backbone": self.cfg.backbone, "image_size": self.image_size,
                "channels": self.channels}

    def sampler(self) -> nn.Module:
        """The generator users get: G's moving average when ema_decay > 0
        (`averaged_sampler`: its batch-norm statistics recomputed), else G."""
        return self.averaged_sampler(self.ema) if self.ema is not None else self.netG

    def registry_tags(self) -> dict[str, str]:
        """nz is z's dimensions (sampler_inputs appends a conditional sampler's one-hots)."""
        return {**super().registry_tags(), "nz": str(self.latent_dim),
                "backbone": self.cfg.backbone, "image_size": str(self.image_size),
                "channels": str(self.channels)}

    def report(self, out_dir: Path, summary: dict) -> tuple[dict, dict[str, list[Path]]]:
        """The family's own extras beyond the shared metrics (none by default)."""
        return {}, {}
