"""pix2pix (Isola et al., 2017): a conditional GAN from a packshot to the person wearing it, or
back, on the paired store (datasets/paired_images.h5, training/paired.py).

G is a U-Net with dropout, D a PatchGAN on (input, output) pairs with n_layers scaled to the
image size (16x16 patches at 64 px, the paper's 70x70 share of a 256 px image:
training.models.translation.patch_layers). With x the source, y the target:
    D maximises  log D(x, y) + log(1 − D(x, G(x)))           (its loss halved, as the paper's)
    G minimises  −log D(x, G(x)) + λ ‖y − G(x)‖₁,  λ = 100
Adam(2e-4, β1 0.5), trained on the train split; flips move both images together. The report:
an input | output | target sheet of 16 test products and L1, PSNR, SSIM and the Fréchet
distance in the attribute classifier's space (training.translation_metrics) on the test split.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from training.config import GANConfig
from training.datasets import DIRECTIONS, PairedDataset, check_domain_sizes
from training.family import Family, option, register
from training.losses import bce
from training.models.translation import (
    DISCRIMINATORS,
    GENERATORS,
    NORMS,
    define_D,
    define_G,
    unet_downs,
)
from training.translation_metrics import evaluate_translator, translation_grid

GAN_MODES = ("vanilla", "lsgan")


@dataclass
class Pix2PixConfig(GANConfig):
    direction: str = option("a2b", "a2b: packshot -> person crop, b2a: person crop -> "
                            "packshot (the paired store's a and b)", choices=DIRECTIONS)
    lambda_l1: float = option(100.0, "weight of the L1 term (the paper's 100)", ge=0)
    generator: str = option("unet", "unet (depth from the image size), unet_128, unet_256, "
                            "resnet_9blocks or resnet_6blocks", choices=GENERATORS)
    discriminator: str = option("basic", "basic (PatchGAN scaled to the image size), "
                                "n_layers (d_layers), pixel (1x1)", choices=DISCRIMINATORS)
    d_layers: int = option(3, "stride-2 layers of the n_layers PatchGAN", ge=1, le=6)
    norm: str = option("batch", "batch, instance or none", choices=NORMS)
    dropout: bool = option(True, "dropout 0.5 in G (the paper's only noise)")
    gan_mode: str = option("vanilla", "vanilla (BCE, the paper's) or lsgan", choices=GAN_MODES)
    flip: bool = option(True, "random left-right flips of the training pairs (both images)")
    lr_decay_start: int = option(0, "step from which the learning rates fall linearly to 0 at "
                                 "`steps` (0: constant)", ge=0)
    fd_classifier: str = option("", "attribute classifier file (attribute_classifier.pt) for "
                                "the Fréchet distance in the summary; empty: none (the asset "
                                "measures with the metrics' classifier)")

    # demo: ~2 min on an idle 2-core CPU (~29 images/s). full: the paper's: batch 1, widths
    # 64, 100 + 100 epochs of a 1,000-pair store with the decay over the second half (scale
    # steps to the store); its batch norm at batch 1 on test statistics is instance norm
    PROFILES = {"demo": {"steps": 200, "batch_size": 16, "ngf": 32, "ndf": 32,
                         "sample_every": 100, "checkpoint_every": 100},
                "full": {"steps": 200000, "batch_size": 1, "ngf": 64, "ndf": 64,
                         "norm": "instance", "lr_decay_start": 100000, "log_every": 100,
                         "sample_every": 5000, "checkpoint_every": 5000}}


@register
class Pix2Pix(Family):
    """pix2pix: U-Net G, PatchGAN D, L1 weight 100; packshot -> person crop and back."""

    name = "pix2pix"
    kind = "translator"
    Config = Pix2PixConfig
    losses = ("d_real", "d_fake", "g_gan", "g_l1")
    variants = {"packshot_to_person": {"direction": "a2b"},
                "person_to_packshot": {"direction": "b2a"}}
    in_demo = ("packshot_to_person",)  # full_pipeline's translator
    data_store = "paired_images"
    measures = ("l1", "psnr", "ssim", "frechet_distance")
    main_measure = ("l1", "min")  # FD from the demo's 16 test outputs is too noisy to rank by

    @classmethod
    def check(cls, cfg: Pix2PixConfig, data) -> None:
        if not isinstance(data, PairedDataset):
            raise ValueError("pix2pix trains on a paired store (datasets/paired_images.h5, "
                             "the paired_images asset), not an image store")
        if cfg.generator == "unet":
            unet_downs(data.image_size)
        check_domain_sizes(data, cfg.batch_size)
        if not len(data.test_index()):
            raise ValueError("pix2pix is measured on the test split, and the store has no "
                             "test pairs (build it with min_test > 0)")
        if cfg.fd_classifier and not Path(cfg.fd_classifier).is_file():
            raise ValueError(f"fd_classifier {cfg.fd_classifier}: no such file")

    @classmethod
    def data_options(cls, cfg: Pix2PixConfig) -> dict:
        return {"direction": cfg.direction, "flip": cfg.flip}

    def build(self) -> None:
        cfg, data = self.cfg, self.data
        nc, out_nc, size = data.channels, data.targets.shape[1], data.image_size
        self.netG = self.to_device(define_G(nc, out_nc, cfg.ngf, cfg.generator, cfg.norm,
                                            cfg.dropout, image_size=size))
        self.netD = self.to_device(define_D(nc + out_nc, cfg.ndf, cfg.discriminator,
                                            cfg.d_layers, cfg.norm, image_size=size))
        self.modules = {"netG": self.netG, "netD": self.netD}
        self.optimizers = {"optG": self.adam(self.netG), "optD": self.adam(self.netD)}
        shown = data.test_index()[:8]
        self.fixed = (data.images_of(shown), data.targets_of(shown))

    def train_index(self) -> torch.Tensor:
        return self.data.train_index()

    def gan_loss(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        if self.cfg.gan_mode == "lsgan":
            logits = logits.float()
            return F.mse_loss(logits, torch.full_like(logits, float(real)))
        return bce(logits, 1.0 if real else 0.0)

    def decay_lr(self) -> None:
        """The repo's linear policy: constant, then linearly to 0 from lr_decay_start."""
        start, steps = self.cfg.lr_decay_start, self.cfg.steps
        if start and self.current_step >= start:
            lr = self.cfg.lr * (1 - (self.current_step - start) / (steps - start + 1))
            for opt in self.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = lr

    def step(self, real, labels, gen, measure):
        a, b = real
        netG, netD = self.netG, self.netD
        self.decay_lr()

        # (1) Update D on (input, target) and (input, output) pairs
        with self.autocast:
            fake = netG(a)
            out_real, out_fake = self.both(netD, torch.cat([a, b], 1),
                                           torch.cat([a, fake.detach()], 1))
            d_real, d_fake = self.gan_loss(out_real, True), self.gan_loss(out_fake, False)
            errD = 0.5 * (d_real + d_fake)
        self.update("optD", errD)

        # (2) Update G: fool D, stay close to the target
        netD.requires_grad_(False)  # no gradients for D's weights in G's step
        with self.autocast:
            g_gan = self.gan_loss(netD(torch.cat([a, fake], 1)), True)
            g_l1 = F.l1_loss(fake.float(), b.float())
            errG = g_gan + self.cfg.lambda_l1 * g_l1
        self.update("optG", errG)
        netD.requires_grad_(True)
        return {"d_real": d_real, "d_fake": d_fake, "g_gan": g_gan, "g_l1": g_l1}

    def grids(self):
        """Rows of 8 test products: inputs, outputs, targets."""
        a, b = (t.to(self.device) for t in self.fixed)
        return {"samples": torch.cat([a, self.netG(a).float(), b])}

    def translator(self):
        return self.netG

    def finish(self, out_dir: Path) -> dict:
        """The translator's weights, the report's sheet and the test measures (FD when the
        classifier is given)."""
        out_dir = Path(out_dir)
        torch.save(self.netG.state_dict(), out_dir / "translator.pt")
        net = copy.deepcopy(self.netG).float().cpu().eval()
        classifier = None
        if self.cfg.fd_classifier:
            from training.classifier import load_classifier

            classifier, _ = load_classifier(Path(self.cfg.fd_classifier))
        test = self.evaluation_set()
        write_sheet(net, test["inputs"][:16], test["targets"][:16], out_dir / "translation.png")
        return {"direction": self.cfg.direction, "domains": "->".join(self.domains()),
                "measures": evaluate_translator(net, classifier=classifier, **test)}

    def report(self, out_dir, summary):
        sheet = Path(out_dir) / "translation.png"
        if not sheet.exists():  # a run folder trained before the sheet was drawn
            test = self.evaluation_set(16)
            write_sheet(self.netG, test["inputs"], test["targets"], sheet)
        return {}, {"translation": [sheet]}


def write_sheet(net: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                path: Path) -> Path:
    """The input | output | target sheet of the test products given (16 in the report)."""
    from training.translation_metrics import translate

    return translation_grid([("input", inputs), ("output", translate(net, inputs)),
                             ("target", targets)], path)
