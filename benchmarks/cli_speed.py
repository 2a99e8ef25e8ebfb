"""DCGAN training speed as users run it: `python -m training dcgan` against the official PyTorch
DCGAN example's loop, side by side in one run.

    python benchmarks/cli_speed.py [--steps 30] [--warmup 5] [--repeats 1] [--variant baseline]
        [--data assets_store/datasets/packshots.h5] [--images assets_store/catalogue/images]

Rows, all DCGAN 64x64, ngf = ndf = 64, batch 64 (the `full` profile's nets and batch):
- reference: the example's loop (ImageFolder over the catalogue's JPEG packshots, Resize 64,
  CenterCrop, a DataLoader with 2 workers, fp32), in this process, timed after `warmup` steps;
  and the same with persistent loader workers (benchmarks/dcgan_speed.py's loops);
- ours in process: training.loop.train, logging and grids off (dcgan_speed.py's `ours`);
- ours through the CLI: `python -m training dcgan --profile full --variant V --steps N`, a
  fresh process and run folder per length, its progress lines on a pipe (as under nohup or
  CI); images/s = steps x 64 / (wall(warmup + steps) - wall(warmup)), so the process start,
  imports, data loading, the final checkpoint, grids and report cancel and what is left is
  what every step costs, its logging included.
The machine comes with the figures: the CPU model, native bf16 or not, and the fp32/bf16
matrix-product peaks measured in the same run (benchmarks/classic_speed.py's).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.classic_speed import machine, machine_line, matmul_peaks  # noqa: E402
from benchmarks.dcgan_speed import STORE, ours, reference_loop  # noqa: E402


def cli_wall(data: Path, out: Path, steps: int, variant: str, extra: list[str]) -> float:
    """Seconds of one `python -m training dcgan` process, start to exit."""
    cmd = [sys.executable, "-m", "training", "dcgan", "--data", str(data), "--out", str(out),
           "--profile", "full", "--variant", variant, "--steps", str(steps), *extra]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["steps"] == steps, summary
    return wall


def cli(data: Path, steps: int, warmup: int, variant: str, extra: list[str],
        repeats: int = 1) -> float:
    """images/s of the CLI from two process walls (warmup and warmup + steps), the median of
    `repeats` such pairs: a process's start-up moves by a second or so from one launch to the
    next, which is several per cent of a minute of steps."""
    readings = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as tmp:
            walls = [cli_wall(data, Path(tmp) / f"run{n}", n, variant, extra)
                     for n in (warmup, warmup + steps)]
        readings.append(steps * 64 / (walls[1] - walls[0]))
    if repeats > 1:
        print(f"  CLI {' '.join(extra) or 'with progress'}: "
              f"{', '.join(f'{x:.1f}' for x in readings)} images/s", flush=True)
    return statistics.median(readings)  # of two: their mean, not the higher


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=1,
                    help="CLI pairs per CLI row, the median reported (each listed)")
    ap.add_argument("--variant", default="baseline", choices=("baseline", "augment",
                                                               "symmetric"))
    ap.add_argument("--data", type=Path, default=STORE / "datasets" / "packshots.h5")
    ap.add_argument("--images", type=Path, default=STORE / "catalogue" / "images")
    args = ap.parse_args()
    if not args.data.is_file() or not args.images.is_dir():
        ap.error(f"needs {args.data} and {args.images} (make run writes both)")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    where, peak = machine(device), matmul_peaks(device)
    print(machine_line(where, peak), flush=True)
    print(f"DCGAN 64x64, ngf = ndf = 64, batch 64, {args.steps} timed steps after "
          f"{args.warmup}; ours: variant {args.variant}, the frame's default arithmetic "
          f"({where['ours_arithmetic']})\n",
          flush=True)
    rows = [("reference, as the example (ImageFolder JPEG + DataLoader 2 workers, fp32)",
             reference_loop(args.images, args.steps, args.warmup, device=device)),
            ("reference with persistent loader workers",
             reference_loop(args.images, args.steps, args.warmup, device=device,
                            persistent=True)),
            ("ours in process (training.loop.train, baseline, no logging)",
             ours(args.data, args.steps, args.warmup, True, True, cpu_bf16="auto")),
            (f"ours through the CLI (`python -m training dcgan --profile full --variant "
             f"{args.variant}`)", cli(args.data, args.steps, args.warmup, args.variant, [],
                 args.repeats)),
            ("ours through the CLI, --no-progress",
             cli(args.data, args.steps, args.warmup, args.variant, ["--no-progress"],
                 args.repeats))]
    base = rows[0][1]
    print("| loop | images/s | vs reference |\n|---|---|---|")
    for name, ips in rows:
        print(f"| {name} | {ips:.1f} | {ips / base:.2f}x |", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
