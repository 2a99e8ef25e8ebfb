"""The two backbones of the classic GAN collection (GAN, CGAN, infoGAN, ACGAN, EBGAN, BEGAN,
WGAN, WGAN-GP, DRAGAN, LSGAN), one builder per network, options explicit:

    netG = define_G("infogan", nz=62, image_size=32, channels=1, ngf=64)
    netD = define_D("infogan", image_size=32, channels=1, ndf=64, norm="layer")
    netD = define_D("dcgan", 64, 3, 64, cond_channels=10)          # CGAN: label maps
    netD = define_D("dcgan", 64, 3, 64, aux_outputs=10)            # ACGAN: class logits
    netD = define_D("infogan", 32, 1, 64, q_outputs=10 + 2)        # infoGAN: Q head
    netD = define_autoencoder_D("infogan", 32, 1, 64, code=32)     # EBGAN, BEGAN

- `infogan`: the fully-connected + two (transposed) convolution nets of the infoGAN paper that
  the "pytorch-generative-model-collections" repository uses for every family, at 28 or 32 px.
  Widths scale with ngf/ndf: G is FC(in → 16·ngf) BN ReLU, FC(→ 2·ngf·(s/4)²) BN ReLU,
  ConvT(2·ngf → ngf) BN ReLU, ConvT(ngf → C) Tanh; D is Conv(C → ndf) LReLU, Conv(→ 2·ndf)
  BN LReLU, FC(→ 16·ndf) BN LReLU, FC(→ outputs). ngf = ndf = 64 (the `full` profile) is the
  collection's 1024/128/64 exactly; the demo profile's 32 halves every width.
- `dcgan`: the DCGAN nets at 64 px (training/models/dcgan.py: its generator and its
  discriminator trunk), the head a linear map of the 4x4 trunk (the DCGAN 4x4 convolution).

Discriminators return logits (N, outputs); `features(x, cond)` is the penultimate layer, and
`heads(x, cond)` gives (logits, aux logits or None, Q outputs or None) from one pass, so ACGAN
and infoGAN put their heads on the shared features. `norm` is the discriminator's
normalisation: batch (the papers'), layer (WGAN-GP, DRAGAN: a gradient penalty is per sample,
batch norm couples the samples) or none. Weights are N(0, 0.02), biases 0, batch-norm scales
N(1, 0.02), as the collection and DCGAN.
"""

import torch
from torch import nn

from training.models.dcgan import define_G as define_dcgan_G
from training.models.dcgan import downsampling_trunk

SUPPORTED_SIZES: dict[str, tuple[int, ...]] = {"infogan": (28, 32), "dcgan": (64,)}
BACKBONES = tuple(SUPPORTED_SIZES)
NORMS = ("batch", "layer", "none")


def check_backbone(backbone: str, image_size: int | None = None) -> None:
    """One-line ValueError for an unknown backbone or an image size it cannot make."""
    if backbone not in SUPPORTED_SIZES:
        raise ValueError(f"backbone must be one of {list(BACKBONES)}, got {backbone!r}")
    sizes = SUPPORTED_SIZES[backbone]
    if image_size is not None and image_size not in sizes:
        raise ValueError(f"the {backbone} backbone makes {' or '.join(map(str, sizes))} px "
                         f"images, not {image_size} px")


