"""Colourisation (the fashion-MNIST study's DCGAN colouriser, trained with pix2pix's losses): a
grey packshot -> its colour packshot, or, conditioned on a colour, recoloured ("recolour to red").

Data: an image store with a `color` label column (datasets/packshots.h5, 64 px). G's input is
the packshot's luminance (`to_grey`, ITU-R 601), computed in the step from the colour batch: no
grey store exists. The test products are a seeded `holdout` share of the store (0.2 with seed 0:
the attribute classifier's own held-out images, so colour accuracy is measured on products
neither network trained on); the catalogue's 1% test split is too small on the demo.

G is the U-Net of training.models.translation: the DCGAN encoder–decoder (4x4 stride-2
convolutions, batch norm, LeakyReLU down; transposed convolutions, batch norm, ReLU up; tanh)
with skip connections. The grey image already holds every edge and texture of the output and the
skips carry it through at full resolution, so G only has to add colour; an encoder–decoder
without them squeezes the image through a 1x1 bottleneck and blurs it (pix2pix's ablation).
D is pix2pix's PatchGAN on (grey, colour) pairs, scaled to the image size. With g the grey
image, y the real colour image and c its colour's one-hot (`condition_on_color`: tiled over the
image as extra input channels of G and of D):
    D maximises  log D(g, y[, c]) + log(1 − D(g, G(g[, c])[, c]))     (its loss halved)
    G minimises  −log D(g, G(g[, c])[, c]) + λ ‖y − G(g[, c])‖₁,  λ = 100
on the true colour (the only one with a real image to match); Adam(2e-4, β1 0.5).

Measures (training.translation_metrics.evaluate_translator, on the held-out products with a
colour): colour accuracy — the attribute classifier's `color` head on the outputs against the
true colour (`grey_to_colour`), or the requested one (`recolour`: each product once with its own
colour, edit `color_kept`, and once with another colour of the training products drawn at
random, `color_changed`, so half the requests differ from the true colour) — is `edit_success`,
the main measure; L1, PSNR and SSIM against the real packshot; FD in the classifier's space.
Report: grey | output | real for 16 test products; `recolour` adds a sheet of products, one a
row, across the requested colours (`recolour_to`).
"""

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from training.config import GANConfig
from training.datasets import LUMA, H5ImageDataset, holdout_split, to_unit_range
from training.family import Family, option, register
from training.latent import one_hot
from training.losses import bce
from training.models.translation import (
    DISCRIMINATORS,
    GENERATORS,
    NORMS,
    define_D,
    define_G,
    tile_labels,
    unet_downs,
)
from training.translation_metrics import Edit, evaluate_translator, translate, translation_grid

COLUMN = "color"
GAN_MODES = ("vanilla", "lsgan")
SPLIT_SEED = 0  # the attribute classifier's holdout seed: the same held-out products
REFERENCE_MAX = 2000  # real images of the FD's reference statistics


@dataclass
class ColorizationConfig(GANConfig):
    condition_on_color: bool = option(False, "condition G and D on a colour (the `color` "
                                      "column's one-hot tiled as extra input channels): "
                                      "recolour to a requested colour")
    lambda_l1: float = option(100.0, "weight of the L1 term (pix2pix's 100)", ge=0)
    generator: str = option("unet", "unet (the DCGAN encoder-decoder with skips, depth from "
                            "the image size), unet_128, unet_256, resnet_9blocks or "
                            "resnet_6blocks", choices=GENERATORS)
    discriminator: str = option("basic", "basic (PatchGAN scaled to the image size), "
                                "n_layers (d_layers), pixel (1x1: colour statistics only)",
                                choices=DISCRIMINATORS)
    d_layers: int = option(3, "stride-2 layers of the n_layers PatchGAN", ge=1, le=6)
    norm: str = option("batch", "batch, instance or none", choices=NORMS)
    dropout: bool = option(True, "dropout 0.5 in G (pix2pix's only noise)")
    gan_mode: str = option("vanilla", "vanilla (BCE) or lsgan", choices=GAN_MODES)
    flip: bool = option(True, "random left-right flips of the training images")
    image_size: int = option(64, "side the store's images are resized to, a power of two "
                             "(64: the demo; 128 or 256 on a GPU)", ge=32)
    holdout: float = option(0.2, "share of the products held out to measure on (seed 0: the "
                            "attribute classifier's held-out share)", gt=0, lt=1)
    recolour_to: list[str] = option([], "colours of the recolour sheet (condition_on_color; "
                                    "empty: every colour of the training products)")
    classifier_file: str = option("", "attribute classifier file (attribute_classifier.pt) "
                                  "for colour accuracy and FD in the summary; empty: L1, PSNR "
                                  "and SSIM only (the asset measures with the metrics' "
                                  "classifier)")

    # demo: ~2 min on an idle 2-core CPU: pix2pix's demo step (the same U-Net and PatchGAN at
    # 64 px with fewer input channels) costs the same, 0.99-1.03x its CPU time per step measured
    # in one process, 0.38-0.40 s of one core for 16 images. full: widths 64 and a DCGAN-sized
    # batch, ~100 epochs of a 10,000-product catalogue (a GPU)
    PROFILES = {"demo": {"steps": 200, "batch_size": 16, "ngf": 32, "ndf": 32,
                         "sample_every": 100, "checkpoint_every": 100},
                "full": {"steps": 15000, "batch_size": 64, "ngf": 64, "ndf": 64,
                         "log_every": 50, "sample_every": 1000, "checkpoint_every": 1000}}


