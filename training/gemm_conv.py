"""bf16 convolutions of small layers as matrix products, on the CPU.

oneDNN's bf16 kernels run the small layers of these networks (a few positions, hundreds of
channels) far below the matrix-product peak. On pix2pix's U-Net the weight gradient of the
transposed convolution from 2x2 to 4x4 took 146 ms on the AVX-512 BF16 EPYC, against 16 ms as
one matrix product; on the AMX Xeon its forward and input gradient run at 70 GFLOP/s too,
where the same arithmetic as a product runs at 500-1,000 (benchmarks/README.md, "The U-Net's
weight gradients as one matrix product" and "Small convolutions as matrix products on the AMX
Xeon"). A layer's "positions" are those of its small side: a convolution's output, a
transposed convolution's input. Each part takes the product where it was measured to win:

- the weight gradient: (positions x batch) rows of patches against the output gradient;
- a convolution's forward and a transposed convolution's input gradient: patches times the
  weights (`patches`, a strided copy);
- a convolution's input gradient and a transposed convolution's forward: rows times the
  weights, added back onto the image (`fold`, one strided add per kernel offset, in fp32).

`POLICY` holds the largest positions of each kind, by CPU: with AMX all three (the products
win up to 64 positions, folds up to 16); elsewhere only the weight gradient, up to 16 (the
only part measured there). FASHION_GAN_GEMM=amx|avx512|off picks a policy by name, so one
machine can time them all.

`use_gemm_convs(net)` gives the eligible Conv2d / ConvTranspose2d of a network a forward that
takes this path while bf16 autocast is on, on the CPU, with gradients enabled and a small
enough layer (a gradient penalty under bf16 included: its double backward differentiates
through the products); otherwise (fp32, a penalty in fp32, inference, export, GPUs) it is the
stock forward. Same parameters and state-dict keys.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Policy:
    """The largest small side (positions) at which each kind of part is a matrix product."""

    weight_grad: int  # every layer's weight gradient
    patches: int      # a convolution's forward, a transposed convolution's input gradient
    fold: int         # a convolution's input gradient, a transposed convolution's forward


POLICIES = {"amx": Policy(weight_grad=64, patches=64, fold=16),
            "avx512": Policy(weight_grad=16, patches=0, fold=0),
            "off": Policy(weight_grad=0, patches=0, fold=0)}


def has_amx() -> bool:
    """Whether this CPU has AMX tiles for bf16 (Linux: /proc/cpuinfo's flags)."""
    try:
        return "amx_bf16" in Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False


def choose_policy() -> Policy:
    name = os.environ.get("FASHION_GAN_GEMM") or ("amx" if has_amx() else "avx512")
    if os.environ.get("FASHION_GAN_GEMM_POSITIONS") == "0":  # the older switch, still honoured
        name = "off"
    if name not in POLICIES:
        raise ValueError(f"FASHION_GAN_GEMM must be one of {sorted(POLICIES)}, got {name!r}")
    return POLICIES[name]


POLICY = choose_policy()


def out_size(h: int, w: int, kernel: tuple[int, int], stride: tuple[int, int],
             padding: tuple[int, int]) -> tuple[int, int]:
    """A convolution's output height and width (dilation 1)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1


def rows(t: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N·H·W, C): one row per position (free on channels_last tensors)."""
    return t.permute(0, 2, 3, 1).reshape(-1, t.shape[1])


def gather_patches(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
                   padding: tuple[int, int]) -> torch.Tensor:
    """im2col in channels-last order: (N·H_out·W_out, kh·kw·C), one row per output position.
    A strided view of the padded NHWC tensor, copied once: with F.unfold instead, the weight
    gradient of a bf16 channels_last layer took 2.5-5x as long (benchmarks/README.md, "Small
    convolutions as matrix products on the AMX Xeon")."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = x.shape
    xp = F.pad(x, (pw, pw, ph, ph)).permute(0, 2, 3, 1).contiguous()  # N, H+2p, W+2p, C
    h_out, w_out = out_size(h, w, kernel, stride, padding)
    s_n, s_h, s_w, s_c = xp.stride()
    view = xp.as_strided((n, h_out, w_out, kh, kw, c), (s_n, sh * s_h, sw * s_w, s_h, s_w, s_c))
    return view.reshape(n * h_out * w_out, kh * kw * c)


def scatter_add_patches(cols: torch.Tensor, shape: tuple[int, int, int, int],
                        kernel: tuple[int, int], stride: tuple[int, int],
                        padding: tuple[int, int]) -> torch.Tensor:
    """col2im, the adjoint of `gather_patches`: every row's kh·kw·C values added back where
    they came from, in fp32 at least (one rounding to bf16 at the end, as oneDNN's
    accumulator), as one strided add per kernel offset. Returns (N, C, H, W) in channels_last."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    n, c, h, w = shape
    h_out, w_out = out_size(h, w, kernel, stride, padding)
    cols = cols.view(n, h_out, w_out, kh, kw, c)
    # margins so that every offset's slice has h_out x w_out rows
    out = torch.zeros(n, h + 2 * ph + sh, w + 2 * pw + sw, c,
                      dtype=torch.promote_types(cols.dtype, torch.float32), device=cols.device)
    for i in range(kh):
        for j in range(kw):
            out[:, i:i + sh * h_out:sh, j:j + sw * w_out:sw] += cols[:, :, :, i, j]
    return out[:, ph:ph + h, pw:pw + w].to(cols.dtype).permute(0, 3, 1, 2)


class _Patches(torch.autograd.Function):
    """`gather_patches` whose gradient is `fold` (its adjoint), itself a Function: a gradient
    penalty's double backward then records two nodes per layer, not the strided view's and
    the slice adds' (AsStridedBackward over the whole padded tensor, one CopySlices per kernel
    offset), which took a sixth of WGAN-GP's 64 px step."""

    @staticmethod
    def forward(ctx, x, kernel, stride, padding):
        ctx.conf = (tuple(x.shape), kernel, stride, padding)
        return gather_patches(x, kernel, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        shape, kernel, stride, padding = ctx.conf
        return _Fold.apply(grad, shape, kernel, stride, padding), None, None, None


class _Fold(torch.autograd.Function):
    """`scatter_add_patches` whose gradient is `patches` (its adjoint)."""

    @staticmethod
    def forward(ctx, cols, shape, kernel, stride, padding):
        ctx.conf = (kernel, stride, padding)
        return scatter_add_patches(cols, shape, kernel, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        kernel, stride, padding = ctx.conf
        return _Patches.apply(grad, kernel, stride, padding), None, None, None, None


def patches(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int],
            padding: tuple[int, int]) -> torch.Tensor:
    """im2col (`gather_patches`), differentiable through `fold`."""
    return _Patches.apply(x, tuple(kernel), tuple(stride), tuple(padding))


def fold(cols: torch.Tensor, shape: tuple[int, int, int, int], kernel: tuple[int, int],
         stride: tuple[int, int], padding: tuple[int, int]) -> torch.Tensor:
    """col2im (`scatter_add_patches`), differentiable through `patches`."""
    return _Fold.apply(cols, tuple(shape), tuple(kernel), tuple(stride), tuple(padding))


def weight_matrix(weight: torch.Tensor) -> torch.Tensor:
    """(A, B, kh, kw) → (A, kh·kw·B), the order of `patches`' columns: a convolution's
    (C_out, C_in·k²), a transposed convolution's (C_in, C_out·k²)."""
    return weight.permute(0, 2, 3, 1).reshape(weight.shape[0], -1)


def forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
            stride: tuple[int, int], padding: tuple[int, int], transposed: bool,
            cols: torch.Tensor | None = None) -> torch.Tensor:
    """conv2d / conv_transpose2d (groups 1, no dilation or output padding) as one matrix
    product: a convolution's patches (`cols`, when already made) times the weights; a
    transposed convolution's input times the weights, folded onto the output."""
    kernel = (kh, kw) = tuple(weight.shape[2:])
    (sh, sw), (ph, pw) = stride, padding
    n, _, h, w = x.shape
    wm = weight_matrix(weight)
    if transposed:
        shape = (n, weight.shape[1], (h - 1) * sh - 2 * ph + kh, (w - 1) * sw - 2 * pw + kw)
        y = fold(rows(x) @ wm, shape, kernel, stride, padding)
    else:
        h_out, w_out = out_size(h, w, kernel, stride, padding)
        if cols is None:
            cols = patches(x, kernel, stride, padding)
        y = (cols @ wm.t()).view(n, h_out, w_out, -1)
        y = y.permute(0, 3, 1, 2)
    return y if bias is None else y + bias.view(1, -1, 1, 1)


def input_grad(grad: torch.Tensor, x_shape: torch.Size, weight: torch.Tensor,
               stride: tuple[int, int], padding: tuple[int, int], transposed: bool,
               cols: torch.Tensor | None = None) -> torch.Tensor:
    """The input gradient of `forward`, as one matrix product: a convolution's output gradient
    times the weights, folded onto the input; a transposed convolution's output gradient's
    patches (`cols`, when already made) times the weights."""
    kernel = tuple(weight.shape[2:])
    wm = weight_matrix(weight)
    if transposed:
        n, c, h, w = x_shape
        if cols is None:
            cols = patches(grad, kernel, stride, padding)
        by_position = cols @ wm.t()  # (N·H·W, C_in)
        return by_position.view(n, h, w, c).permute(0, 3, 1, 2)
    return fold(rows(grad) @ wm, tuple(x_shape), kernel, stride, padding)


def weight_grad(x: torch.Tensor, grad: torch.Tensor, weight_shape: torch.Size,
                stride: tuple[int, int], padding: tuple[int, int], transposed: bool,
                cols: torch.Tensor | None = None) -> torch.Tensor:
    """Σ over images and positions of the output gradient times the input patch (im2col). A
    transposed convolution's weight gradient is a convolution's with input and output gradient
    swapped: it unfolds the output gradient and multiplies by the input. `cols`: those
    patches, when already made."""
    a, b, *kernel = weight_shape
    if transposed:  # weight (C_in, C_out, kh, kw); positions: the input's
        if cols is None:
            cols = patches(grad, kernel, stride, padding)  # (N·L_in, kh·kw·C_out)
        by_position = rows(x)                              # (N·L_in, C_in)
    else:  # weight (C_out, C_in, kh, kw); positions: the output's
        if cols is None:
            cols = patches(x, kernel, stride, padding)     # (N·L_out, kh·kw·C_in)
        by_position = rows(grad)                           # (N·L_out, C_out)
    return (by_position.t() @ cols).view(a, *kernel, b).permute(0, 3, 1, 2)


class _SmallConv(torch.autograd.Function):
    """conv2d / conv_transpose2d on bf16 tensors, each part (forward, input gradient, weight
    gradient) a matrix product or oneDNN's as `parts` says. Where two parts multiply the same
    patches, they are made once: a convolution's forward keeps those of its input for the
    weight gradient, a transposed convolution's backward shares those of the output gradient
    between its two parts (each was made twice: 15% of BEGAN's 64 px step)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, transposed, parts):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, transposed, bias is not None, parts)
        ctx.cols = None
        if parts.forward:  # a custom Function's output must not be a view (in-place ReLU)
            if not transposed and parts.weight_grad and ctx.needs_input_grad[1]:
                # kept only for a weight that will get a gradient (not a frozen D's)
                ctx.cols = patches(x, tuple(weight.shape[2:]), stride, padding)
            y = forward(x, weight, bias, stride, padding, transposed, ctx.cols)
            return y.clone(memory_format=torch.channels_last) if y._is_view() else y
        conv = F.conv_transpose2d if transposed else F.conv2d
        return conv(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, transposed, has_bias, parts = ctx.conf
        # the forward's patches carry no graph: a double backward (a gradient penalty's,
        # grad mode on here) makes them again from x
        cols = None if torch.is_grad_enabled() else ctx.cols
        ctx.cols = None
        if (transposed and parts.input_grad and parts.weight_grad
                and ctx.needs_input_grad[0] and ctx.needs_input_grad[1]):
            cols = patches(grad, tuple(weight.shape[2:]), stride, padding)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (input_grad(grad, x.shape, weight, stride, padding, transposed, cols)
                      if parts.input_grad else torch.ops.aten.convolution_backward(
                          grad, x, weight, None, list(stride), list(padding), [1, 1],
                          transposed, [0, 0], 1, [True, False, False])[0])
        if ctx.needs_input_grad[1]:
            grad_w = (weight_grad(x, grad, weight.shape, stride, padding, transposed, cols)
                      if parts.weight_grad else torch.ops.aten.convolution_backward(
                          grad, x, weight, None, list(stride), list(padding), [1, 1],
                          transposed, [0, 0], 1, [False, True, False])[1])
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None, None


@dataclass(frozen=True)
class Parts:
    """Which parts of one call are matrix products."""

    forward: bool
    input_grad: bool
    weight_grad: bool


def parts_for(layer: nn.Module, x: torch.Tensor, transposed: bool,
              policy: Policy | None = None) -> Parts | None:
    """The parts of this call that take the product under `policy` (the CPU's by default);
    None where none does or the call is not a bf16 autocast training call on the CPU."""
    if not (x.device.type == "cpu" and x.dim() == 4 and torch.is_grad_enabled()
            and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16):
        return None
    policy = policy or POLICY
    h, w = x.shape[2:]
    if not transposed:
        h, w = out_size(h, w, layer.kernel_size, layer.stride, layer.padding)
    n = h * w
    patched, folded = n <= policy.patches, n <= policy.fold
    parts = Parts(forward=folded if transposed else patched,
                  input_grad=patched if transposed else folded,
                  weight_grad=n <= policy.weight_grad)
    return parts if (parts.forward or parts.input_grad or parts.weight_grad) else None


def _apply(layer: nn.Module, x: torch.Tensor, transposed: bool, parts: Parts) -> torch.Tensor:
    bf16 = torch.bfloat16
    bias = None if layer.bias is None else layer.bias.to(bf16)
    with torch.autocast("cpu", enabled=False):
        return _SmallConv.apply(x.to(bf16), layer.weight.to(bf16), bias, layer.stride,
                                layer.padding, transposed, parts)


class GemmConv2d(nn.Conv2d):
    """nn.Conv2d whose small bf16 training calls are matrix products."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = parts_for(self, x, transposed=False)
        if parts is not None:
            return _apply(self, x, False, parts)
        return super().forward(x)


class GemmConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d whose small bf16 training calls are matrix products."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        parts = None if output_size is not None else parts_for(self, x, transposed=True)
        if parts is not None:
            return _apply(self, x, True, parts)
        return super().forward(x, output_size)


def eligible(layer: nn.Module) -> bool:
    """groups 1, dilation 1, zero padding given as numbers, no output padding."""
    return (layer.groups == 1 and layer.dilation == (1, 1) and layer.padding_mode == "zeros"
            and not isinstance(layer.padding, str)
            and not any(getattr(layer, "output_padding", (0, 0))))


def use_gemm_convs(net: nn.Module) -> int:
    """Give every eligible Conv2d / ConvTranspose2d of `net` the matrix-product path (in
    place, by class: parameters and state-dict keys unchanged). Returns how many."""
    swapped = 0
    for module in net.modules():
        if type(module) is nn.Conv2d and eligible(module):
            module.__class__ = GemmConv2d
        elif type(module) is nn.ConvTranspose2d and eligible(module):
            module.__class__ = GemmConvTranspose2d
        else:
            continue
        swapped += 1
    return swapped