def init_weights(m: nn.Module) -> None:
    """N(0, 0.02) weights and zero biases for (transposed) convolutions and linear layers,
    N(1, 0.02) batch-norm scales."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def norm_2d(norm: str, channels: int) -> nn.Module:
    """Batch norm, layer norm over (C, H, W) (GroupNorm with one group), or nothing."""
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    return {"batch": lambda: nn.BatchNorm2d(channels),
            "layer": lambda: nn.GroupNorm(1, channels),
            "none": nn.Identity}[norm]()


def norm_1d(norm: str, features: int) -> nn.Module:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {list(NORMS)}, got {norm!r}")
    return {"batch": lambda: nn.BatchNorm1d(features),
            "layer": lambda: nn.LayerNorm(features),
            "none": nn.Identity}[norm]()


class InfoGANGenerator(nn.Module):
    """(N, nz_in, 1, 1) -> (N, channels, s, s) in [-1, 1]; s = 28 or 32."""

    def __init__(self, nz_in: int, image_size: int, channels: int, ngf: int = 64):
        super().__init__()
        self.nz, self.base = nz_in, image_size // 4
        self.width = 2 * ngf
        self.fc = nn.Sequential(
            nn.Linear(nz_in, 16 * ngf),
            nn.BatchNorm1d(16 * ngf),
            nn.ReLU(True),
            nn.Linear(16 * ngf, self.width * self.base ** 2),
            nn.BatchNorm1d(self.width * self.base ** 2),
            nn.ReLU(True),
        )
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(self.width, ngf, 4, 2, 1),  # s/2
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, channels, 4, 2, 1),  # s
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.fc(z.flatten(1)).view(-1, self.width, self.base, self.base)
        return self.deconv(h)


def define_G(backbone: str, nz: int, image_size: int, channels: int, ngf: int,
             cond_dim: int = 0) -> nn.Module:
    """The generator: input (N, nz + cond_dim, 1, 1) (z, then e.g. CGAN's one-hots), output
    (N, channels, image_size, image_size) in [-1, 1]."""
    check_backbone(backbone, image_size)
    if backbone == "dcgan":
        return define_dcgan_G(nz + cond_dim, ngf, channels)
    net = InfoGANGenerator(nz + cond_dim, image_size, channels, ngf)
    net.apply(init_weights)
    return net


def infogan_trunk(nc: int, image_size: int, ndf: int, norm: str) -> tuple[nn.Sequential, int]:
    """(64)4c2s-(128)4c2s_BL-FC1024_BL at ndf = 64: image -> (N, 16·ndf) features."""
    base = image_size // 4
    bias = norm != "batch"  # a batch norm's shift makes a bias redundant
    trunk = nn.Sequential(
        nn.Conv2d(nc, ndf, 4, 2, 1),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Conv2d(ndf, 2 * ndf, 4, 2, 1, bias=bias),
        norm_2d(norm, 2 * ndf),
        nn.LeakyReLU(0.2, inplace=True),
        nn.Flatten(),
        nn.Linear(2 * ndf * base ** 2, 16 * ndf, bias=bias),
        norm_1d(norm, 16 * ndf),
        nn.LeakyReLU(0.2, inplace=True),
    )
    return trunk, 16 * ndf


def dcgan_trunk(nc: int, ndf: int, norm: str) -> tuple[nn.Sequential, int]:
    """training/models/dcgan.py's 64 -> 4x4 trunk, its batch norms swapped for `norm`
    (with biases where there is no batch norm), flattened: image -> (N, 16·8·ndf)."""
    layers = []
    for m in downsampling_trunk(nc, ndf):
        if isinstance(m, nn.Conv2d) and norm != "batch":
            m = nn.Conv2d(m.in_channels, m.out_channels, 4, 2, 1)
        elif isinstance(m, nn.BatchNorm2d):
            m = norm_2d(norm, m.num_features)
        layers.append(m)
    return nn.Sequential(*layers, nn.Flatten()), ndf * 8 * 4 * 4


class Discriminator(nn.Module):
    """image (N, C, s, s) [+ condition (N, cond_channels) one-hots or label maps] ->
    logits (N, outputs); optional aux (ACGAN) and Q (infoGAN) heads on the same features."""

    def __init__(self, trunk: nn.Module, feature_dim: int, outputs: int = 1,
                 cond_channels: int = 0, aux_outputs: int = 0, q_outputs: int = 0):
        super().__init__()
        self.cond_channels, self.feature_dim = cond_channels, feature_dim
        self.trunk = trunk
        self.head = nn.Linear(feature_dim, outputs)
        self.aux = nn.Linear(feature_dim, aux_outputs) if aux_outputs else None
        self.q = nn.Linear(feature_dim, q_outputs) if q_outputs else None

    def inputs(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """The image with the condition's maps concatenated as channels (CGAN)."""
        if not self.cond_channels:
            return x
        if cond is None or cond.shape[1] != self.cond_channels:
            raise ValueError(f"this discriminator takes a condition of {self.cond_channels} "
                             f"channels, got {None if cond is None else tuple(cond.shape)}")
        if cond.dim() == 2:
            cond = cond[:, :, None, None].expand(-1, -1, *x.shape[-2:])
        return torch.cat([x, cond.to(x.dtype)], 1)

    def features(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        """The penultimate layer, (N, feature_dim)."""
        return self.trunk(self.inputs(x, cond))

    def heads(self, x: torch.Tensor, cond: torch.Tensor | None = None
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(logits (N, outputs), aux logits (N, aux_outputs) or None, Q (N, q_outputs) or
        None) from one pass through the trunk."""
        h = self.features(x, cond)
        return (self.head(h), self.aux(h) if self.aux is not None else None,
                self.q(h) if self.q is not None else None)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, cond))


def define_D(backbone: str, image_size: int, channels: int, ndf: int, outputs: int = 1,
             cond_channels: int = 0, norm: str = "batch", aux_outputs: int = 0,
             q_outputs: int = 0) -> Discriminator:
    """The discriminator (critic): logits (N, outputs); `features`, `heads` as above."""
    check_backbone(backbone, image_size)
    nc = channels + cond_channels
    trunk, dim = (dcgan_trunk(nc, ndf, norm) if backbone == "dcgan"
                  else infogan_trunk(nc, image_size, ndf, norm))
    net = Discriminator(trunk, dim, outputs, cond_channels, aux_outputs, q_outputs)
    net.apply(init_weights)
    return net


class AutoencoderD(nn.Module):
    """EBGAN's and BEGAN's discriminator: image -> code (N, code) -> reconstruction (N, C, s,
    s), unbounded (the energy is the reconstruction error)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, code: int):
        super().__init__()
        self.code = code
        self.encoder, self.decoder = encoder, decoder

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, code: torch.Tensor) -> torch.Tensor:
        return self.decoder(code)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x))


