"""Layer by layer: where bf16 gains over fp32 in a network's convolutions, and where it does not.

    python benchmarks/conv_layers.py [--net unet|resnet|patchgan|dcgan-g|dcgan-d] [--batch 64]
        [--width 64] [--repeats 5]

Every Conv2d / ConvTranspose2d of the network (built by the project's own builders, 64 px) is
run alone on a random input of the shape it sees in the network: forward, and forward +
backward split into the input gradient and the weight gradient, in fp32 (contiguous, as a plain
loop runs) and in bf16 autocast + channels_last (as the frame runs where bf16 is native). The
table gives each layer's GFLOP (forward) and GFLOP/s, so a layer far below the others shows
which kernel to look at (ONEDNN_VERBOSE=1 names the one oneDNN picked). The fp32 and bf16
matrix-product peaks are measured in the same run. The last two columns time the three bf16
parts again, oneDNN's (from the bf16 column) against each as matrix products over patches
(im2col) and folds (col2im) (training/gemm_conv.py, which the frame uses on small layers),
checked against autograd's bf16 results: where a product is faster, oneDNN's kernel for the
shape is the one to work around. The last line sums the layers with each part the faster way.
"""

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.classic_speed import (  # noqa: E402
    FlopCount,
    machine,
    machine_line,
    matmul_peaks,
)
from training import gemm_conv  # noqa: E402

NETS = ("unet", "resnet", "patchgan", "dcgan-g", "dcgan-d")


def build(net: str, width: int) -> tuple[nn.Module, tuple[int, ...]]:
    """The network and the shape of its input (without the batch)."""
    from training.models import dcgan, translation

    if net == "unet":
        return translation.define_G(3, 3, width, "unet", "batch", True, image_size=64), (3, 64, 64)
    if net == "resnet":
        return translation.define_G(3, 3, width, "resnet_9blocks", "instance"), (3, 64, 64)
    if net == "patchgan":
        return translation.define_D(6, width, "basic", 3, "batch", image_size=64), (6, 64, 64)
    if net == "dcgan-g":
        return dcgan.define_G(100, width, 3), (100, 1, 1)
    if net == "dcgan-d":
        return dcgan.define_D(3, width), (3, 64, 64)
    raise ValueError(f"net must be one of {list(NETS)}, got {net!r}")


