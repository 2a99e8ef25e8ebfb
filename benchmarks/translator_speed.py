"""Image-to-image training speed: pix2pix and CycleGAN in the frame against the same models
written plainly, as their reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix) runs
them (issue 11, "Speed").

    python benchmarks/translator_speed.py [--steps 10] [--warmup 2] [--repeats 1] [--rows ROW ...]
        [--width 64] [--pix2pix-batch 64] [--data paired_images.h5 [--packshots P --crops C]]
        [--also-fp32] [--bf16-check [--check-steps N] [--check-seeds K] [--fd-classifier F]]
        [--out FILE.json]

Rows (--rows, all by default), each images/s side by side in one process:
- pix2pix-issue: packshot -> person crop, batch 64 at 64 px (the issue's), widths --width
  (64: the reference's ngf = ndf);
- pix2pix-demo: the demo profile's batch and widths (batch 16, ngf = ndf = 32);
- cyclegan-reference: packshot <-> person, batch 1 (the reference's default), widths --width;
- cyclegan-reference-compile: the same with the family's `compile` option (torch.compile of G
  and D for the step; its compile time, minutes cold and seconds from inductor's disk cache,
  falls in the untimed run and cancels out of the two timed ones, as start-up does);
- cyclegan-demo: the demo profile's batch and widths (batch 2, ngf 16, ndf 32);
- cyclegan-demo-compile: the same with `compile`.
images/s counts the source images a step trains on (a CycleGAN step also sees as many B
images), the same way for both loops.

- ours: training.loop.train (what `python -m training pix2pix|cyclegan` runs), on the paired
  store held in memory, the frame's defaults (bf16 autocast where native, channels_last), the
  variants packshot_to_person and packshot_person;
- plain: the same networks built by the same builders (training.models.translation: define_G,
  define_D, ImagePool) with the same options, losses, weights (λ_L1 100; λ 10, identity 0.5λ,
  pool of 50) and Adam(2e-4, β 0.5/0.999), written the way the reference's train.py and its
  pix2pix_model / cycle_gan_model do a step: pix2pix's D on detached (A, G(A)) and (A, B)
  halved, then G's GAN + L1 with D frozen; CycleGAN's forward of both cycles, G_A and G_B with
  D_A/D_B frozen (GAN + cycle + identity), then D_A and D_B (each its own backward) on real
  images and the pools' draws. Images are JPEG files (quality 95) written to a temp folder from
  the store's training split: pix2pix in the reference's aligned format (A | B side by side in
  one file, split in halves after opening, one flip for both halves), CycleGAN as two folders
  (trainA, trainB; B drawn at random per A, the reference's UnalignedDataset). Each is PIL
  open + convert RGB, Resize (bicubic, the reference's), a random left-right flip (ours
  flips too), ToTensor, Normalize, through a torch DataLoader with 2 workers, fp32,
  contiguous tensors.
  Kept out so as not to handicap it: the reference's visdom/HTML display and per-100-iteration
  loss printing (no display; losses never read back), its random crop (a no-op here: load size
  = crop size = the store's size), its per-epoch scheduler call; the loader drops the last
  partial batch (every step a full batch) and its workers are persistent (a small store's
  epochs do not restart them).

Both are timed the same way as benchmarks/classic_speed.py (whose functions this imports): two
runs of `warmup` and `warmup + steps` steps, each timed whole (data opening, network building,
ours' last checkpoint, grid and test measures included), images/s = steps x batch / (the
difference of the two walls), so start-up and one-off costs cancel; before them each loop runs
one untimed step per row, so what a process pays once (imports on first use, kernels set up
for the row's shapes) falls in neither. With --repeats K each row takes K such readings of
ours and of plain, alternating, and shows the median images/s of each and the median of the K
ratios, each ratio between readings taken a minute apart: this machine's speed drifts by a
third from one minute to the next, which one reading of each side would take for a
difference between the loops. Same machine report: CPU model, vector capability and native
bf16, threads, load average, bf16 and fp32 matmul peaks.

--bf16-check: ours at the demo profile trained --check-steps (default: the profile's) in bf16
and in fp32, same seeds, and the family's own test measures of each (pix2pix: L1, PSNR, SSIM
against the real crops; CycleGAN: the cycle L1 both ways; with --fd-classifier also the
Fréchet distances). On a CPU without native bf16 (AVX2 only) the frame trains in fp32 even
when bf16 is asked for (training.runtime.bf16_native), so there is nothing to compare: the
check says so and is skipped. On a CUDA machine both loops run on the GPU.

The data: --data, a paired store (datasets/paired_images.h5 by default); when it does not
exist it is built from --packshots and --crops with training.paired.build_paired_store (what the
`paired_images` asset runs).
"""

