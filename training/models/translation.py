"""The image-to-image blocks, written like the pix2pix/CycleGAN repository's networks.py
(Isola et al., 2017; Zhu et al., 2017), plus AdaIN for MUNIT (Huang et al., 2018):

    netG = define_G(3, 3, 64, "unet", norm="batch", use_dropout=True, image_size=64)
    netG = define_G(3, 3, 64, "resnet_9blocks", norm="instance")
    netG = define_G(3, 3, 64, "resnet_6blocks", cond_nc=5)  # netG(x, labels): StarGAN-style
    netD = define_D(3 + 3, 64, "basic", image_size=64)      # PatchGAN scaled to the size

Every generator maps (N, input_nc, H, W) in [-1, 1] to (N, output_nc, H, W) in [-1, 1] (tanh).
The U-Net halves the image down to 1x1 (num_downs = log2(image_size), the repo's unet_256 at
256 px, 6 at 64 px); the ResNet generator works at any size divisible by 4. The PatchGAN has
n_layers stride-2 4x4 convolutions, then two stride-1 ones: its receptive field is 16, 34, 70,
142 px for n_layers 1, 2, 3, 4, and "basic" scales n_layers to the image size
(`patch_layers`) so each output sees the share of the image the paper's 70x70 sees at 256 px
(27%), on the same 30x30 grid of outputs: 256 px -> 3 layers (70x70), 128 -> 2 (34x34),
64 -> 1 (16x16), 32 -> 1 (16x16, half the image).

Conditional inputs (`cond_nc` > 0): the label vector (N, cond_nc) (one-hots, or a target
colour) is tiled over the image and concatenated to its channels, as StarGAN does; the
network then takes (image, labels). The ImagePool keeps a history of generated images for D
(Shrivastava et al., 2017) as a module buffer, so checkpoints save it and a resumed run
continues exactly; its draws come from the generator it is given (the loop's, checkpointed).
"""

import functools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

NORMS = ("batch", "instance", "none")
GENERATORS = ("unet", "unet_128", "unet_256", "resnet_9blocks", "resnet_6blocks")
DISCRIMINATORS = ("basic", "n_layers", "pixel")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
PADDINGS = ("reflect", "replicate", "zero")


def get_norm_layer(norm_type: str = "instance") -> Callable[[int], nn.Module]:
    """batch: BatchNorm2d (learned scale and shift, running statistics); instance:
    InstanceNorm2d without either (the repo's choice); none: identity."""
    if norm_type == "batch":
        return functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True)
    if norm_type == "instance":
        return functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
    if norm_type == "none":
        return lambda _channels: nn.Identity()
    raise ValueError(f"norm must be one of {list(NORMS)}, got {norm_type!r}")


def uses_bias(norm_layer: Callable) -> bool:
    """Convolutions keep their bias unless a batch norm's learned shift follows (instance
    norm here has none; with no norm the repo drops the bias too, this keeps it)."""
    func = norm_layer.func if isinstance(norm_layer, functools.partial) else norm_layer
    return func is not nn.BatchNorm2d


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Convolutions and linear layers N(0, gain) (or xavier / kaiming / orthogonal), biases 0;
    batch-norm scales N(1, gain), shifts 0: the repo's init_weights."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"init_type must be one of {list(INIT_TYPES)}, got {init_type!r}")

    def init_func(m: nn.Module) -> None:
        name = m.__class__.__name__
        if hasattr(m, "weight") and m.weight is not None and (
                "Conv" in name or "Linear" in name):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, init_gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=init_gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=init_gain)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif "BatchNorm2d" in name and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, init_gain)
            nn.init.zeros_(m.bias)

    return net.apply(init_func)