def define_autoencoder_D(backbone: str, image_size: int, channels: int, ndf: int,
                         code: int = 32, norm: str = "batch") -> AutoencoderD:
    """infogan: the collection's EBGAN/BEGAN net, Conv(C → ndf, 4, 2, 1) ReLU, FC(→ code) BN
    ReLU, FC(→ ndf·(s/2)²) BN ReLU, ConvT(ndf → C, 4, 2, 1) (code 32 as there); dcgan: the
    DCGAN trunk to a code, and DCGAN's generator layers (ndf wide) back to 64 px."""
    check_backbone(backbone, image_size)
    if backbone == "infogan":
        half = image_size // 2
        encoder = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, 2, 1),
            nn.ReLU(True),
            nn.Flatten(),
            nn.Linear(ndf * half ** 2, code),
            norm_1d(norm, code),
            nn.ReLU(True),
        )
        decoder = nn.Sequential(
            nn.Linear(code, ndf * half ** 2),
            norm_1d(norm, ndf * half ** 2),
            nn.ReLU(True),
            nn.Unflatten(1, (ndf, half, half)),
            nn.ConvTranspose2d(ndf, channels, 4, 2, 1),
        )
    else:
        trunk, dim = dcgan_trunk(channels, ndf, norm)
        encoder = nn.Sequential(*trunk, nn.Linear(dim, code))
        layers: list[nn.Module] = [nn.Unflatten(1, (code, 1, 1))]
        width, out = code, ndf * 8
        for stride, pad in ((1, 0), (2, 1), (2, 1), (2, 1)):  # 4, 8, 16, 32
            layers += [nn.ConvTranspose2d(width, out, 4, stride, pad), norm_2d(norm, out),
                       nn.ReLU(True)]
            width, out = out, out // 2
        layers.append(nn.ConvTranspose2d(width, channels, 4, 2, 1))  # 64
        decoder = nn.Sequential(*layers)
    net = AutoencoderD(encoder, decoder, code)
    net.apply(init_weights)
    return net