# netG, real_A, G_A: the names of the reference repository, as in training/
# ruff: noqa: N802, N803, N806

import argparse
import itertools
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torchvision.transforms as transforms
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.classic_speed import (  # noqa: E402
    cell,
    images_per_s,
    machine,
    machine_line,
    matmul_peaks,
    ours_wall,
    ratio,
    speed_table_head,
    speed_table_row,
    synchronize,
    write_files,
)
from benchmarks.machine import cpu_bf16_mode, in_pristine_process  # noqa: E402
from training.datasets import PairedDataset, UnpairedDataset, open_dataset  # noqa: E402
from training.families.cyclegan import default_generator, parse_domains  # noqa: E402
from training.family import get_family  # noqa: E402
from training.loop import train  # noqa: E402
from training.models.translation import ImagePool, define_D, define_G  # noqa: E402
from training.paired import build_paired_store  # noqa: E402
from training.paths import StoreLayout, store_root  # noqa: E402
from training.runtime import bf16_native  # noqa: E402

TARGET = 2.5  # the issue's: ours >= 2.5x the plain loop
NEVER = 10 ** 9  # no grids or checkpoints inside the timed steps (the last step's stay)
NO_BF16 = ("no native bf16 on this CPU: the frame trains in fp32 even with bf16 on "
           "(training.runtime.bf16_native), so a bf16 run would be the fp32 run; the check "
           "needs AVX-512 BF16 / AMX or a GPU")
StepFn = Callable[[torch.Tensor, torch.Tensor], None]


@dataclass(frozen=True)
class Row:
    """One measured setting: the family, its variant, and the options over the demo profile
    ("width" and "pix2pix_batch" stand for --width and --pix2pix-batch)."""

    family: str
    variant: str
    about: str
    overrides: tuple[tuple[str, str | int], ...] = ()

    def options(self, args: argparse.Namespace) -> dict:
        named = {"width": args.width, "pix2pix_batch": args.pix2pix_batch}
        return {k: named.get(v, v) if isinstance(v, str) else v for k, v in self.overrides}


ROWS = {
    "pix2pix-issue": Row("pix2pix", "packshot_to_person", "the issue's batch, widths --width",
                         (("batch_size", "pix2pix_batch"), ("ngf", "width"), ("ndf", "width"))),
    "pix2pix-demo": Row("pix2pix", "packshot_to_person", "demo profile"),
    "cyclegan-reference": Row("cyclegan", "packshot_person", "the reference's batch 1, widths "
                              "--width", (("batch_size", 1), ("ngf", "width"),
                                          ("ndf", "width"))),
    "cyclegan-reference-compile": Row("cyclegan", "packshot_person", "the reference's batch 1, "
                                      "widths --width, compiled (--compile)",
                                      (("batch_size", 1), ("ngf", "width"), ("ndf", "width"),
                                       ("compile", True))),
    "cyclegan-demo": Row("cyclegan", "packshot_person", "demo profile"),
    "cyclegan-demo-compile": Row("cyclegan", "packshot_person", "demo profile, compiled "
                                 "(--compile)", (("compile", True),)),
}


