"""bf16 weight gradients of small convolutions as one matrix product, on the CPU.

oneDNN's bf16 weight-gradient kernel runs small layers slowly: on pix2pix's U-Net the
transposed convolution from 2x2 to 4x4 takes 146 ms for its weight gradient, against 16 ms as
one matrix product over the unfolded output gradient (benchmarks/README.md, "The U-Net's
weight gradients as one matrix product"). The product wins on layers with at most
`MAX_POSITIONS` positions on their small side (a convolution's output, a transposed
convolution's input) and loses on larger ones, where unfolding copies k² times the input.

`use_gemm_weight_grads(net)` gives the eligible Conv2d / ConvTranspose2d of a network a
forward that takes this path while bf16 autocast is on, on the CPU, with gradients enabled and
a small enough input (a gradient penalty under bf16 included: its double backward differentiates
through the product); otherwise (fp32, a penalty in fp32, inference, export, GPUs) it is the
stock forward. Same parameters and state-dict
keys; the input gradient is still oneDNN's.
"""

import os

import torch
import torch.nn.functional as F
from torch import nn

# the largest small side that takes the product; FASHION_GAN_GEMM_POSITIONS=0 turns it off
# (benchmarks compare both in one run)
MAX_POSITIONS = int(os.environ.get("FASHION_GAN_GEMM_POSITIONS", "16"))


def weight_grad(x: torch.Tensor, grad: torch.Tensor, weight_shape: torch.Size,
                kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                transposed: bool) -> torch.Tensor:
    """Σ over images and positions of the output gradient times the input patch (im2col). A
    transposed convolution's weight gradient is a convolution's with input and output gradient
    swapped: it unfolds the output gradient and multiplies by the input."""
    if transposed:
        cols = F.unfold(grad, kernel, padding=padding, stride=stride)  # (N, C_out·k·k, L_in)
        rows = x.flatten(2)                                            # (N, C_in, L_in)
    else:
        cols = F.unfold(x, kernel, padding=padding, stride=stride)     # (N, C_in·k·k, L_out)
        rows = grad.flatten(2)                                         # (N, C_out, L_out)
    a = rows.transpose(0, 1).reshape(rows.shape[1], -1)
    b = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return (a @ b).view(weight_shape)


class _SmallConv(torch.autograd.Function):
    """conv2d / conv_transpose2d on bf16 tensors: oneDNN's forward and input gradient, the
    weight gradient as one matrix product, the bias gradient as a sum."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, transposed):
        ctx.save_for_backward(x, weight)
        ctx.conf = (stride, padding, transposed, bias is not None)
        conv = F.conv_transpose2d if transposed else F.conv2d
        return conv(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        stride, padding, transposed, has_bias = ctx.conf
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, list(stride), list(padding), [1, 1], transposed, [0, 0],
                1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            grad_w = weight_grad(x, grad, weight.shape, tuple(weight.shape[2:]), stride,
                                 padding, transposed)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None, None, None


def _small(layer: nn.Module, x: torch.Tensor, transposed: bool) -> bool:
    """Whether this call takes the matrix-product path."""
    if not (x.device.type == "cpu" and x.dim() == 4 and torch.is_grad_enabled()
            and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16):
        return False
    h, w = x.shape[2:]
    if not transposed:
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
        h, w = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    return h * w <= MAX_POSITIONS


def _apply(layer: nn.Module, x: torch.Tensor, transposed: bool) -> torch.Tensor:
    bf16 = torch.bfloat16
    bias = None if layer.bias is None else layer.bias.to(bf16)
    with torch.autocast("cpu", enabled=False):
        return _SmallConv.apply(x.to(bf16), layer.weight.to(bf16), bias, layer.stride,
                                layer.padding, transposed)


class GemmGradConv2d(nn.Conv2d):
    """nn.Conv2d whose bf16 weight gradient is one matrix product on small layers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _small(self, x, transposed=False):
            return _apply(self, x, transposed=False)
        return super().forward(x)


class GemmGradConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d whose bf16 weight gradient is one matrix product on small layers."""

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is None and _small(self, x, transposed=True):
            return _apply(self, x, transposed=True)
        return super().forward(x, output_size)


def eligible(layer: nn.Module) -> bool:
    """groups 1, dilation 1, zero padding given as numbers, no output padding."""
    return (layer.groups == 1 and layer.dilation == (1, 1) and layer.padding_mode == "zeros"
            and not isinstance(layer.padding, str)
            and not any(getattr(layer, "output_padding", (0, 0))))


def use_gemm_weight_grads(net: nn.Module) -> int:
    """Give every eligible Conv2d / ConvTranspose2d of `net` the matrix-product weight
    gradient (in place, by class: parameters and state-dict keys unchanged). Returns how many."""
    swapped = 0
    for module in net.modules():
        if type(module) is nn.Conv2d and eligible(module):
            module.__class__ = GemmGradConv2d
        elif type(module) is nn.ConvTranspose2d and eligible(module):
            module.__class__ = GemmGradConvTranspose2d
        else:
            continue
        swapped += 1
    return swapped
