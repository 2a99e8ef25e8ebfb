"""DCGAN training speed: this project's in-memory loop against the official example's loop.

    python benchmarks/dcgan_speed.py [--steps 20] [--warmup 3]

Same model (DCGAN 64x64, ngf = ndf = 64), same batch (64), baseline variant, run side by side
in one process on this machine:
- reference: written the way the official PyTorch DCGAN example is, reading the catalogue's
  256x256 JPEG packshots through torchvision ImageFolder (Resize 64, CenterCrop, ToTensor,
  Normalize) and a DataLoader with 2 workers, fp32;
- ours, fp32: training.loop.train("dcgan", ...) on datasets/packshots.h5 held in memory;
- ours, fp32 + channels_last;
- ours, bf16 autocast + channels_last (the default).
Needs the demo's catalogue and packshots.h5 (make run; --data and --images name others). On
a CUDA machine everything runs on the GPU. Model FLOPs utilisation: the FLOPs of one training
step are counted with torch.utils.flop_counter (about 2.5 GFLOP per image at these widths) and
divided by the peak measured here with a large matrix product in the same arithmetic (fp32 or
bf16).
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.datasets as dset
import torchvision.transforms as transforms

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.machine import cpu_bf16_mode  # noqa: E402
from training.families.dcgan import DCGANConfig  # noqa: E402
from training.loop import train  # noqa: E402
from training.models.dcgan import define_D, define_G  # noqa: E402
from training.runtime import bf16_choice  # noqa: E402

STORE = Path(__file__).resolve().parent.parent / "assets_store"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measured_peak_gflops(device: torch.device, dtype: torch.dtype) -> float:
    """The best of a few large matrix products: what this device does at most, here."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(8):
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def step_gflop_per_image(batch: int = 64) -> float:
    """FLOPs of one baseline training step (D on real and fake, G through D), per image."""
    from torch.utils.flop_counter import FlopCounterMode

    netG, netD = define_G(100, 64), define_D(3, 64)
    real, noise = torch.randn(batch, 3, 64, 64), torch.randn(batch, 100, 1, 1)
    with FlopCounterMode(display=False) as counter:
        fake = netG(noise)
        out_real, out_fake = netD(real), netD(fake.detach())
        errD = (F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
                + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))
        errD.backward()
        out = netD(fake)
        F.binary_cross_entropy_with_logits(out, torch.ones_like(out)).backward()
    return counter.get_total_flops() / batch / 1e9


def reference_loop(root: Path, steps: int, warmup: int, batch: int = 64,
                   device: torch.device = torch.device("cpu"), persistent: bool = False) -> float:
    """images/s of the official example's loop (ImageFolder + DataLoader(2 workers), fp32).

    The example starts its loader workers afresh every epoch; on the demo's 198 packshots an
    epoch is three batches, so `persistent` keeps them alive to show the loop without that cost.
    """
    dataset = dset.ImageFolder(root=str(root), transform=transforms.Compose([
        transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True,
                                         num_workers=2, drop_last=True,
                                         persistent_workers=persistent)
    netG, netD = define_G(100, 64).to(device), define_D(3, 64).to(device)
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    done, t0 = 0, None
    while done < steps + warmup:
        for real, _ in loader:
            if done == warmup:
                synchronize(device)
                t0 = time.perf_counter()
            real = real.to(device)
            netD.zero_grad()
            noise = torch.randn(batch, 100, 1, 1, device=device)
            fake = netG(noise)
            out_real, out_fake = netD(real), netD(fake.detach())
            errD = (F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
                    + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))
            errD.backward()
            optD.step()
            netG.zero_grad()
            out = netD(fake)
            errG = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            errG.backward()
            optG.step()
            done += 1
            if done == steps + warmup:
                break
    synchronize(device)
    return steps * batch / (time.perf_counter() - t0)


def ours(data: Path, steps: int, warmup: int, bf16: bool, channels_last: bool,
         cpu_bf16: str = "on") -> float:
    """images/s of the frame's dcgan, timed after `warmup` steps (a first run to that
    checkpoint; the resumed run's summary counts only the steps it ran). cpu_bf16 "on": bf16
    wherever it is native, faster than fp32 here or not; "auto": the frame's default."""
    with tempfile.TemporaryDirectory() as tmp, cpu_bf16_mode(cpu_bf16):
        common = dict(variant="baseline", batch_size=64, ngf=64, ndf=64, bf16=bf16,
                      channels_last=channels_last, log_every=10_000, sample_every=10_000)
        train("dcgan", DCGANConfig(steps=warmup, checkpoint_every=warmup, **common), data, tmp)
        summary = train("dcgan", DCGANConfig(steps=warmup + steps, checkpoint_every=10_000,
                                             **common), data, tmp)
        return summary["images_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--data", type=Path, default=STORE / "datasets" / "packshots.h5",
                    help="the HDF5 store the in-memory loops read")
    ap.add_argument("--images", type=Path, default=STORE / "catalogue" / "images",
                    help="the ImageFolder (one subfolder per class) the reference reads")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    folder = args.images
    rows = [("reference, as the example (ImageFolder JPEG + DataLoader 2 workers, fp32)", False,
             reference_loop(folder, args.steps, args.warmup, device=device)),
            ("reference with persistent loader workers", False,
             reference_loop(folder, args.steps, args.warmup, device=device, persistent=True))]
    data = args.data
    for name, bf16, cl in (("ours, in memory, fp32", False, False),
                           ("ours, in memory, fp32 + channels_last", False, True),
                           ("ours, in memory, bf16 autocast + channels_last", True, True)):
        rows.append((name, bf16, ours(data, args.steps, args.warmup, bf16, cl)))
    gflop = step_gflop_per_image()
    peak = {False: measured_peak_gflops(device, torch.float32),
            True: measured_peak_gflops(device, torch.bfloat16)}
    where = (torch.cuda.get_device_name() if device.type == "cuda"
             else f"CPU, {torch.get_num_threads()} threads")
    print(f"torch {torch.__version__} on {where}; batch 64, ngf = ndf = 64, {args.steps} "
          f"timed steps after {args.warmup}; {gflop:.2f} GFLOP per image per step (counted); "
          f"measured peak {peak[False]:.0f} GFLOP/s fp32, {peak[True]:.0f} GFLOP/s bf16; the "
          f"frame's default here: {bf16_choice(device)[1]}\n")
    base = rows[0][2]
    print("| loop | images/s | vs reference | GFLOP/s | MFU (vs measured peak) |")
    print("|---|---|---|---|---|")
    for name, bf16, ips in rows:
        gflops = ips * gflop
        print(f"| {name} | {ips:.1f} | {ips / base:.2f}x | {gflops:.0f} | "
              f"{gflops / peak[bf16]:.1%} |", flush=True)


if __name__ == "__main__":
    main()