def config(row: Row, args: argparse.Namespace, steps: int, **extra):
    """Ours' config: the family's demo profile, its variant, the row's options."""
    fam = get_family(row.family)
    return fam.Config.profile("demo", steps=steps, sample_every=NEVER, checkpoint_every=NEVER,
                              **fam.variants[row.variant], **row.options(args), **extra)


# ----- the data, as the reference reads it ------------------------------------------------
def paired_store(data: Path, packshots: Path, crops: Path) -> Path:
    """The paired store, built with the paired_images asset's function when it is missing."""
    if data.is_file():
        return data
    data.parent.mkdir(parents=True, exist_ok=True)
    counts = build_paired_store(packshots, crops, data)
    print(f"built {data}: {counts['pairs']} pairs ({counts['train']} train, {counts['test']} "
          f"test) from {packshots} and {crops}", flush=True)
    return data


def write_aligned(paired: PairedDataset, folder: Path) -> list[Path]:
    """The training pairs in the reference's aligned format: one JPEG per pair, A | B."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in paired.train_index().tolist():
        a, b = (t[i].permute(1, 2, 0).numpy() for t in (paired.images, paired.targets))
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(np.concatenate([a, b], 1)).save(path, quality=95)
        files.append(path)
    return files


def to_tensor() -> list:
    return [transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)]


class AlignedDataset(torch.utils.data.Dataset):
    """(A, B) from A | B files, as the reference's AlignedDataset: open, convert, split in
    halves, one set of transform parameters (the flip) for both."""

    def __init__(self, files: list[Path], size: int, flip: bool):
        self.files, self.flip = files, flip
        self.resize = transforms.Resize((size, size), transforms.InterpolationMode.BICUBIC)
        self.tail = transforms.Compose(to_tensor())

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        ab = Image.open(self.files[i]).convert("RGB")
        w, h = ab.size
        halves = (ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h)))
        flip = self.flip and random.random() > 0.5
        out = []
        for image in halves:
            image = self.resize(image)
            if flip:
                image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            out.append(self.tail(image))
        return out[0], out[1]


class UnalignedDataset(torch.utils.data.Dataset):
    """(A[i], a random B), as the reference's UnalignedDataset (serial_batches off): its
    length the larger domain's, each image transformed on its own."""

    def __init__(self, a_files: list[Path], b_files: list[Path], size: int, flip: bool):
        self.a_files, self.b_files = a_files, b_files
        self.transform = transforms.Compose(
            [transforms.Resize((size, size), transforms.InterpolationMode.BICUBIC)]
            + ([transforms.RandomHorizontalFlip()] if flip else []) + to_tensor())

    def __len__(self) -> int:
        return max(len(self.a_files), len(self.b_files))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        a = Image.open(self.a_files[i % len(self.a_files)]).convert("RGB")
        b = Image.open(self.b_files[random.randint(0, len(self.b_files) - 1)]).convert("RGB")
        return self.transform(a), self.transform(b)


def plain_data(family: str, data_path: Path, variant_options: dict, folder: Path
               ) -> Callable[[int, bool], torch.utils.data.Dataset]:
    """The family's JPEG files written once; a maker of its dataset (size, flip)."""
    if family == "pix2pix":
        paired = open_dataset(data_path, direction=variant_options["direction"])
        files = write_aligned(paired, folder / "train")
        return lambda size, flip: AlignedDataset(files, size, flip)
    unpaired = open_dataset(data_path, domains=parse_domains(variant_options["domains"]))
    assert isinstance(unpaired, UnpairedDataset)
    sides = []
    for name, images, rows in (("trainA", unpaired.images, unpaired.train_index()),
                               ("trainB", unpaired.targets, unpaired.b_pool)):
        sides.append(write_files(SimpleNamespace(images=images[rows]), folder / name, "jpg"))
    return lambda size, flip: UnalignedDataset(sides[0], sides[1], size, flip)


