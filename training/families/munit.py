"""MUNIT (Huang et al., 2018): multimodal unpaired translation, a packshot to many photos of a
person wearing it.

Each domain has an auto-encoder: a content encoder E^c (7x7 conv, two stride-2 downs, residual
blocks, instance norm), a style encoder E^s (convs down to a global average, then a 1x1 conv to
an 8-dimensional style code) and a decoder (residual blocks whose AdaIN scales and shifts come
from an MLP of the style code, then two nearest-neighbour ups with layer norm, 7x7 conv, tanh).
A -> B keeps A's content and takes a style from B's prior: x_ab = G_b(E^c_a(a), s_b),
s_b ~ N(0, I). D_a and D_b are multi-scale PatchGANs (scaled to each scale, no norm). With
c = E^c(x), s = E^s(x), LSGAN, λ_x = 10, λ_c = λ_s = 1:
    D minimises Σ_scales (D_b(b) − 1)² + D_b(x_ab)², and the same for A
    G minimises (D_b(x_ab) − 1)² + (D_a(x_ba) − 1)²                          (adversarial)
                + λ_x(‖G_a(c_a, s_a) − a‖₁ + ‖G_b(c_b, s_b) − b‖₁)            (image recon.)
                + λ_c(‖E^c_b(x_ab) − c_a‖₁ + …) + λ_s(‖E^s_b(x_ab) − s_b‖₁ + …)   (latent recon.)
Adam(1e-4, β 0.5/0.999, weight decay 1e-4), the rate halved every lr_halve_every steps in the
full profile (the paper's 100k). The translator users load takes (packshot, style code (N, 8)).

Measured on A's test split: the Fréchet distance of one styled output per input to every B image
(realism) and the diversity of several outputs per input (mean pairwise distance), both in the
attribute classifier's feature space.
"""

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.config import GANConfig
from training.datasets import UnpairedDataset, check_domain_sizes
from training.families.cyclegan import DOMAINS_HELP, parse_domains, shown_rows
from training.family import Family, option, register
from training.models.translation import (
    DISCRIMINATORS,
    AdaINResBlock,
    define_D,
    init_weights,
)
from training.translation_metrics import evaluate_translator, translate, translation_grid


# ----- the networks (MUNIT's networks.py, on the shared AdaIN block) ---------------------------
class LayerNorm(nn.Module):
    """MUNIT's decoder norm: each image normalised over (C, H, W), then a per-channel scale
    (initialised uniform in [0, 1], as MUNIT) and shift."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.rand(channels))
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, x.shape[1:], eps=self.eps)
        return x * self.gamma[None, :, None, None] + self.beta[None, :, None, None]


def conv_block(c_in: int, c_out: int, kernel: int, stride: int, norm: str = "none",
               act: str = "relu") -> nn.Sequential:
    """Reflect padding, conv, norm (in: instance, ln: layer, none), activation."""
    layers: list[nn.Module] = [nn.ReflectionPad2d(kernel // 2 if stride == 1 else 1),
                               nn.Conv2d(c_in, c_out, kernel, stride)]
    if norm == "in":
        layers.append(nn.InstanceNorm2d(c_out))
    elif norm == "ln":
        layers.append(LayerNorm(c_out))
    layers.append({"relu": nn.ReLU(True), "lrelu": nn.LeakyReLU(0.2, True),
                   "tanh": nn.Tanh()}[act])
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """The content encoder's residual block: x + IN-conv(ReLU(IN-conv(x)))."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(conv_block(dim, dim, 3, 1, "in"),
                                  nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3),
                                  nn.InstanceNorm2d(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ContentEncoder(nn.Sequential):
    """7x7 conv, n_down stride-2 4x4 convs (width doubling), n_res residual blocks; all with
    instance norm: the domain-invariant content code (N, dim·2^n_down, H/2^n_down, W/...)."""

    def __init__(self, nc: int, dim: int, n_down: int, n_res: int):
        layers = [conv_block(nc, dim, 7, 1, "in")]
        for _ in range(n_down):
            layers.append(conv_block(dim, 2 * dim, 4, 2, "in"))
            dim *= 2
        layers += [ResBlock(dim) for _ in range(n_res)]
        super().__init__(*layers)
        self.out_dim = dim


class StyleEncoder(nn.Sequential):
    """7x7 conv, two width-doubling and n_down − 2 further stride-2 convs (no norm: it would
    remove the style), global average, 1x1 conv to style_dim."""

    def __init__(self, nc: int, dim: int, style_dim: int, n_down: int = 4):
        layers = [conv_block(nc, dim, 7, 1)]
        for i in range(n_down):
            out = 2 * dim if i < 2 else dim
            layers.append(conv_block(dim, out, 4, 2))
            dim = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, style_dim, 1), nn.Flatten()]
        super().__init__(*layers)