def to_grey(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) colour in [-1, 1] -> (N, 1, H, W) luminance (ITU-R 601; the weights sum to
    1, so [-1, 1] stays [-1, 1]): the colouriser's input."""
    weights = images.new_tensor(LUMA).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def split_rows(n: int, holdout: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, test) rows of a store of n products, each sorted: the attribute classifier's
    holdout_split with its seed."""
    train, test = holdout_split(n, holdout, torch.Generator().manual_seed(SPLIT_SEED))
    return train.sort().values, test.sort().values


@register
class Colorization(Family):
    """Colourisation (the study's DCGAN colouriser): grey -> colour packshot, U-Net G, PatchGAN D
    on (grey, colour) pairs, L1 weight 100; optionally recoloured to a requested colour."""

    name = "colorization"
    kind = "translator"
    Config = ColorizationConfig
    losses = ("d_real", "d_fake", "g_gan", "g_l1")
    variants = {"grey_to_colour": {"condition_on_color": False},
                "recolour": {"condition_on_color": True}}
    data_store = "packshots"
    measures = ("edit_success", "l1", "psnr", "ssim", "frechet_distance")
    main_measure = ("edit_success", "max")  # colour accuracy: what a colouriser is for

    @classmethod
    def data_options(cls, cfg: ColorizationConfig) -> dict:
        return {"flip": cfg.flip, "label_columns": (COLUMN,), "image_size": cfg.image_size,
                "channels": 3}

    @classmethod
    def rows(cls, cfg: ColorizationConfig, data: H5ImageDataset
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """(training rows, test rows): held-out products with a known colour are measured; the
        conditioned G trains only on products with one (an unknown colour has no one-hot)."""
        train, test = split_rows(len(data), cfg.holdout)
        coloured = data.label_index[:, 0] >= 0
        return (train[coloured[train]] if cfg.condition_on_color else train,
                test[coloured[test]])

    @classmethod
    def check(cls, cfg: ColorizationConfig, data) -> None:
        if not isinstance(data, H5ImageDataset):
            raise ValueError("colorization trains on an image store with a color column "
                             "(datasets/packshots.h5), not a paired store or a folder")
        if cfg.generator == "unet":
            unet_downs(cfg.image_size)
        elif cfg.generator.startswith("resnet") and cfg.image_size % 4:
            raise ValueError(f"the ResNet generator needs image_size divisible by 4, got "
                             f"{cfg.image_size}")
        values = data.label_values[COLUMN]
        unknown = [c for c in cfg.recolour_to if c not in values]
        if unknown:
            raise ValueError(f"recolour_to: no colour {', '.join(map(repr, unknown))} in the "
                             f"store's color column; it has: {', '.join(values)}")
        if cfg.recolour_to and not cfg.condition_on_color:
            raise ValueError("recolour_to needs condition_on_color (the recolour variant)")
        train, test = cls.rows(cfg, data)
        coloured = int((data.label_index[:, 0] >= 0).sum())
        if len(train) < 2 * cfg.batch_size:
            raise ValueError(f"too few training products for batch_size {cfg.batch_size} (2 "
                             f"batches, {2 * cfg.batch_size}): {len(train)} of {len(data)} "
                             f"({coloured} with a colour, holdout {cfg.holdout} kept out)")
        if not len(test):
            raise ValueError(f"no held-out product has a colour to measure against "
                             f"({coloured} of {len(data)} products have one); raise holdout")
        seen = data.label_index[train, 0].unique()
        if cfg.condition_on_color and len(seen[seen >= 0]) < 2:
            raise ValueError(f"recolouring needs training products of at least 2 colours, "
                             f"the store's have {len(seen[seen >= 0])}")
        if cfg.classifier_file and not Path(cfg.classifier_file).is_file():
            raise ValueError(f"classifier_file {cfg.classifier_file}: no such file")

    # ----- networks ---------------------------------------------------------------------------
    @property
    def values(self) -> list[str]:
        return self.data.label_values[COLUMN]

    @property
    def cond_dim(self) -> int:
        return len(self.values) if self.cfg.condition_on_color else 0

    def build(self) -> None:
        cfg, size, k = self.cfg, self.data.image_size, self.cond_dim
        self.netG = self.to_device(define_G(1, 3, cfg.ngf, cfg.generator, cfg.norm, cfg.dropout,
                                            image_size=size, cond_nc=k))
        self.netD = self.to_device(define_D(1 + 3 + k, cfg.ndf, cfg.discriminator,
                                            cfg.d_layers, cfg.norm, image_size=size))
        self.modules = {"netG": self.netG, "netD": self.netD}
        self.optimizers = {"optG": self.adam(self.netG), "optD": self.adam(self.netD)}
        self.train_rows, self.test_rows = self.rows(cfg, self.data)
        seen = self.data.label_index[self.train_rows, 0].unique()
        self.train_colours = [self.values[i] for i in seen[seen >= 0].tolist()]

    def train_index(self) -> torch.Tensor:
        return self.train_rows

    def onehot(self, colour: torch.Tensor) -> torch.Tensor | None:
        """Class indices (N,) -> the conditioned G's second input (N, k); None unconditioned."""
        return one_hot(colour, self.cond_dim).to(colour.device) if self.cond_dim else None

    def colourise(self, net, grey: torch.Tensor, colour: torch.Tensor) -> torch.Tensor:
        """net(grey[, one-hot of colour])."""
        c = self.onehot(colour)
        return net(grey) if c is None else net(grey, c)

    def pair(self, grey: torch.Tensor, image: torch.Tensor, c: torch.Tensor | None
             ) -> torch.Tensor:
        """D's input: grey, the colour image and (conditioned) the tiled one-hot."""
        parts = [grey, image] if c is None else [grey, image, tile_labels(c, grey)]
        return torch.cat(parts, 1)

    def gan_loss(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        if self.cfg.gan_mode == "lsgan":
            logits = logits.float()
            return F.mse_loss(logits, torch.full_like(logits, float(real)))
        return bce(logits, 1.0 if real else 0.0)

    def step(self, real, labels, gen, measure):
        netG, netD = self.netG, self.netD
        grey = to_grey(real)  # the input, from the colour batch (flipped with it)
        c = self.onehot(labels[:, 0]) if self.cond_dim else None

        # (1) Update D on (grey, real colour) and (grey, output) pairs
        with self.autocast:
            fake = netG(grey) if c is None else netG(grey, c)
            out_real, out_fake = self.both(netD, self.pair(grey, real, c),
                                           self.pair(grey, fake.detach(), c))
            d_real, d_fake = self.gan_loss(out_real, True), self.gan_loss(out_fake, False)
            errD = 0.5 * (d_real + d_fake)
        self.update("optD", errD)

        # (2) Update G: fool D, stay close to the real colours
        netD.requires_grad_(False)
        with self.autocast:
            g_gan = self.gan_loss(netD(self.pair(grey, fake, c)), True)
            g_l1 = F.l1_loss(fake.float(), real.float())
            errG = g_gan + self.cfg.lambda_l1 * g_l1
        self.update("optG", errG)
        netD.requires_grad_(True)
        return {"d_real": d_real, "d_fake": d_fake, "g_gan": g_gan, "g_l1": g_l1}

    # ----- what it exports and how it is measured ---------------------------------------------
    def test_images(self, n: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
        """(real colour images, true colour indices) of the first n held-out products."""
        rows = self.test_rows[:n]
        return to_unit_range(self.data.images[rows]), self.data.label_index[rows, 0]

    def grids(self):
        """Rows of 8 test products: grey inputs, outputs, real packshots."""
        colour, true = self.test_images(8)
        colour, true = colour.to(self.device), true.to(self.device)
        grey = to_grey(colour)
        out = self.colourise(self.netG, grey, true).float()
        return {"samples": torch.cat([grey.expand(-1, 3, -1, -1), out, colour])}

    def translator(self):
        return self.netG

    def domains(self) -> tuple[str, str]:
        return ("grey", "color")

    def conditioning(self) -> dict[str, str]:
        if not self.cond_dim:
            return {}
        return {"conditioning": "labels", "cond_dim": str(self.cond_dim),
                "label_columns": COLUMN, "label_sizes": str(self.cond_dim),
                "label_values": json.dumps({COLUMN: self.values})}

    def translator_tags(self) -> dict[str, str]:
        """The shared tags; `channels` is what the translator takes: the grey image."""
        return {**super().translator_tags(), "channels": "1"}

    def translator_example(self) -> tuple[torch.Tensor, ...]:
        colour, true = self.test_images(4)
        c = self.onehot(true)
        return (to_grey(colour),) if c is None else (to_grey(colour), c)

    def evaluation_set(self, n: int = 1000, seed: int = 0) -> dict:
        """evaluate_translator's arguments: the grey held-out products, their real packshots
        (L1, PSNR, SSIM), up to REFERENCE_MAX real packshots (FD) and the colour edits: the
        true colour (unconditioned), or each product kept and changed to a colour drawn from
        the training products' other colours (conditioned)."""
        colour, true = self.test_images(n)
        out = {"inputs": to_grey(colour), "targets": colour,
               "reference": to_unit_range(self.data.images[:REFERENCE_MAX])}
        names = [self.values[i] for i in true.tolist()]
        if not self.cond_dim:
            return {**out, "edits": [Edit(COLUMN, None, COLUMN, names)]}
        gen = torch.Generator().manual_seed(seed)
        pool = torch.tensor([self.values.index(v) for v in self.train_colours])
        changed = []
        for t in true.tolist():
            others = pool[pool != t]
            changed.append(int(others[torch.randint(len(others), (), generator=gen)]))
        changed_t = torch.tensor(changed)
        return {**out, "condition": self.onehot(true),
                "edits": [Edit(f"{COLUMN}_kept", self.onehot(true), COLUMN, names),
                          Edit(f"{COLUMN}_changed", self.onehot(changed_t), COLUMN,
                               [self.values[i] for i in changed])]}

    def write_sheets(self, net: torch.nn.Module, out_dir: Path) -> list[Path]:
        """translation.png: grey | output | real for 16 test products (outputs in their true
        colour); conditioned, recolour.png: 4 products, one a row: grey, one output per
        requested colour, real."""
        colour, true = self.test_images(16)
        grey = to_grey(colour)
        out = translate(net, grey, self.onehot(true))
        sheets = [translation_grid([("grey", grey), ("output", out), ("real", colour)],
                                   Path(out_dir) / "translation.png")]
        if self.cond_dim:
            grey, colour = grey[:4], colour[:4]
            requested = self.cfg.recolour_to or self.train_colours
            columns = [(name, translate(net, grey, self.onehot(
                torch.full((len(grey),), self.values.index(name))))) for name in requested]
            sheets.append(translation_grid([("grey", grey), *columns, ("real", colour)],
                                           Path(out_dir) / "recolour.png", per_row=1))
        return sheets

    def finish(self, out_dir: Path) -> dict:
        """The translator's weights, the sheets and the test measures (colour accuracy and FD
        when the classifier is given)."""
        out_dir = Path(out_dir)
        torch.save(self.netG.state_dict(), out_dir / "translator.pt")
        net = copy.deepcopy(self.netG).float().cpu().eval()
        classifier, values = None, None
        if self.cfg.classifier_file:
            from training.classifier import load_classifier

            classifier, values = load_classifier(Path(self.cfg.classifier_file))
        self.write_sheets(net, out_dir)
        return {"domains": "->".join(self.domains()),
                "conditioning": "labels" if self.cond_dim else "none",
                "test_products": len(self.test_rows), "train_products": len(self.train_rows),
                "measures": evaluate_translator(net, classifier=classifier, values=values,
                                                **self.evaluation_set())}

    def report(self, out_dir, summary):
        out_dir = Path(out_dir)
        names = ["translation", "recolour"] if self.cond_dim else ["translation"]
        if not all((out_dir / f"{n}.png").exists() for n in names):
            self.write_sheets(self.netG, out_dir)
        return {}, {n: [out_dir / f"{n}.png"] for n in names}