# ----- the models, written plainly ----------------------------------------------------------
def gan_criterion(mode: str) -> Callable[[torch.Tensor, bool], torch.Tensor]:
    """The reference's GANLoss: BCE with logits (vanilla) or MSE (lsgan) against a label
    tensor expanded to the prediction."""
    loss = nn.BCEWithLogitsLoss() if mode == "vanilla" else nn.MSELoss()
    labels: dict[tuple, torch.Tensor] = {}

    def criterion(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        key = (target_is_real, prediction.device)
        if key not in labels:
            labels[key] = torch.tensor(float(target_is_real), device=prediction.device)
        return loss(prediction, labels[key].expand_as(prediction))
    return criterion


def adam(params, cfg) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, 0.999))


def plain_pix2pix(cfg, size: int, device: torch.device) -> StepFn:
    """pix2pix_model.optimize_parameters: D on (A, G(A)) detached and (A, B), halved; G's GAN
    loss with D frozen plus λ·L1."""
    netG = define_G(3, 3, cfg.ngf, cfg.generator, cfg.norm, cfg.dropout,
                    image_size=size).to(device)
    netD = define_D(6, cfg.ndf, cfg.discriminator, cfg.d_layers, cfg.norm,
                    image_size=size).to(device)
    criterionGAN, criterionL1 = gan_criterion(cfg.gan_mode), nn.L1Loss()
    optimizer_G, optimizer_D = adam(netG.parameters(), cfg), adam(netD.parameters(), cfg)

    def step(real_A: torch.Tensor, real_B: torch.Tensor) -> None:
        fake_B = netG(real_A)
        netD.requires_grad_(True)
        optimizer_D.zero_grad()
        pred_fake = netD(torch.cat((real_A, fake_B), 1).detach())
        pred_real = netD(torch.cat((real_A, real_B), 1))
        loss_D = (criterionGAN(pred_fake, False) + criterionGAN(pred_real, True)) * 0.5
        loss_D.backward()
        optimizer_D.step()
        netD.requires_grad_(False)
        optimizer_G.zero_grad()
        loss_G = (criterionGAN(netD(torch.cat((real_A, fake_B), 1)), True)
                  + criterionL1(fake_B, real_B) * cfg.lambda_l1)
        loss_G.backward()
        optimizer_G.step()
    return step