# ----- generators ---------------------------------------------------------------------------
class UnetSkipConnectionBlock(nn.Module):
    """One level of the U-Net: down (4x4 stride-2 conv), the submodule, up (4x4 stride-2
    transposed conv), and the skip connection |x, up(sub(down(x)))|. As in the repo, the
    down path's LeakyReLU is in place, so the skip carries LeakyReLU(x)."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False,
                 innermost: bool = False, norm_layer: Callable = nn.BatchNorm2d,
                 use_dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        use_bias = uses_bias(norm_layer)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1,
                             bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)
        if outermost:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                        padding=1)
            model = [downconv, submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1,
                                        bias=use_bias)
            model = [downrelu, downconv, uprelu, upconv, upnorm]
        else:
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2,
                                        padding=1, bias=use_bias)
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm]
            if use_dropout:
                model.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """The U-Net of pix2pix: num_downs halvings (7 for 128 px, 8 for 256 px; an image of
    2^num_downs px reaches 1x1 at the bottleneck), widths ngf, 2ngf, 4ngf, then 8ngf; dropout
    in the inner 8ngf levels when use_dropout."""

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64,
                 norm_layer: Callable = nn.BatchNorm2d, use_dropout: bool = False):
        super().__init__()
        if num_downs < 5:
            raise ValueError(f"the U-Net needs num_downs >= 5 (images of >= 32 px), got "
                             f"{num_downs}")
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=None,
                                        norm_layer=norm_layer, innermost=True)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block,
                                            norm_layer=norm_layer, use_dropout=use_dropout)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, norm_layer=norm_layer)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, norm_layer=norm_layer)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc,
                                             submodule=block, outermost=True,
                                             norm_layer=norm_layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class ResnetBlock(nn.Module):
    """x + conv-norm-ReLU-(dropout)-conv-norm (x), 3x3, with reflect/replicate/zero padding."""

    def __init__(self, dim: int, padding_type: str = "reflect",
                 norm_layer: Callable = nn.BatchNorm2d, use_dropout: bool = False,
                 use_bias: bool = False):
        super().__init__()
        self.conv_block = self.build_conv_block(dim, padding_type, norm_layer, use_dropout,
                                                use_bias)

    @staticmethod
    def build_conv_block(dim: int, padding_type: str, norm_layer: Callable, use_dropout: bool,
                         use_bias: bool) -> nn.Sequential:
        if padding_type not in PADDINGS:
            raise ValueError(f"padding_type must be one of {list(PADDINGS)}, got "
                             f"{padding_type!r}")

        def pad() -> tuple[list[nn.Module], int]:
            if padding_type == "reflect":
                return [nn.ReflectionPad2d(1)], 0
            if padding_type == "replicate":
                return [nn.ReplicationPad2d(1)], 0
            return [], 1

        layers, p = pad()
        block = [*layers, nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias),
                 norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            block.append(nn.Dropout(0.5))
        layers, p = pad()
        block += [*layers, nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias),
                  norm_layer(dim)]
        return nn.Sequential(*block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator (Johnson et al.'s transfer net): 7x7 conv, two stride-2 downs,
    n_blocks ResnetBlocks at 4ngf, two stride-2 ups, 7x7 conv, tanh."""

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64,
                 norm_layer: Callable = nn.BatchNorm2d, use_dropout: bool = False,
                 n_blocks: int = 6, padding_type: str = "reflect", input_padding: str = "reflect"):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        use_bias = uses_bias(norm_layer)
        # the 7x7 input conv pads by reflection (the repo's) or with zeros (StarGAN's, for tiled
        # labels: a constant label map stays constant under reflection, and instance norm then
        # subtracts it whole; zero padding makes it vary, so the labels reach the network)
        pad = [nn.ReflectionPad2d(3)] if input_padding == "reflect" else [nn.ZeroPad2d(3)]
        model = [*pad, nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
                 norm_layer(ngf), nn.ReLU(True)]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1,
                                bias=use_bias),
                      norm_layer(ngf * mult * 2), nn.ReLU(True)]
        mult = 2 ** n_downsampling
        for _ in range(n_blocks):
            model.append(ResnetBlock(ngf * mult, padding_type=padding_type,
                                     norm_layer=norm_layer, use_dropout=use_dropout,
                                     use_bias=use_bias))
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, kernel_size=3, stride=2,
                                         padding=1, output_padding=1, bias=use_bias),
                      norm_layer(ngf * mult // 2), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0),
                  nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def tile_labels(labels: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N, k) label vectors -> (N, k, H, W) maps of like's size and dtype."""
    n, _, h, w = like.shape
    return labels.to(like.dtype).view(n, -1, 1, 1).expand(-1, -1, h, w)


class Conditional(nn.Module):
    """A generator taking (image, labels): the label vector (N, cond_nc) tiled over the image
    and concatenated to its channels (StarGAN's target-domain input; a target colour for the
    colouriser)."""

    def __init__(self, net: nn.Module, cond_nc: int):
        super().__init__()
        self.net, self.cond_nc = net, cond_nc

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x, tile_labels(labels, x)], 1))