class Decoder(nn.Module):
    """Content + style -> image: n_res AdaIN residual blocks whose (γ, β) an MLP of the style
    code gives, n_up nearest-neighbour ups with 5x5 conv and layer norm, 7x7 conv, tanh."""

    def __init__(self, dim: int, nc: int, style_dim: int, n_up: int, n_res: int,
                 mlp_dim: int):
        super().__init__()
        self.blocks = nn.ModuleList(AdaINResBlock(dim) for _ in range(n_res))
        n_params = sum(b.n_params for b in self.blocks)
        self.mlp = nn.Sequential(nn.Linear(style_dim, mlp_dim), nn.ReLU(True),
                                 nn.Linear(mlp_dim, mlp_dim), nn.ReLU(True),
                                 nn.Linear(mlp_dim, n_params))
        ups: list[nn.Module] = []
        for _ in range(n_up):
            ups += [nn.Upsample(scale_factor=2, mode="nearest"),
                    conv_block(dim, dim // 2, 5, 1, "ln")]
            dim //= 2
        self.up = nn.Sequential(*ups, conv_block(dim, nc, 7, 1, act="tanh"))

    def forward(self, content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        params = self.mlp(style.to(content.dtype)).split([b.n_params for b in self.blocks], 1)
        x = content
        for block, p in zip(self.blocks, params, strict=True):
            x = block(x, p)
        return self.up(x)


class AdaINGen(nn.Module):
    """One domain's auto-encoder: content encoder, style encoder, decoder."""

    def __init__(self, nc: int, dim: int, style_dim: int, n_down: int, n_res: int,
                 mlp_dim: int):
        super().__init__()
        self.enc_content = ContentEncoder(nc, dim, n_down, n_res)
        self.enc_style = StyleEncoder(nc, dim, style_dim)
        self.dec = Decoder(self.enc_content.out_dim, nc, style_dim, n_down, n_res, mlp_dim)
        init_weights(self, "kaiming")

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.enc_content(x), self.enc_style(x)


class MultiScaleD(nn.Module):
    """PatchGANs (training.models.translation.define_D, no norm, each scaled to its scale's
    size) on the image and its 2x, 4x, … average-pooled copies; a list of logit maps."""

    def __init__(self, nc: int, ndf: int, scales: int, image_size: int, netD: str = "basic",
                 n_layers: int = 3):
        super().__init__()
        self.nets = nn.ModuleList(define_D(nc, ndf, netD, n_layers, "none",
                                           image_size=image_size // 2 ** k)
                                  for k in range(scales))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for k, net in enumerate(self.nets):
            if k:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(net(x))
        return out


class StyleTranslator(nn.Module):
    """What users load: (image of A, style code (N, style_dim)) -> image of B, B's decoder on
    A's content."""

    def __init__(self, enc_content: nn.Module, dec: nn.Module):
        super().__init__()
        self.enc_content, self.dec = enc_content, dec

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        return self.dec(self.enc_content(x), style)


# ----- the family -----------------------------------------------------------------------------
@dataclass
class MUNITConfig(GANConfig):
    domains: str = option("packshot|person", DOMAINS_HELP)
    style_dim: int = option(8, "style code dimensions (the paper's 8)", ge=1)
    mlp_dim: int = option(256, "width of the MLP giving AdaIN's parameters", ge=1)
    n_res: int = option(4, "residual blocks of the content encoder and the decoder", ge=1)
    n_down: int = option(2, "stride-2 downs of the content encoder (ups of the decoder)",
                         ge=1, le=4)
    d_scales: int = option(3, "scales of the multi-scale discriminator (1: a single PatchGAN)",
                           ge=1, le=4)
    discriminator: str = option("basic", "each scale's PatchGAN: basic (scaled to the "
                                "scale's size), n_layers (d_layers), pixel", choices=DISCRIMINATORS)
    d_layers: int = option(3, "stride-2 layers of the n_layers PatchGAN", ge=1, le=6)
    lambda_x: float = option(10.0, "image reconstruction weight (the paper's 10)", ge=0)
    lambda_c: float = option(1.0, "content reconstruction weight", ge=0)
    lambda_s: float = option(1.0, "style reconstruction weight", ge=0)
    lambda_cyc: float = option(0.0, "cycle reconstruction weight (0 in the paper's "
                               "edges2shoes; 10 in its other configs)", ge=0)
    weight_decay: float = option(1e-4, "Adam weight decay (the paper's 1e-4)", ge=0)
    beta2: float = option(0.999, "Adam beta2", ge=0, lt=1)
    lr_halve_every: int = option(0, "halve the learning rates every this many steps (the "
                                 "paper's 100k; 0: constant)", ge=0)
    image_size: int = option(0, "resize both domains to this size (0: the store's own)", ge=0)
    flip: bool = option(True, "random left-right flips of the training images")
    eval_styles: int = option(4, "styles per input for the diversity measure", ge=2)
    grid_styles: int = option(6, "sampled styles per row of the report's grid", ge=1)
    fd_classifier: str = option("", "attribute classifier file (attribute_classifier.pt) for "
                                "the Fréchet distance and diversity in the summary; empty: none "
                                "(the asset fills in the store's)")
    lr: float = option(1e-4, "Adam learning rate (the paper's 1e-4)", gt=0)

    # demo: ~2 min on an idle 2-core CPU at 64 px: 500 images at 0.17 s of one core's CPU
    # time each (6.2 GFLOP a step per image), x1.23, pix2pix's ratio of its measured idle
    # 2-core time to the same single-thread figure. full: the paper's: batch 1, widths 64,
    # MLP 256, 4 residual blocks, 3 scales, 1M steps with the rate halved every 100k (scale
    # steps to the store)
    PROFILES = {"demo": {"steps": 250, "batch_size": 2, "ngf": 16, "ndf": 16, "mlp_dim": 64,
                         "n_res": 2, "sample_every": 100, "checkpoint_every": 100},
                "full": {"steps": 1000000, "batch_size": 1, "ngf": 64, "ndf": 64,
                         "lr_halve_every": 100000, "log_every": 100,
                         "sample_every": 10000, "checkpoint_every": 10000}}


@register
class MUNIT(Family):
    """MUNIT: content and style codes, an AdaIN decoder, multi-scale PatchGANs (LSGAN);
    multimodal packshot -> person, the translator taking (image, style code)."""

    name = "munit"
    kind = "translator"
    Config = MUNITConfig
    losses = ("d_a", "d_b", "g_adv", "recon_x", "recon_c", "recon_s", "recon_cyc")
    data_store = "paired_images"
    measures = ("frechet_distance", "diversity")
    main_measure = ("frechet_distance", "min")

    @classmethod
    def from_store(cls, cfg: MUNITConfig, store) -> MUNITConfig:
        """The summary's classifier measures use the store's attribute classifier."""
        if not cfg.fd_classifier and Path(store.attribute_classifier).is_file():
            return replace(cfg, fd_classifier=str(store.attribute_classifier))
        return cfg

    @classmethod
    def data_options(cls, cfg: MUNITConfig) -> dict:
        return {"domains": parse_domains(cfg.domains), "flip": cfg.flip,
                "image_size": cfg.image_size or None}

    @classmethod
    def check(cls, cfg: MUNITConfig, data) -> None:
        if not isinstance(data, UnpairedDataset):
            raise ValueError(f"{cls.name} trains on two domains of a store (--domains), not "
                             f"{type(data).__name__}")
        check_domain_sizes(data, cfg.batch_size)
        need = 2 ** (cfg.d_scales + 2)  # D's smallest scale is 8 px at least
        if data.image_size % 2 ** cfg.n_down or data.image_size < need:
            raise ValueError(f"image_size {data.image_size}: the content encoder halves it "
                             f"{cfg.n_down} times and D looks at {cfg.d_scales} scales, so it "
                             f"must be divisible by {2 ** cfg.n_down} and >= {need}")
        if len(data.test_index()) < 2:  # a Fréchet distance needs two images at least
            raise ValueError(f"{cls.name} is measured on domain A's test split (2 images at "
                             f"least), and {data.a_name} has {len(data.test_index())}")
        if cfg.fd_classifier and not Path(cfg.fd_classifier).is_file():
            raise ValueError(f"fd_classifier {cfg.fd_classifier}: no such file")

    def build(self) -> None:
        cfg, data = self.cfg, self.data
        nc, size = data.channels, data.image_size

        def gen() -> nn.Module:
            return self.to_device(AdaINGen(nc, cfg.ngf, cfg.style_dim, cfg.n_down, cfg.n_res,
                                           cfg.mlp_dim))

        def dis() -> nn.Module:
            return self.to_device(MultiScaleD(nc, cfg.ndf, cfg.d_scales, size,
                                              cfg.discriminator, cfg.d_layers))

        self.gen_a, self.gen_b, self.dis_a, self.dis_b = gen(), gen(), dis(), dis()
        self.modules = {"gen_a": self.gen_a, "gen_b": self.gen_b, "dis_a": self.dis_a,
                        "dis_b": self.dis_b}

        def adam(*nets: nn.Module) -> torch.optim.Adam:
            return torch.optim.Adam([p for n in nets for p in n.parameters()], lr=cfg.lr,
                                    betas=(cfg.beta1, cfg.beta2),
                                    weight_decay=cfg.weight_decay, fused=True)

        self.optimizers = {"optG": adam(self.gen_a, self.gen_b),
                           "optD": adam(self.dis_a, self.dis_b)}
        rows = shown_rows(data.test_index(), data.train_index(), 8)
        self.fixed = (data.images_of(rows),
                      torch.randn(3, cfg.style_dim, generator=torch.Generator().manual_seed(1)))

    def train_index(self) -> torch.Tensor:
        return self.data.train_index()

    def decay_lr(self) -> None:
        """MUNIT's step policy: the rate halves every lr_halve_every steps."""
        every = self.cfg.lr_halve_every
        if every:
            lr = self.cfg.lr * 0.5 ** (self.current_step // every)
            for opt in self.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = lr

    @staticmethod
    def lsgan(outs: list[torch.Tensor], real: bool) -> torch.Tensor:
        """Σ over scales of the mean (D(x) − 1)² (real) or D(x)² (fake)."""
        return sum(F.mse_loss(o.float(), torch.full_like(o.float(), float(real))) for o in outs)

    def sample_style(self, n: int, gen: torch.Generator | None = None) -> torch.Tensor:
        """Style codes from the prior N(0, I): (n, style_dim)."""
        return torch.randn(n, self.cfg.style_dim, generator=gen)

    def step(self, real, labels, gen, measure):
        a, b = real
        cfg, gen_a, gen_b, dis_a, dis_b = self.cfg, self.gen_a, self.gen_b, self.dis_a, self.dis_b
        self.decay_lr()
        s_a = self.sample_style(len(a), gen).to(a.device)
        s_b = self.sample_style(len(b), gen).to(b.device)
        with self.autocast:
            (c_a, s_a_own), (c_b, s_b_own) = gen_a.encode(a), gen_b.encode(b)
            x_ba, x_ab = gen_a.dec(c_b, s_a), gen_b.dec(c_a, s_b)

        # (1) Update D_a and D_b: real images against the cross-domain translations
        with self.autocast:
            d_a = self.lsgan(dis_a(a), True) + self.lsgan(dis_a(x_ba.detach()), False)
            d_b = self.lsgan(dis_b(b), True) + self.lsgan(dis_b(x_ab.detach()), False)
        self.update("optD", d_a + d_b)

        # (2) Update both auto-encoders: fool D, reconstruct images, contents and styles
        dis_a.requires_grad_(False)
        dis_b.requires_grad_(False)
        with self.autocast:
            g_adv = self.lsgan(dis_a(x_ba), True) + self.lsgan(dis_b(x_ab), True)
            recon_x = (F.l1_loss(gen_a.dec(c_a, s_a_own).float(), a.float())
                       + F.l1_loss(gen_b.dec(c_b, s_b_own).float(), b.float()))
            (c_b_rec, s_a_rec), (c_a_rec, s_b_rec) = gen_a.encode(x_ba), gen_b.encode(x_ab)
            recon_c = (F.l1_loss(c_a_rec.float(), c_a.float())
                       + F.l1_loss(c_b_rec.float(), c_b.float()))
            recon_s = (F.l1_loss(s_a_rec.float(), s_a) + F.l1_loss(s_b_rec.float(), s_b))
            errG = (g_adv + cfg.lambda_x * recon_x + cfg.lambda_c * recon_c
                    + cfg.lambda_s * recon_s)
            recon_cyc = torch.zeros((), device=a.device)
            if cfg.lambda_cyc > 0:  # A -> B -> A with A's own style, and back
                recon_cyc = (F.l1_loss(gen_a.dec(c_a_rec, s_a_own).float(), a.float())
                             + F.l1_loss(gen_b.dec(c_b_rec, s_b_own).float(), b.float()))
                errG = errG + cfg.lambda_cyc * recon_cyc
        self.update("optG", errG)
        dis_a.requires_grad_(True)
        dis_b.requires_grad_(True)
        return {"d_a": d_a, "d_b": d_b, "g_adv": g_adv, "recon_x": recon_x,
                "recon_c": recon_c, "recon_s": recon_s, "recon_cyc": recon_cyc}

    def translator(self) -> nn.Module:
        return StyleTranslator(self.gen_a.enc_content, self.gen_b.dec)

    def grids(self):
        """Rows of 8 A images (test first), then their translations with 3 fixed styles."""
        x, styles = self.fixed
        x = x.to(self.device)
        net = self.translator()
        return {"samples": torch.cat([x, *(net(x, s.expand(len(x), -1).to(self.device)).float()
                                           for s in styles)])}

    def conditioning(self) -> dict[str, str]:
        return {"conditioning": "style", "cond_dim": str(self.cfg.style_dim)}

    def evaluation_set(self, n: int = 1000, seed: int = 0) -> dict:
        """A's test images, every B image as the realism reference, styles from the prior
        (eval_styles per input for the diversity)."""
        data = self.data
        return {"inputs": data.images_of(data.test_index()[:n]),
                "reference": data.targets_of(torch.arange(len(data.targets))),
                "style": self.sample_style, "styles_per_input": self.cfg.eval_styles,
                "seed": seed}

    def translator_example(self) -> tuple[torch.Tensor, ...]:
        images = self.data.images_of(shown_rows(self.data.test_index(),
                                                self.data.train_index(), 4))
        return images, self.sample_style(len(images), torch.Generator().manual_seed(0))

    def write_sheet(self, path: Path, n: int = 16) -> Path:
        """One row per test input: the input, then grid_styles outputs, the same sampled
        styles in every row (a column is one style)."""
        net = copy.deepcopy(self.translator()).float().cpu().eval()
        x = self.evaluation_set(n)["inputs"]
        styles = self.sample_style(self.cfg.grid_styles, torch.Generator().manual_seed(0))
        columns = [("input", x)] + [(f"s{k + 1}", translate(net, x, s.expand(len(x), -1)))
                                    for k, s in enumerate(styles)]
        return translation_grid(columns, path, per_row=1)

    def finish(self, out_dir: Path) -> dict:
        """The translator's weights, the report's sheet, and the measures when fd_classifier
        is given."""
        out_dir = Path(out_dir)
        torch.save(self.translator().state_dict(), out_dir / "translator.pt")
        self.write_sheet(out_dir / "translation.png")
        measures = {}
        if self.cfg.fd_classifier:
            from training.classifier import load_classifier

            classifier, values = load_classifier(Path(self.cfg.fd_classifier))
            net = copy.deepcopy(self.translator()).float().cpu().eval()
            measures = evaluate_translator(net, classifier=classifier, values=values,
                                           **self.evaluation_set())
        return {"domains": "->".join(self.domains()), "measures": measures}

    def report(self, out_dir, summary):
        sheet = Path(out_dir) / "translation.png"
        if not sheet.exists():  # a run folder trained before the sheet was drawn
            self.write_sheet(sheet)
        return {}, {"translation": [sheet]}