def plain_cyclegan(cfg, size: int, device: torch.device) -> StepFn:
    """cycle_gan_model.optimize_parameters: both cycles forward; G_A and G_B with the D frozen
    (LSGAN + λ cycle + ½λ identity); then D_A on real B and the pool's G_A(A), D_B likewise."""
    kind = default_generator(size) if cfg.generator == "auto" else cfg.generator

    def g() -> nn.Module:
        return define_G(3, 3, cfg.ngf, kind, cfg.norm, image_size=size).to(device)

    def d() -> nn.Module:
        return define_D(3, cfg.ndf, cfg.discriminator, cfg.d_layers, cfg.norm,
                        image_size=size).to(device)

    netG_A, netG_B, netD_A, netD_B = g(), g(), d(), d()
    fake_A_pool = ImagePool(cfg.pool_size, (3, size, size)).to(device)
    fake_B_pool = ImagePool(cfg.pool_size, (3, size, size)).to(device)
    criterionGAN, criterionCycle, criterionIdt = gan_criterion("lsgan"), nn.L1Loss(), nn.L1Loss()
    optimizer_G = adam(itertools.chain(netG_A.parameters(), netG_B.parameters()), cfg)
    optimizer_D = adam(itertools.chain(netD_A.parameters(), netD_B.parameters()), cfg)
    lambda_A = lambda_B = cfg.lambda_cycle
    lambda_idt = cfg.lambda_identity

    def backward_D_basic(netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> None:
        loss_D = (criterionGAN(netD(real), True) + criterionGAN(netD(fake.detach()), False)) * 0.5
        loss_D.backward()

    def step(real_A: torch.Tensor, real_B: torch.Tensor) -> None:
        fake_B = netG_A(real_A)
        rec_A = netG_B(fake_B)
        fake_A = netG_B(real_B)
        rec_B = netG_A(fake_A)
        netD_A.requires_grad_(False)
        netD_B.requires_grad_(False)
        optimizer_G.zero_grad()
        loss_G = (criterionGAN(netD_A(fake_B), True) + criterionGAN(netD_B(fake_A), True)
                  + criterionCycle(rec_A, real_A) * lambda_A
                  + criterionCycle(rec_B, real_B) * lambda_B)
        if lambda_idt > 0:
            loss_G = (loss_G + criterionIdt(netG_A(real_B), real_B) * lambda_B * lambda_idt
                      + criterionIdt(netG_B(real_A), real_A) * lambda_A * lambda_idt)
        loss_G.backward()
        optimizer_G.step()
        netD_A.requires_grad_(True)
        netD_B.requires_grad_(True)
        optimizer_D.zero_grad()
        backward_D_basic(netD_A, real_B, fake_B_pool.query(fake_B))
        backward_D_basic(netD_B, real_A, fake_A_pool.query(fake_A))
        optimizer_D.step()
    return step


PLAIN = {"pix2pix": plain_pix2pix, "cyclegan": plain_cyclegan}


def plain_wall(family: str, cfg, dataset: torch.utils.data.Dataset, size: int, steps: int,
               device: torch.device) -> float:
    """Seconds for `steps` steps of the plain loop, everything from the DataLoader on."""
    t0 = time.perf_counter()
    loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch_size, shuffle=True,
                                         num_workers=2, drop_last=True,
                                         persistent_workers=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    step = PLAIN[family](cfg, size, device)
    it = 0
    while it < steps:
        for real_A, real_B in loader:
            step(real_A.to(device), real_B.to(device))
            it += 1
            if it == steps:
                break
    synchronize(device)
    wall = time.perf_counter() - t0
    del loader  # its workers stop here, outside the timing
    return wall


# ----- the figures ------------------------------------------------------------------------
def measure(key: str, args: argparse.Namespace, data_path: Path, work: Path,
            device: torch.device) -> dict:
    """One row: ours (and ours in fp32 with --also-fp32) and plain, each from two runs."""
    row_def = ROWS[key]
    fam = get_family(row_def.family)
    lengths = (args.warmup, args.warmup + args.steps)
    cfgs = [config(row_def, args, n) for n in lengths]
    cfg = cfgs[0]
    size = open_dataset(data_path).image_size
    make = plain_data(row_def.family, data_path, fam.variants[row_def.variant],
                      work / f"{key}-files")
    dataset = make(size, cfg.flip)
    if len(dataset) < cfg.batch_size:
        raise SystemExit(f"{key}: {len(dataset)} training images, fewer than a batch of "
                         f"{cfg.batch_size}")
    # untimed: what a process pays once (imports on first use, kernels set up for these
    # shapes) would otherwise fall in the first timed run only and not cancel
    ours_wall(row_def.family, config(row_def, args, 1), data_path, work)
    in_pristine_process(plain_wall, row_def.family, cfg, dataset, size, 1, device)
    readings: list[dict[str, list[float]]] = []
    for _ in range(args.repeats):  # ours and plain alternate: a drift of the machine's speed
        walls = {"ours": [ours_wall(row_def.family, c, data_path, work) for c in cfgs]}
        if args.also_fp32:
            walls["ours_fp32"] = [ours_wall(row_def.family,
                                            config(row_def, args, n, bf16=False), data_path,
                                            work) for n in lengths]
        walls["plain"] = [in_pristine_process(plain_wall, row_def.family, c, dataset, size,
                                              c.steps, device) for c in cfgs]
        readings.append(walls)
    row = {"row": key, "family": row_def.family, "variant": row_def.variant,
           "about": row_def.about, "batch": cfg.batch_size, "ngf": cfg.ngf, "ndf": cfg.ndf,
           "image_size": size, "repeats": args.repeats}
    speeds = [{name: images_per_s(w, args.steps, cfg.batch_size) for name, w in r.items()}
              for r in readings]
    for name in readings[0]:
        row[f"{name}_images_per_s"] = median_of([s[name] for s in speeds])
        row[f"{name}_wall_s"] = [[round(x, 3) for x in r[name]] for r in readings]
        row[f"{name}_images_per_s_each"] = [s[name] for s in speeds]
    # the ratio of each repeat's own pair of readings, then their median
    row["ratios"] = [ratio(s["ours"], s["plain"]) for s in speeds]
    row["ratio"] = median_of(row["ratios"])
    if args.also_fp32:
        row["ratio_fp32"] = ratio(row["ours_fp32_images_per_s"], row["plain_images_per_s"])
    row["target_met"] = None if row["ratio"] is None else row["ratio"] >= TARGET
    return row


def median_of(values: list[float | None]) -> float | None:
    """The median of the readings that came out (None where none did)."""
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


def bf16_check(family: str, args: argparse.Namespace, data_path: Path, work: Path) -> dict:
    """Ours at the demo profile in bf16 and in fp32, equal steps and seeds: the family's own
    test measures of each, per seed and their mean."""
    row_def = next(r for r in ROWS.values() if r.family == family and not r.overrides)
    fam = get_family(family)
    steps = args.check_steps or fam.Config.PROFILES["demo"]["steps"]
    out: dict = {"family": family, "variant": row_def.variant, "steps": steps,
                 "seeds": list(range(args.check_seeds))}
    for bf16 in (True, False):
        runs = []
        for seed in range(args.check_seeds):
            cfg = config(row_def, args, steps, seed=seed, bf16=bf16,
                         fd_classifier=str(args.fd_classifier or ""))
            folder = Path(tempfile.mkdtemp(prefix=f"{family}-check-", dir=work))
            with cpu_bf16_mode("on"):  # bf16 where native, faster than fp32 here or not
                summary = train(family, cfg, data_path, folder)
            shutil.rmtree(folder, ignore_errors=True)
            runs.append({"bf16_ran": summary["bf16"], "wall_s": summary["wall_s"],
                         "measures": summary["measures"]})
        names = [k for k in runs[0]["measures"] if not k.startswith("n_test")]
        out["bf16" if bf16 else "fp32"] = {
            "runs": runs, "mean": {k: round(float(np.mean([r["measures"][k] for r in runs])), 5)
                                   for k in names}}
    if not all(r["bf16_ran"] for r in out["bf16"]["runs"]):
        raise RuntimeError(f"{family}: a bf16 run trained in fp32 although bf16 is native")
    out["difference"] = {k: round(out["bf16"]["mean"][k] - out["fp32"]["mean"][k], 5)
                         for k in out["bf16"]["mean"]}
    return out


def header(where: dict, peak: dict, args: argparse.Namespace, data: str) -> str:
    return (f"{machine_line(where, peak)}\n{args.steps} timed steps (runs of {args.warmup} and "
            f"{args.warmup + args.steps}); {data}; plain loop from JPEG files, DataLoader with "
            f"2 workers\n")


def print_check(check: dict) -> None:
    print(f"\nbf16 vs fp32, {check['family']} ({check['variant']}, demo profile), "
          f"{check['steps']} steps, seeds {check['seeds']}:")
    print("| measure | bf16 | fp32 | bf16 - fp32 |\n|---|---|---|---|")
    for k, d in check["difference"].items():
        print(f"| {k} | {check['bf16']['mean'][k]:.4f} | {check['fp32']['mean'][k]:.4f} | "
              f"{d:+.4f} |")


# ----- main ---------------------------------------------------------------------------------
def main() -> None:
    layout = StoreLayout(store_root())
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10,
                    help="timed steps (the difference of the two runs)")
    ap.add_argument("--warmup", type=int, default=2, help="steps of the shorter run")
    ap.add_argument("--repeats", type=int, default=1,
                    help="readings of each row, ours and plain alternating; the row shows the "
                         "medians and the median of each reading's own ratio")
    ap.add_argument("--rows", nargs="+", default=list(ROWS), choices=list(ROWS))
    ap.add_argument("--width", type=int, default=64,
                    help="ngf = ndf of the -issue and -reference rows (64: the reference's)")
    ap.add_argument("--pix2pix-batch", type=int, default=64,
                    help="batch of the pix2pix-issue row (the issue's 64)")
    ap.add_argument("--data", type=Path, default=layout.paired_images,
                    help="the paired store (built from --packshots and --crops if missing)")
    ap.add_argument("--packshots", type=Path, default=layout.packshots)
    ap.add_argument("--crops", type=Path, default=layout.person_crops)
    ap.add_argument("--also-fp32", action="store_true",
                    help="also time ours in fp32 (+ channels_last), where bf16 is native")
    ap.add_argument("--bf16-check", action="store_true",
                    help="train ours in bf16 and fp32 at equal steps and compare the measures")
    ap.add_argument("--check-steps", type=int, default=0,
                    help="steps of each --bf16-check run (0: the demo profile's)")
    ap.add_argument("--check-seeds", type=int, default=1, help="seeds of the --bf16-check")
    ap.add_argument("--fd-classifier", type=Path, default=None,
                    help="attribute_classifier.pt: the check also compares Fréchet distances")
    ap.add_argument("--out", type=Path, default=None, help="write every figure as JSON here")
    args = ap.parse_args()
    if min(args.steps, args.warmup, args.width, args.pix2pix_batch, args.repeats) < 1:
        ap.error("--steps, --warmup, --width, --pix2pix-batch and --repeats must be at least 1")
    if args.check_steps < 0 or args.check_seeds < 1:
        ap.error("--check-steps must be >= 0 and --check-seeds >= 1")
    if args.fd_classifier and not args.fd_classifier.is_file():
        ap.error(f"--fd-classifier {args.fd_classifier}: no such file")
    try:
        data_path = paired_store(args.data, args.packshots, args.crops)
    except ValueError as e:
        ap.error(str(e))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    native = bf16_native(device)
    work = Path(tempfile.mkdtemp(prefix="translator-speed-"))
    try:
        paired = open_dataset(data_path)
        data = (f"{data_path}: {len(paired.train_index())} training pairs of "
                f"{paired.image_size}x{paired.image_size}")
        where = machine(device)
        peak = matmul_peaks(device)
        print(header(where, peak, args, data), flush=True)
        print(speed_table_head(["row", "batch", "ngf/ndf", "px"], where, args.also_fp32),
              flush=True)
        rows = []
        for key in args.rows:
            row = measure(key, args, data_path, work, device)
            rows.append(row)
            print(speed_table_row([key, str(row["batch"]), f"{row['ngf']}/{row['ndf']}",
                                   str(row["image_size"])], row, args.also_fp32), flush=True)
        said = ", ".join(f"{r['row']} {cell(r['ratio'], 'x')}" + (
            f" (readings {', '.join(cell(x, 'x') for x in r['ratios'])})"
            if len(r["ratios"]) > 1 else "") for r in rows)
        print(f"\ntarget ours / plain >= {TARGET}x (issue 11): {said}", flush=True)
        checks: list[dict] | dict | None = None
        if args.bf16_check:
            if not native:
                checks = {"skipped": NO_BF16}
                print(f"\nbf16 check skipped: {NO_BF16}", flush=True)
            else:
                checks = []
                for family in dict.fromkeys(ROWS[k].family for k in args.rows):
                    checks.append(bf16_check(family, args, data_path, work))
                    print_check(checks[-1])
        where["load_average_1m_end"] = round(os.getloadavg()[0], 2)
        if args.out:
            settings = {"steps": args.steps, "warmup": args.warmup, "repeats": args.repeats,
                        "width": args.width,
                        "pix2pix_batch": args.pix2pix_batch, "data": data,
                        "image_format": "jpg", "loader_workers": 2,
                        "persistent_workers": True, "target_ratio": TARGET}
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"machine": where, "peak": peak,
                                            "settings": settings, "rows": rows,
                                            "bf16_check": checks}, indent=1))
            print(f"\nwrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
