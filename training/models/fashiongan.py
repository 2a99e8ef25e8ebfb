"""The networks of the two-stage FashionGAN (Zhu et al., "Be Your Own Prada", ICCV 2017) and of
its single-GAN baseline, written like the pix2pix/CycleGAN repository's networks.py: one
builder per architecture, every option explicit.

    netG1 = define_G1(nz=100, cond_nc=103, ngf=64, image_size=128)  # (z, d, m(S0)) -> 7 logits
    netD1 = define_D1(cond_nc=103, ndf=64, image_size=128)          # (segmentation, d, m(S0))
    netG2 = define_G2(nz=100, cond_nc=103, ngf=64, image_size=128)  # (z, d, segmentation) -> RGB
    netD2 = define_D2(cond_nc=103, ndf=64, image_size=128)          # (image, d, segmentation)
    netG = define_single_G(...); netD = define_single_D(...)       # (z, d, m(S0)) -> RGB

Every generator is a `MapConditionedGenerator`: z and the condition d (+ skin) at 1x1 through a
4x4 transposed convolution, stride-2 transposed convolutions up to the image size, and a
spatial map concatenated to the features of every level from `map_from` px up, resized to the
level (m(S0) 8x8 for stage 1 and the single GAN, the 7-class segmentation for stage 2), last a
3x3 convolution to the output: stage 1's logits (its softmax is the segmentation), or tanh RGB.
Every discriminator is a `MapConditionedDiscriminator`: stride-2 4x4 convolutions down to 4x4,
the map concatenated at the levels `map_at` (stage 2's segmentation at the input, m(S0) at
8x8), and the condition projected and tiled at 4x4 as GAN-CLS does (Reed et al., 2016), then a
4x4 convolution to one logit. Widths double per level from ngf / ndf, capped at 8x.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from pipelines.processing.segmentation import COARSE_WEIGHTS, N_CLASSES, TO_COARSE
from training.models.dcgan import weights_init

NORMS = ("batch", "none")
N_COARSE = len(COARSE_WEIGHTS)


def norm_layer(norm: str, channels: int) -> nn.Module:
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")


def check_size(image_size: int) -> int:
    """log2(image_size); sizes are powers of two from 16 px."""
    levels = int(math.log2(image_size)) if image_size > 0 else 0
    if image_size < 16 or 2 ** levels != image_size:
        raise ValueError(f"image_size must be a power of two >= 16, got {image_size!r}")
    return levels


def fit_map(m: torch.Tensor, size: int) -> torch.Tensor:
    """A map (N, C, h, w) at size x size: area-averaged down (a one-hot becomes class
    shares), nearest up (m(S0)'s blocks)."""
    if m.shape[-1] > size:
        return F.adaptive_avg_pool2d(m, size)
    if m.shape[-1] < size:
        return F.interpolate(m, size=(size, size), mode="nearest")
    return m


class MapConditionedGenerator(nn.Module):
    """(z (N, nz[, 1, 1]), c (N, cond_nc[, 1, 1]), map (N, map_nc, h, w)) -> (N, out_nc, S, S):
    logits (`output` "logits") or tanh images (`output` "tanh")."""

    def __init__(self, nz: int, cond_nc: int, map_nc: int, out_nc: int, ngf: int,
                 image_size: int, map_from: int, output: str = "tanh", norm: str = "batch"):
        super().__init__()
        if output not in ("tanh", "logits"):
            raise ValueError(f"output must be tanh or logits, got {output!r}")
        n_up = check_size(image_size) - 2  # stride-2 steps from 4x4
        self.nz, self.cond_nc, self.map_nc, self.map_from = nz, cond_nc, map_nc, map_from
        self.output, self.image_size = output, image_size
        widths = [ngf * min(8, 2 ** (n_up - 1 - k)) for k in range(n_up)] + [ngf]
        self.sizes = [4 * 2 ** k for k in range(n_up + 1)]  # 4 ... S
        self.head = nn.Sequential(
            nn.ConvTranspose2d(nz + cond_nc, widths[0], 4, 1, 0, bias=False),
            norm_layer(norm, widths[0]), nn.ReLU(True))
        self.ups = nn.ModuleList()
        for k in range(n_up):
            c_in = widths[k] + self.map_channels(self.sizes[k])
            self.ups.append(nn.Sequential(
                nn.ConvTranspose2d(c_in, widths[k + 1], 4, 2, 1, bias=False),
                norm_layer(norm, widths[k + 1]), nn.ReLU(True)))
        self.out = nn.Conv2d(widths[-1] + self.map_channels(image_size), out_nc, 3, 1, 1)

    def map_channels(self, size: int) -> int:
        return self.map_nc if size >= self.map_from else 0

    def forward(self, z: torch.Tensor, c: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        x = self.head(torch.cat([z.flatten(1), c.flatten(1)], 1)[:, :, None, None])
        for size, up in zip(self.sizes, self.ups, strict=False):
            if size >= self.map_from:
                x = torch.cat([x, fit_map(m.to(x.dtype), size)], 1)
            x = up(x)
        if self.image_size >= self.map_from:
            x = torch.cat([x, fit_map(m.to(x.dtype), self.image_size)], 1)
        x = self.out(x)
        return torch.tanh(x) if self.output == "tanh" else x


class MapConditionedDiscriminator(nn.Module):
    """(x (N, in_nc, S, S), c (N, cond_nc[, 1, 1]), map (N, map_nc, h, w)) -> logits (N,)."""

    def __init__(self, in_nc: int, cond_nc: int, map_nc: int, ndf: int, image_size: int,
                 map_at: tuple[int, ...] = (), norm: str = "batch", cond_proj: int = 128):
        super().__init__()
        n_down = check_size(image_size) - 2
        self.map_at, self.image_size = tuple(map_at), image_size
        self.sizes = [image_size // 2 ** k for k in range(n_down + 1)]  # S ... 4
        widths = [ndf * min(8, 2 ** k) for k in range(n_down)]
        self.downs = nn.ModuleList()
        c_prev = in_nc
        for k in range(n_down):
            c_in = c_prev + (map_nc if self.sizes[k] in self.map_at else 0)
            layers = [nn.Conv2d(c_in, widths[k], 4, 2, 1, bias=False)]
            if k > 0:  # no norm on the input layer (DCGAN)
                layers.append(norm_layer(norm, widths[k]))
            layers.append(nn.LeakyReLU(0.2, True))
            self.downs.append(nn.Sequential(*layers))
            c_prev = widths[k]
        self.project = nn.Sequential(nn.Linear(cond_nc, cond_proj), nn.LeakyReLU(0.2, True))
        c_in = c_prev + (map_nc if 4 in self.map_at else 0) + cond_proj
        self.joint = nn.Sequential(nn.Conv2d(c_in, c_prev, 1, 1, 0, bias=False),
                                   norm_layer(norm, c_prev), nn.LeakyReLU(0.2, True),
                                   nn.Conv2d(c_prev, 1, 4, 1, 0))

    def forward(self, x: torch.Tensor, c: torch.Tensor, m: torch.Tensor | None = None
                ) -> torch.Tensor:
        for size, down in zip(self.sizes, self.downs, strict=False):
            if size in self.map_at:
                x = torch.cat([x, fit_map(m.to(x.dtype), size)], 1)
            x = down(x)
        if 4 in self.map_at:
            x = torch.cat([x, fit_map(m.to(x.dtype), 4)], 1)
        text = self.project(c.flatten(1).to(x.dtype))[:, :, None, None].expand(-1, -1, 4, 4)
        return self.joint(torch.cat([x, text], 1)).flatten()


def initialised(net: nn.Module) -> nn.Module:
    net.apply(weights_init)
    return net


# ----- the builders: one per architecture ---------------------------------------------------
def define_G1(nz: int, cond_nc: int, ngf: int, image_size: int, norm: str = "batch"
              ) -> MapConditionedGenerator:
    """Stage 1 (shape): (z, d, m(S0) one-hot (N, 4, 8, 8)) -> 7-class logits (N, 7, S, S);
    m(S0) joins every level from 8x8 up."""
    return initialised(MapConditionedGenerator(nz, cond_nc, N_COARSE, N_CLASSES, ngf,
                                               image_size, map_from=8, output="logits",
                                               norm=norm))


def define_D1(cond_nc: int, ndf: int, image_size: int, norm: str = "batch"
              ) -> MapConditionedDiscriminator:
    """Stage 1's judge of (segmentation (N, 7, S, S), d, m(S0)): m(S0) joins at 8x8."""
    return initialised(MapConditionedDiscriminator(N_CLASSES, cond_nc, N_COARSE, ndf, image_size,
                                                   map_at=(8,), norm=norm))


def define_G2(nz: int, cond_nc: int, ngf: int, image_size: int, norm: str = "batch"
              ) -> MapConditionedGenerator:
    """Stage 2 (texture): (z, d, segmentation (N, 7, S, S)) -> RGB (N, 3, S, S) in [-1, 1];
    the segmentation, area-averaged, joins every level from 4x4 up."""
    return initialised(MapConditionedGenerator(nz, cond_nc, N_CLASSES, 3, ngf, image_size,
                                               map_from=4, output="tanh", norm=norm))


def define_D2(cond_nc: int, ndf: int, image_size: int, norm: str = "batch"
              ) -> MapConditionedDiscriminator:
    """Stage 2's judge of (image (N, 3, S, S), d, segmentation): the segmentation joins the
    image at the input."""
    return initialised(MapConditionedDiscriminator(3, cond_nc, N_CLASSES, ndf, image_size,
                                                   map_at=(image_size,), norm=norm))


def define_single_G(nz: int, cond_nc: int, ngf: int, image_size: int, norm: str = "batch"
                    ) -> MapConditionedGenerator:
    """The single-GAN baseline: (z, d, m(S0)) -> RGB directly."""
    return initialised(MapConditionedGenerator(nz, cond_nc, N_COARSE, 3, ngf, image_size,
                                               map_from=8, output="tanh", norm=norm))


def define_single_D(cond_nc: int, ndf: int, image_size: int, norm: str = "batch"
                    ) -> MapConditionedDiscriminator:
    """The baseline's judge of (image, d, m(S0)): m(S0) joins at 8x8."""
    return initialised(MapConditionedDiscriminator(3, cond_nc, N_COARSE, ndf, image_size,
                                                   map_at=(8,), norm=norm))


# ----- what the registry exports ------------------------------------------------------------
def hard_onehot(scores: torch.Tensor) -> torch.Tensor:
    """The argmax of (N, K, H, W) scores as a one-hot of the same shape (export-friendly)."""
    classes = torch.arange(scores.shape[1], device=scores.device).view(1, -1, 1, 1)
    return (scores.argmax(1, keepdim=True) == classes).to(scores.dtype)


class CoarseVote(nn.Module):
    """m(S0) one-hot (N, 4, 8, 8) from a 7-class one-hot (N, 7, S, S): the store's weighted
    block vote (pipelines.processing.segmentation.coarse_map) as a pooling."""

    def __init__(self):
        super().__init__()
        to_coarse = torch.zeros(N_COARSE, N_CLASSES)
        to_coarse[torch.as_tensor(TO_COARSE, dtype=torch.long), torch.arange(N_CLASSES)] = 1
        self.register_buffer("to_coarse", to_coarse, persistent=False)
        self.register_buffer("weights", torch.as_tensor(COARSE_WEIGHTS, dtype=torch.float32)
                             .view(1, -1, 1, 1), persistent=False)

    def forward(self, seg: torch.Tensor) -> torch.Tensor:
        shares = F.adaptive_avg_pool2d(
            torch.einsum("ck,nkhw->nchw", self.to_coarse.to(seg.dtype), seg), 8)
        return hard_onehot(shares * self.weights.to(seg.dtype))


def coarse_from_segmentation(seg: torch.Tensor) -> torch.Tensor:
    """CoarseVote of a batch (module doc)."""
    return CoarseVote().to(seg.device)(seg)


class TwoStageTranslator(nn.Module):
    """(a person's segmentation one-hot (N, 7, S, S), condition d + skin (N, C)) -> a new
    outfit (N, 3, S, S) in [-1, 1]: m(S0) from the segmentation, G1's map (argmax) for the
    shape, G2 for the texture; z is the prior's mean (0), so a translation is deterministic."""

    def __init__(self, netG1: MapConditionedGenerator, netG2: MapConditionedGenerator):
        super().__init__()
        self.netG1, self.netG2, self.vote = netG1, netG2, CoarseVote()

    def forward(self, seg: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        z1 = seg.new_zeros(len(seg), self.netG1.nz)
        z2 = seg.new_zeros(len(seg), self.netG2.nz)
        shape = hard_onehot(self.netG1(z1, condition, self.vote(seg)))
        return self.netG2(z2, condition, shape)


class SingleTranslator(nn.Module):
    """The baseline as a translator of the same inputs: (segmentation, condition) -> image
    through m(S0) only (the single GAN never sees the full map), z = 0."""

    def __init__(self, netG: MapConditionedGenerator):
        super().__init__()
        self.netG, self.vote = netG, CoarseVote()

    def forward(self, seg: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        z = seg.new_zeros(len(seg), self.netG.nz)
        return self.netG(z, condition, self.vote(seg))
