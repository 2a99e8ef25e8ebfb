"""DCGAN training speed: this project's in-memory loop against the official example's loop.

    python benchmarks/dcgan_speed.py [--steps 20] [--warmup 3]

Same model (DCGAN 64x64, ngf = ndf = 64), same batch (64), baseline variant, run side by side
in one process on this machine:
- reference: written the way the official PyTorch DCGAN example is, reading the catalogue's
  256x256 JPEG packshots through torchvision ImageFolder (Resize 64, CenterCrop, ToTensor,
  Normalize) and a DataLoader with 2 workers, fp32;
- ours, fp32: training.dcgan.train_dcgan on datasets/packshots.h5 held in memory;
- ours, fp32 + channels_last;
- ours, bf16 autocast + channels_last (the default).
Needs the demo's catalogue and packshots.h5 (make run). Model FLOPs utilisation assumes 2.5
GFLOP per image per training step and this CPU's nominal peak (see --peak-gflops).
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

from training.dcgan import DCGANConfig, train_dcgan  # noqa: E402
from training.models.dcgan import define_D, define_G  # noqa: E402

STORE = Path(__file__).resolve().parent.parent / "assets_store"


def reference_loop(root: Path, steps: int, warmup: int, batch: int = 64) -> float:
    """images/s of the official example's loop (ImageFolder + DataLoader(2 workers), fp32)."""
    dataset = dset.ImageFolder(root=str(root), transform=transforms.Compose([
        transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
        transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True,
                                         num_workers=2, drop_last=True, persistent_workers=True)
    netG, netD = define_G(100, 64), define_D(3, 64)
    optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    done, t0 = 0, None
    while done < steps + warmup:
        for real, _ in loader:
            if done == warmup:
                t0 = time.perf_counter()
            netD.zero_grad()
            noise = torch.randn(batch, 100, 1, 1)
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
    return steps * batch / (time.perf_counter() - t0)


def ours(data: Path, steps: int, warmup: int, bf16: bool, channels_last: bool) -> float:
    """images/s of train_dcgan, timed after `warmup` steps (a first run to that checkpoint)."""
    with tempfile.TemporaryDirectory() as tmp:
        common = dict(variant="baseline", batch_size=64, ngf=64, ndf=64, bf16=bf16,
                      channels_last=channels_last, log_every=10_000, sample_every=10_000)
        train_dcgan(DCGANConfig(steps=warmup, checkpoint_every=warmup, **common), data, tmp)
        summary = train_dcgan(DCGANConfig(steps=warmup + steps, checkpoint_every=10_000,
                                          **common), data, tmp)
        return summary["images_per_s"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--peak-gflops", type=float, default=0.0,
                    help="the CPU's peak GFLOP/s for the MFU column (0: leave it out)")
    args = ap.parse_args()
    rows = [("reference (ImageFolder JPEG + DataLoader 2 workers, fp32)",
             reference_loop(STORE / "catalogue" / "images", args.steps, args.warmup))]
    data = STORE / "datasets" / "packshots.h5"
    for name, bf16, cl in (("ours, in memory, fp32", False, False),
                           ("ours, in memory, fp32 + channels_last", False, True),
                           ("ours, in memory, bf16 autocast + channels_last", True, True)):
        rows.append((name, ours(data, args.steps, args.warmup, bf16, cl)))
    base = rows[0][1]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 64, "
          f"ngf = ndf = 64, {args.steps} timed steps after {args.warmup}\n")
    print("| loop | images/s | vs reference | GFLOP/s (2.5 GFLOP/image) |"
          + (" MFU |" if args.peak_gflops else ""))
    print("|---|---|---|---|" + ("---|" if args.peak_gflops else ""))
    for name, ips in rows:
        gflops = ips * 2.5
        mfu = f" {gflops / args.peak_gflops:.1%} |" if args.peak_gflops else ""
        print(f"| {name} | {ips:.1f} | {ips / base:.2f}x | {gflops:.0f} |{mfu}", flush=True)


if __name__ == "__main__":
    main()