def unet_downs(image_size: int) -> int:
    """Halvings from image_size down to 1x1: log2 of a power of two >= 32."""
    downs = int(round(math.log2(image_size))) if image_size > 0 else 0
    if image_size < 32 or 2 ** downs != image_size:
        raise ValueError(f"the U-Net takes square images of a power of two >= 32 px, got "
                         f"{image_size}")
    return downs


def define_G(input_nc: int, output_nc: int, ngf: int, netG: str, norm: str = "batch",
             use_dropout: bool = False, init_type: str = "normal", init_gain: float = 0.02,
             image_size: int = 64, cond_nc: int = 0, padding_type: str = "reflect"
             ) -> nn.Module:
    """A generator by name, initialised: `unet` (num_downs from image_size), `unet_128`,
    `unet_256` (the repo's fixed depths), `resnet_9blocks`, `resnet_6blocks`. With cond_nc > 0
    it takes (image, labels (N, cond_nc)) and sees input_nc + cond_nc channels (a ResNet G then
    zero-pads its input conv, as StarGAN's: with reflection, instance norm erases the labels)."""
    if netG not in GENERATORS:
        raise ValueError(f"netG must be one of {list(GENERATORS)}, got {netG!r}")
    if cond_nc < 0:
        raise ValueError(f"cond_nc must be >= 0, got {cond_nc}")
    norm_layer = get_norm_layer(norm)
    in_nc = input_nc + cond_nc
    net: nn.Module
    if netG.startswith("resnet"):
        if image_size % 4:
            raise ValueError(f"the ResNet generator halves the image twice: image_size must "
                             f"be divisible by 4, got {image_size}")
        net = ResnetGenerator(in_nc, output_nc, ngf, norm_layer=norm_layer,
                              use_dropout=use_dropout, n_blocks=9 if "9" in netG else 6,
                              padding_type=padding_type,
                              input_padding="zero" if cond_nc else "reflect")
    else:
        downs = {"unet_128": 7, "unet_256": 8}.get(netG) or unet_downs(image_size)
        net = UnetGenerator(in_nc, output_nc, downs, ngf, norm_layer=norm_layer,
                            use_dropout=use_dropout)
    init_weights(net, init_type, init_gain)
    return Conditional(net, cond_nc) if cond_nc else net


# ----- discriminators -----------------------------------------------------------------------
def receptive_field(n_layers: int) -> int:
    """The PatchGAN's receptive field in pixels: 16, 34, 70, 142 for 1-4 layers."""
    r = 7  # the two stride-1 4x4 convolutions
    for _ in range(n_layers):
        r = 2 * r + 2
    return r


def patch_layers(image_size: int) -> int:
    """n_layers giving the paper's 70x70-at-256 share of the image: log2(size) - 5, >= 1."""
    return max(1, int(round(math.log2(max(image_size, 1)))) - 5)