def conv_inputs(net: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Size]]:
    """Every convolution of `net` with the input shape it sees on x."""
    seen: list[tuple[nn.Module, torch.Size]] = []
    hooks = [m.register_forward_hook(lambda m, i, o: seen.append((m, i[0].shape)))
             for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return seen


def forward_gflop(layer: nn.Module, shape: torch.Size) -> float:
    """GFLOP of the layer's forward pass, by torch.utils.flop_counter's formulas (the
    backward's input and weight gradients cost the same each)."""
    with torch.no_grad(), FlopCount() as counter:
        layer(torch.zeros(shape))
    return counter.total / 1e9


def timed(fn: Callable[[], None], repeats: int) -> float:
    """Seconds of one call, the best of `repeats` after one untimed call."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(layer: nn.Module, shape: torch.Size, bf16: bool, repeats: int) -> dict[str, float]:
    """Seconds of the forward, the input gradient and the weight gradient of a copy of
    `layer`, in the memory format of the arithmetic timed."""
    conv = copy.deepcopy(layer)
    x = torch.randn(shape)
    if bf16:
        conv = conv.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)

    def forward() -> torch.Tensor:
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            return conv(x)

    grad = torch.ones_like(forward())

    def backward_to(inputs: list[torch.Tensor]) -> Callable[[], None]:
        return lambda: torch.autograd.backward(forward(), grad, inputs=inputs)

    with torch.no_grad():
        fwd = timed(forward, repeats)
    both_input = timed(backward_to([x]), repeats)
    both_weight = timed(backward_to([conv.weight]), repeats)
    return {"forward": fwd, "input_grad": max(both_input - fwd, 1e-9),
            "weight_grad": max(both_weight - fwd, 1e-9)}


def measure_gemm(layer: nn.Module, shape: torch.Size, repeats: int) -> dict[str, tuple]:
    """(seconds, relative error against autograd's bf16 result) of the forward, the input
    gradient and the weight gradient as matrix products (training/gemm_conv.py), on the
    channels_last bf16 input and output gradient the frame's autocast step hands them."""
    conv = copy.deepcopy(layer).to(memory_format=torch.channels_last)
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    with torch.autocast("cpu", torch.bfloat16):
        out = conv(x)
    grad = torch.randn_like(out).contiguous(memory_format=torch.channels_last)
    expected = dict(zip(("input_grad", "weight_grad"),
                        torch.autograd.grad(out, (x, conv.weight), grad), strict=True))
    expected["forward"] = out
    bf16 = torch.bfloat16
    xb, gb, wb = x.detach().to(bf16), grad.to(bf16), conv.weight.detach().to(bf16)
    bias = None if conv.bias is None else conv.bias.detach().to(bf16)
    st, pad = conv.stride, conv.padding
    transposed = isinstance(conv, nn.ConvTranspose2d)
    parts = {"forward": lambda: gemm_conv.forward(xb, wb, bias, st, pad, transposed),
             "input_grad": lambda: gemm_conv.input_grad(gb, xb.shape, wb, st, pad, transposed),
             "weight_grad": lambda: gemm_conv.weight_grad(xb, gb, wb.shape, st, pad,
                                                          transposed)}
    result = {}
    with torch.no_grad():
        for name, fn in parts.items():
            got, want = fn().float(), expected[name].float()
            error = float((got - want).abs().max() / want.abs().max())
            result[name] = (timed(fn, repeats), error)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--net", choices=NETS, default="unet")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--width", type=int, default=64, help="ngf or ndf")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    net, shape = build(args.net, args.width)
    layers = conv_inputs(net, torch.randn(args.batch, *shape))
    print(machine_line(machine(torch.device("cpu")), matmul_peaks(torch.device("cpu"))))
    print(f"{args.net}, batch {args.batch}, width {args.width}; GFLOP/s of the forward pass, "
          "the input gradient and the weight gradient; ms of all three\n")
    print("| layer | input | out ch | GFLOP | fp32 fwd / in-grad / w-grad GFLOP/s | fp32 ms "
          "| bf16 fwd / in-grad / w-grad GFLOP/s | bf16 ms | fp32 ms / bf16 ms "
          "| bf16 fwd / in-grad / w-grad ms: oneDNN | as matrix products (max rel. error) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    totals = {False: 0.0, True: 0.0}
    best_of_both = 0.0  # bf16 ms with each part taken the faster way
    for layer, in_shape in layers:
        gflop = forward_gflop(layer, in_shape)
        cells = []
        ms = {}
        for bf16 in (False, True):
            t = measure(layer, in_shape, bf16, args.repeats)
            cells.append(" / ".join(f"{gflop / s:.0f}" for s in t.values()))
            ms[bf16] = 1000 * sum(t.values())
            totals[bf16] += ms[bf16]
        onednn = " / ".join(f"{1000 * v:.1f}" for v in t.values())
        gemm = "–"
        best_of_both += ms[True]
        if gemm_conv.eligible(layer):
            parts = measure_gemm(layer, in_shape, args.repeats)
            gemm = (" / ".join(f"{1000 * s:.1f}" for s, _ in parts.values())
                    + f" ({max(e for _, e in parts.values()):.0e})")
            best_of_both -= sum(max(t[name] - s, 0.0) for name, (s, _) in parts.items()) * 1000
        kind = "ConvT" if isinstance(layer, nn.ConvTranspose2d) else "Conv"
        print(f"| {kind} {layer.kernel_size[0]}x{layer.kernel_size[1]}/{layer.stride[0]} | "
              f"{'x'.join(map(str, in_shape[1:]))} | {layer.out_channels} | {gflop:.2f} | "
              f"{cells[0]} | {ms[False]:.1f} | {cells[1]} | {ms[True]:.1f} | "
              f"{ms[False] / ms[True]:.2f}x | {onednn} | {gemm} |", flush=True)
    print(f"\nall layers: fp32 {totals[False]:.0f} ms, bf16 {totals[True]:.0f} ms, "
          f"{totals[False] / totals[True]:.2f}x; bf16 with each part the faster way "
          f"{best_of_both:.0f} ms, {totals[False] / best_of_both:.2f}x")


if __name__ == "__main__":
    main()
