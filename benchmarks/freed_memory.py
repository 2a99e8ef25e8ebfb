"""The frame's step with freed memory kept in the heap and without, side by side.

    python benchmarks/freed_memory.py [--families wgan acgan ...] [--backbones infogan dcgan]
        [--steps 50] [--warmup 5] [--repeats 2]

training.runtime.keep_freed_memory is process-wide and for good, so every reading is a fresh
process: FASHION_GAN_KEEP_FREED=1 (kept, the default) and =0 (glibc's default allocator)
alternate, `--repeats` pairs per family. Each reading is classic_speed.py's measure of ours
(two training.loop.train runs of warmup and warmup + steps steps, the difference timed) on a
synthetic packshot store, batch 64, widths 64. Prints images/s of each reading and the
ratio of the medians, with the machine and its matmul peaks.
"""

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from benchmarks.classic_speed import (  # noqa: E402
    FAMILIES,
    cell,
    images_per_s,
    machine,
    machine_line,
    matmul_peaks,
    ours_wall,
    ratio,
    synthetic_store,
)
from benchmarks.machine import spawned_process  # noqa: E402
from training.family import get_family  # noqa: E402


def reading(name: str, backbone: str, steps: int, warmup: int, data: Path, work: Path) -> float:
    """Images/s of ours in this (fresh) process."""
    common = dict(backbone=backbone, batch_size=64, ngf=64, ndf=64, sample_every=10 ** 9,
                  checkpoint_every=10 ** 9)
    fam = get_family(name)
    walls = [ours_wall(name, fam.Config(steps=n, **common), data, work)
             for n in (warmup, warmup + steps)]
    return images_per_s(walls, steps, 64)


def in_fresh_process(keep: str, *args) -> float:
    """A reading in a new process whose training reads FASHION_GAN_KEEP_FREED=keep."""
    with spawned_process(FASHION_GAN_KEEP_FREED=keep) as pool:
        return pool.submit(reading, *args).result()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--backbones", nargs="+", default=["infogan"], choices=("infogan", "dcgan"))
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    device = torch.device("cpu")
    print(machine_line(machine(device), matmul_peaks(device)), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = synthetic_store(work / "store.h5", 2048)
        print("\n| family | px | kept, images/s | not kept, images/s | kept / not kept |\n"
              "|---|---|---|---|---|", flush=True)
        for backbone in args.backbones:
            for name in args.families:
                got: dict[str, list[float | None]] = {"1": [], "0": []}
                for _ in range(args.repeats):
                    for keep in ("1", "0"):
                        got[keep].append(in_fresh_process(keep, name, backbone, args.steps,
                                                          args.warmup, data, work))
                # a reading is None where the longer run was not the slower (too few steps)
                kept, plain = (statistics.median([v for v in got[k] if v is not None] or [0])
                               for k in ("1", "0"))
                px = 32 if backbone == "infogan" else 64
                print(f"| {name} | {px} | {', '.join(map(cell, got['1']))} | "
                      f"{', '.join(map(cell, got['0']))} | {cell(ratio(kept, plain), 'x')} |",
                      flush=True)
    end = matmul_peaks(device)
    print(f"\nmatmul peak at the end: {end['fp32']['gflops']:.0f} GFLOP/s fp32, "
          f"{end['bf16']['gflops']:.0f} bf16")


if __name__ == "__main__":
    main()