class NLayerDiscriminator(nn.Module):
    """PatchGAN: n_layers 4x4 stride-2 convolutions (widths ndf, 2ndf, ... capped at 8ndf),
    one 4x4 stride-1 and a 4x4 stride-1 to one logit per patch."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3,
                 norm_layer: Callable = nn.BatchNorm2d):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        use_bias = uses_bias(norm_layer)
        kw, padw = 4, 1
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw),
                    nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2,
                                   padding=padw, bias=use_bias),
                         norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_mult_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1,
                               padding=padw, bias=use_bias),
                     norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True),
                     nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)
        self.receptive_field = receptive_field(n_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN (PixelGAN): a logit per pixel, colour statistics only."""

    def __init__(self, input_nc: int, ndf: int = 64, norm_layer: Callable = nn.BatchNorm2d):
        super().__init__()
        use_bias = uses_bias(norm_layer)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, bias=use_bias), norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True), nn.Conv2d(ndf * 2, 1, kernel_size=1, bias=use_bias))
        self.receptive_field = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def define_D(input_nc: int, ndf: int, netD: str = "basic", n_layers_D: int = 3,
             norm: str = "batch", init_type: str = "normal", init_gain: float = 0.02,
             image_size: int = 256) -> nn.Module:
    """A discriminator by name, initialised: `basic` (PatchGAN with n_layers scaled to
    image_size: patch_layers), `n_layers` (n_layers_D as given), `pixel` (1x1)."""
    if netD not in DISCRIMINATORS:
        raise ValueError(f"netD must be one of {list(DISCRIMINATORS)}, got {netD!r}")
    norm_layer = get_norm_layer(norm)
    net: nn.Module
    if netD == "pixel":
        net = PixelDiscriminator(input_nc, ndf, norm_layer)
    else:
        layers = patch_layers(image_size) if netD == "basic" else n_layers_D
        net = NLayerDiscriminator(input_nc, ndf, layers, norm_layer)
    return init_weights(net, init_type, init_gain)


# ----- AdaIN (MUNIT) ------------------------------------------------------------------------
class AdaIN(nn.Module):
    """Adaptive instance norm: instance-normalise x, then scale and shift each channel by
    parameters computed from a style code (MUNIT's MLP): AdaIN(x, γ, β) = γ·IN(x) + β,
    γ and β of shape (N, C)."""

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features, self.eps = num_features, eps

    def forward(self, x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        out = F.instance_norm(x, eps=self.eps)
        return out * gamma[:, :, None, None] + beta[:, :, None, None]


class AdaINResBlock(nn.Module):
    """MUNIT's decoder residual block: x + AdaIN-conv(ReLU(AdaIN-conv(x))), 3x3 reflect
    padding; `params` (N, n_params) holds γ1, β1, γ2, β2 (dim each), in that order."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.n_params = 4 * dim
        self.conv1 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3))
        self.conv2 = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3))
        self.norm1, self.norm2 = AdaIN(dim), AdaIN(dim)

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        g1, b1, g2, b2 = params.split(self.dim, 1)
        y = F.relu(self.norm1(self.conv1(x), g1, b1))
        return x + self.norm2(self.conv2(y), g2, b2)


# ----- image pool ---------------------------------------------------------------------------
class ImagePool(nn.Module):
    """A history of pool_size generated images (CycleGAN's image buffer). query(images, gen):
    while the pool fills, each image is stored and returned; then with probability 1/2 a
    stored image is returned and replaced by the new one, else the new one is returned. The
    pool lives in buffers (checkpointed with the modules); draws come from `gen`."""

    def __init__(self, pool_size: int, image_shape: tuple[int, int, int]):
        super().__init__()
        self.pool_size = pool_size
        self.register_buffer("images", torch.zeros(pool_size, *image_shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        out = []
        for image in images.detach():
            n = int(self.count)
            if n < self.pool_size:
                self.images[n] = image
                self.count += 1
                out.append(image)
            elif float(torch.rand((), generator=gen)) > 0.5:
                i = int(torch.randint(0, self.pool_size, (), generator=gen))
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out).to(images.dtype)
