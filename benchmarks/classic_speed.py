"""Classic collection training speed: the frame against the collection written plainly.

    python benchmarks/classic_speed.py [--steps 10] [--warmup 2] [--batch-size 64]
        [--families gan cgan ...] [--backbones infogan dcgan] [--width 64]
        [--data FILE | --n-images 1024] [--image-format png] [--also-fp32]
        [--plain tuned collection] [--set OPTION=VALUE ...] [--out FILE.json]

For every family of the classic collection (GAN, CGAN, infoGAN, ACGAN, EBGAN, BEGAN, WGAN,
WGAN-GP, DRAGAN, LSGAN) and both backbones, images/s side by side in one process:
- ours: training.loop.train (what `python -m training <family>` runs) on the HDF5 store held
  in memory, with the frame's defaults, bf16 autocast + channels_last;
- plain (--plain tuned): the same family written plainly, as the
  "pytorch-generative-model-collections" repository writes it, but tuned: the same networks
  (training/models/classic.py), losses, optimisers and schedule (n_critic, clipping,
  penalties, k_t), the images read by a torchvision-style Dataset (PIL open, Resize to the
  backbone's size, ToTensor, Normalize) from PNG (or JPEG) files written to a temp folder,
  through a DataLoader with 2 workers (shuffle, drop_last), fp32, contiguous tensors. Nothing
  that slows it is copied from the collection: one G forward is reused for both updates, D's
  update sees it detached, losses are not read back every step, and the loader's workers are
  persistent (so a small store's epochs do not restart them). The stricter baseline.
- the collection's loop (--plain collection): the same, with the step and loader as the
  collection's files write them (GAN.py, BEGAN.py, WGAN_GP.py, ... and dataloader.py): D's
  update on G(z) not detached, so its backward runs on through G (G's zero_grad then drops
  those gradients), G run again on the same z for G's update, both losses read back with
  .item() every step, and DataLoader(dataset, batch_size, shuffle=True): no workers, the
  images read in the training process. Its infoGAN's second backward of the information
  loss (info_optimizer over G and D) is not copied: every family takes the same step here.
Both plain loops run by default.

Both are timed the same way: two runs of `warmup` and `warmup + steps` steps, each timed whole
(data opening, network building, the last step's checkpoint and grids included), and
images/s = steps x batch / (difference of the two walls), so start-up and one-off costs cancel.
For the n_critic families (WGAN, WGAN-GP: G updated every 5th step, as in the papers) keep
`steps` a multiple of 5 so every window holds the same share of G updates.

The data: --data FILE (e.g. assets_store/datasets/packshots.h5) or, by default, a synthetic
packshot-like store of --n-images 64x64 RGB images (a coloured garment shape on white, labels
category x color) written to the temp folder; conditional families train on its labels
(category, color). Widths: ngf = ndf = --width (64: the collection's own widths), z of 62.
The machine comes with the figures: the CPU model (/proc/cpuinfo), its vector capability and
whether it has native bf16, threads, the load average, and a bf16 and an fp32 matrix-product
peak measured in the same run (the best of a few n x n products, n up to 2048; 8192 on a GPU),
at its start and again at its end. A second table gives each family's model FLOPs utilisation:
the GFLOP of one training step per image (torch.utils.flop_counter's formulas on the frame's
step) times images/s, over the better of the two peak readings.
On a CPU without native bf16 (AVX2 only) bf16 autocast is far slower than fp32: the peaks
show it, and --also-fp32 adds ours in fp32 + channels_last. On a CUDA machine both loops run
on the GPU.
"""

# netG, errD, F: the names of the PyTorch DCGAN example, as in training/
# ruff: noqa: N806, N812

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.transforms as transforms
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.collection_replication import parse_options  # noqa: E402
from benchmarks.machine import cpu_model, in_pristine_process  # noqa: E402
from pipelines.processing.h5store import write_image_store  # noqa: E402
from training.classic import target_size  # noqa: E402
from training.datasets import H5ImageDataset  # noqa: E402
from training.family import get_family  # noqa: E402
from training.loop import train  # noqa: E402
from training.losses import gradient_penalty  # noqa: E402
from training.models.classic import define_autoencoder_D, define_D, define_G  # noqa: E402
from training.runtime import bf16_choice  # noqa: E402

FAMILIES = ("gan", "cgan", "infogan", "acgan", "ebgan", "began", "wgan", "wgan_gp", "dragan",
            "lsgan")
BACKBONES = ("infogan", "dcgan")
CONDITIONAL = ("cgan", "acgan")
PLAIN_STYLES = ("tuned", "collection")  # plain_family: the two ways of writing the loop
LABEL_COLUMNS = ("category", "color")  # the conditional families' default
CATEGORIES = ("dress", "shirt", "trousers", "skirt", "jacket")
COLORS = {"black": (25, 25, 25), "white": (235, 235, 235), "red": (200, 30, 40),
          "blue": (30, 60, 190), "green": (40, 150, 60), "beige": (215, 195, 160)}
StepFn = Callable[[torch.Tensor, torch.Tensor, int], None]


# ----- the machine --------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()



def matmul_peak_gflops(device: torch.device, dtype: torch.dtype, n_max: int = 2048,
                       budget_s: float = 3.0) -> tuple[float, int]:
    """(GFLOP/s, n): the best of up to 8 n x n matrix products in `dtype`, what this device
    does at most. n grows from 256 to n_max (8192 on a GPU) while a product takes under 50 ms,
    so a CPU without native bf16 (where a 2048 bf16 product takes minutes) is measured in
    seconds at a smaller n; the repeats stop once `budget_s` is spent (at least 2)."""
    n_max = 8192 if device.type == "cuda" else n_max

    def timed(a: torch.Tensor, b: torch.Tensor) -> float:
        synchronize(device)
        t0 = time.perf_counter()
        a @ b
        synchronize(device)
        return time.perf_counter() - t0

    # a GPU's first product pays for the library's set-up (more than 50 ms), which would stop
    # the search at n = 256: there, go straight to n_max (a few ms a product)
    n = n_max if device.type == "cuda" else 256
    while True:
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        first = timed(a, b)  # includes the library's set-up at this size
        if n >= n_max or first > 0.05:
            break
        n *= 2
    times, spent = [], first
    while len(times) < 8 and (len(times) < 2 or spent < budget_s):
        times.append(timed(a, b))
        spent += times[-1]
    return 2 * n ** 3 / min(times) / 1e9, n


def native_bf16() -> bool | None:
    """Whether oneDNN runs bf16 natively here (AVX-512 BF16 / AMX); None if torch cannot say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def machine(device: torch.device) -> dict:
    """What the figures were measured on (the load average says whether it was quiet)."""
    ours_bf16, ours_arithmetic = bf16_choice(device)
    info = {"cpu": cpu_model(), "cpu_count": os.cpu_count(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": native_bf16(),
            # what the frame trains ours in here (bf16 only where native and faster than fp32)
            "ours_bf16": ours_bf16, "ours_arithmetic": ours_arithmetic,
            "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": device.type, "load_average_1m": round(os.getloadavg()[0], 2)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def matmul_peaks(device: torch.device) -> dict:
    """{"fp32"|"bf16": {"gflops", "n"}}: the matrix-product peaks every speed figure is read
    against, measured in the same run."""
    peak = {}
    for key, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        gflops, n = matmul_peak_gflops(device, dtype)
        peak[key] = {"gflops": round(gflops, 1), "n": n}
    return peak


def machine_line(where: dict, peak: dict) -> str:
    """The machine and its peaks as the two lines that head a speed table."""
    bf16 = {True: "yes", False: "no"}.get(where["native_bf16"], "unknown")
    return (f"{where['cpu']}: {where['cpu_count']} cores, {where['cpu_capability']}, native "
            f"bf16 {bf16}; torch {where['torch']}, {where['torch_threads']} threads, "
            f"{where['device']}{', ' + where['gpu'] if 'gpu' in where else ''}; load average "
            f"{where['load_average_1m']} at start\nmatmul peak: "
            f"{peak['fp32']['gflops']:.0f} GFLOP/s fp32 (n = {peak['fp32']['n']}), "
            f"{peak['bf16']['gflops']:.0f} GFLOP/s bf16 (n = {peak['bf16']['n']})"
            + (f"; ours trains in {where['ours_arithmetic']}" if "ours_arithmetic" in where
               else ""))


def speed_table_head(lead: list[str], where: dict, also_fp32: bool,
                     collection: bool = False) -> str:
    """The markdown head of an ours-against-plain table, after the `lead` columns, with the
    arithmetic the frame trains ours in on `where` (machine()'s; where it is fp32, a note
    gives training.runtime.bf16_choice's reason); `collection` adds the columns of the
    collection's own loop (classic_speed.py)."""
    bf16 = where["ours_bf16"]
    note = "" if bf16 else f"note: the frame trains ours in {where['ours_arithmetic']}\n\n"
    ours = "bf16" if bf16 else "fp32"
    head = [*lead, f"ours, {ours} + channels_last, images/s"]
    if also_fp32:
        head.append("ours, fp32 + channels_last, images/s")
    head += ["plain, fp32 + DataLoader, images/s", "ours / plain"]
    if also_fp32:
        head.append("ours fp32 / plain")
    if collection:
        head += ["the collection's loop, images/s", "ours / the collection's loop"]
    return note + "| " + " | ".join(head) + " |\n" + "|---" * len(head) + "|"


def speed_table_row(lead: list[str], row: dict, also_fp32: bool) -> str:
    """One measured row of that table."""
    cells = [*lead, cell(row["ours_images_per_s"])]
    if also_fp32:
        cells.append(cell(row["ours_fp32_images_per_s"]))
    cells += [cell(row.get("plain_images_per_s")), cell(row["ratio"], "x")]
    if also_fp32:
        cells.append(cell(row["ratio_fp32"], "x"))
    if "collection_images_per_s" in row:
        cells += [cell(row["collection_images_per_s"]), cell(row["ratio_collection"], "x")]
    return "| " + " | ".join(cells) + " |"


# ----- the data -----------------------------------------------------------------------------
def synthetic_store(path: Path, n: int, seed: int = 0) -> Path:
    """n packshot-like 64x64 RGB images (a garment-shaped block of one colour on white, with
    mild noise so the files are not trivially compressible) with one-hot labels category_*
    and color_*, in the packshots.h5 layout."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64]
    category = rng.integers(0, len(CATEGORIES), n)
    color = rng.integers(0, len(COLORS), n)
    rgb = np.array(list(COLORS.values()), np.int16)
    images = np.empty((n, 64, 64, 3), np.uint8)
    for i in range(n):
        top, bottom = rng.integers(4, 14), rng.integers(50, 62)
        half = 8 + 3 * category[i] + (yy - top) * (category[i] % 3) // 8
        shape = (yy >= top) & (yy <= bottom) & (np.abs(xx - 32) <= half)
        img = np.where(shape[..., None], rgb[color[i]], 250)
        img = img + rng.integers(-6, 7, img.shape)
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    labels = np.concatenate([np.eye(len(CATEGORIES), dtype=np.uint8)[category],
                             np.eye(len(COLORS), dtype=np.uint8)[color]], 1)
    names = [f"category_{c}" for c in CATEGORIES] + [f"color_{c}" for c in COLORS]
    return write_image_store(path, [f"S{i:05d}" for i in range(n)], images,
                             {"labels": labels}, attrs={"label_names": names})


def write_files(data: H5ImageDataset, folder: Path, fmt: str) -> list[Path]:
    """Every image of the store as a PNG or JPEG file (quality 95), as a crawl leaves them."""
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    options = {"quality": 95} if fmt == "jpg" else {}
    for i, image in enumerate(data.images.permute(0, 2, 3, 1).numpy()):
        path = folder / f"{i:05d}.{fmt}"
        Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path, **options)
        files.append(path)
    return files


class FileDataset(torch.utils.data.Dataset):
    """(image, labels) from image files, read as torchvision's ImageFolder reads them: PIL
    open, convert to RGB (or L), the transform; labels (k,) class indices per label column."""

    def __init__(self, files: list[Path], labels: torch.Tensor, channels: int, size: int):
        self.files, self.labels = files, labels
        self.mode = "RGB" if channels == 3 else "L"
        self.transform = transforms.Compose([
            transforms.Resize((size, size)), transforms.ToTensor(),
            transforms.Normalize((0.5,) * channels, (0.5,) * channels)])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with open(self.files[i], "rb") as f:
            image = Image.open(f).convert(self.mode)
        return self.transform(image), self.labels[i]


# ----- the collection, written plainly ------------------------------------------------------
def one_hots(y: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    return torch.cat([F.one_hot(y[:, i], s).float() for i, s in enumerate(sizes)], 1)


def bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def plain_family(name: str, cfg, size: int, channels: int, sizes: list[int],
                 device: torch.device, style: str = "tuned") -> StepFn:
    """Networks, optimisers and one training step of `name`, written as the collection does
    (fp32, no autocast, default memory format), with the family's options from `cfg`.

    style "tuned": one G forward serves both updates, D's update sees it detached.
    style "collection": the step as the collection's files write it: D's update sees G's
    output undetached (its backward runs on through G, whose gradients G's zero_grad then
    drops), G's update runs G again on the same z, and both losses are read back (.item())."""
    bb, nz, ngf, ndf = cfg.backbone, cfg.nz, cfg.ngf, cfg.ndf
    if style not in PLAIN_STYLES:
        raise ValueError(f"style must be one of {list(PLAIN_STYLES)}, got {style!r}")
    collection = style == "collection"

    def for_d(fake: torch.Tensor) -> torch.Tensor:
        """G's output as D's update sees it."""
        return fake if collection else fake.detach()

    def for_g(fake: torch.Tensor, generate: Callable[[], torch.Tensor]) -> torch.Tensor:
        """G's output as G's update sees it: the collection runs G again on the same z."""
        return generate() if collection else fake

    def read_back(*losses: torch.Tensor) -> None:
        if collection:  # the collection's train_hist appends every step
            for loss in losses:
                loss.item()

    def adam(net, lr=None, betas=None):
        return torch.optim.Adam(net.parameters(), lr=lr or cfg.lr,
                                betas=betas or (cfg.beta1, cfg.beta2))

    def noise(n: int) -> torch.Tensor:
        return torch.randn(n, nz, 1, 1, device=device)

    def uniform(n: int) -> torch.Tensor:
        return torch.rand(n, nz, 1, 1, device=device) * 2 - 1

    if name in ("gan", "lsgan", "dragan"):
        netG = define_G(bb, nz, size, channels, ngf).to(device)
        netD = define_D(bb, size, channels, ndf, norm=cfg.d_norm).to(device)
        optG, optD = adam(netG), adam(netD)

        def d_loss(out: torch.Tensor, target: float) -> torch.Tensor:
            if name == "lsgan":
                return 0.5 * (out - target).pow(2).mean()
            return bce(out, target)

        def step(x, y, it):
            z = noise(len(x))
            fake = netG(z)
            errD = d_loss(netD(x), 1.0) + d_loss(netD(for_d(fake)), 0.0)
            if name == "dragan":
                u = torch.rand(x.shape, device=device)
                alpha = torch.rand(len(x), 1, 1, 1, device=device)
                errD = errD + cfg.lambda_gp * gradient_penalty(
                    netD, x + alpha * (cfg.perturb * x.std() * u))
            optD.zero_grad()
            errD.backward()
            optD.step()
            errG = d_loss(netD(for_g(fake, lambda: netG(z))), 1.0)
            optG.zero_grad()
            errG.backward()
            optG.step()
            read_back(errD, errG)
        return step

    if name in ("wgan", "wgan_gp"):
        netG = define_G(bb, nz, size, channels, ngf).to(device)
        netD = define_D(bb, size, channels, ndf, norm=cfg.d_norm).to(device)
        if name == "wgan":
            optG = torch.optim.RMSprop(netG.parameters(), lr=cfg.lr)
            optD = torch.optim.RMSprop(netD.parameters(), lr=cfg.lr)
            with torch.no_grad():
                for p in netD.parameters():
                    p.clamp_(-cfg.clip_value, cfg.clip_value)
        else:
            optG, optD = adam(netG), adam(netD)

        def step(x, y, it):
            update_g = (it + 1) % cfg.n_critic == 0
            z = noise(len(x))
            with torch.set_grad_enabled(update_g or collection):
                fake = netG(z)
            errD = netD(for_d(fake)).mean() - netD(x).mean()
            if name == "wgan_gp":
                eps = torch.rand(len(x), 1, 1, 1, device=device)
                errD = errD + cfg.lambda_gp * gradient_penalty(
                    netD, eps * x + (1 - eps) * fake.detach())
            optD.zero_grad()
            errD.backward()
            optD.step()
            if name == "wgan":
                with torch.no_grad():
                    for p in netD.parameters():
                        p.clamp_(-cfg.clip_value, cfg.clip_value)
            if update_g:
                errG = -netD(for_g(fake, lambda: netG(z))).mean()
                optG.zero_grad()
                errG.backward()
                optG.step()
                read_back(errG)
            read_back(errD)
        return step

    if name in ("cgan", "acgan"):
        cond = sum(sizes)
        netG = define_G(bb, nz, size, channels, ngf, cond_dim=cond).to(device)
        netD = (define_D(bb, size, channels, ndf, cond_channels=cond) if name == "cgan"
                else define_D(bb, size, channels, ndf, aux_outputs=cond)).to(device)
        optG, optD = adam(netG), adam(netD)

        def class_loss(logits, y):
            return sum(F.cross_entropy(b, y[:, i])
                       for i, b in enumerate(torch.split(logits, sizes, 1)))

        def step(x, y, it):
            c = one_hots(y, sizes)
            z = torch.cat([torch.randn(len(x), nz, device=device), c], 1)[..., None, None]
            fake = netG(z)
            if name == "cgan":
                errD = bce(netD(x, c), 1.0) + bce(netD(for_d(fake), c), 0.0)
            else:
                s_real, c_real, _ = netD.heads(x)
                s_fake, c_fake, _ = netD.heads(for_d(fake))
                errD = (bce(s_real, 1.0) + bce(s_fake, 0.0) + class_loss(c_real, y)
                        + class_loss(c_fake, y))
            optD.zero_grad()
            errD.backward()
            optD.step()
            fake = for_g(fake, lambda: netG(z))
            if name == "cgan":
                errG = bce(netD(fake, c), 1.0)
            else:
                s_gen, c_gen, _ = netD.heads(fake)
                errG = bce(s_gen, 1.0) + class_loss(c_gen, y)
            optG.zero_grad()
            errG.backward()
            optG.step()
            read_back(errD, errG)
        return step

    if name == "infogan":
        n_cat, n_cont = cfg.n_categorical, cfg.n_continuous
        netG = define_G(bb, nz + n_cat + n_cont, size, channels, ngf).to(device)
        netD = define_D(bb, size, channels, ndf, q_outputs=n_cat + n_cont).to(device)
        optG, optD = adam(netG), adam(netD)

        def info(q, cat, cont):
            return (cfg.lambda_cat * F.cross_entropy(q[:, :n_cat], cat)
                    + cfg.lambda_cont * F.mse_loss(q[:, n_cat:], cont))

        def step(x, y, it):
            n = len(x)
            cat = torch.randint(0, n_cat, (n,), device=device)
            cont = torch.rand(n, n_cont, device=device) * 2 - 1
            z = torch.cat([torch.randn(n, nz, device=device), F.one_hot(cat, n_cat).float(),
                           cont], 1)[..., None, None]
            fake = netG(z)
            s_real, _, _ = netD.heads(x)
            s_fake, _, q_fake = netD.heads(for_d(fake))
            errD = bce(s_real, 1.0) + bce(s_fake, 0.0) + info(q_fake, cat, cont)
            optD.zero_grad()
            errD.backward()
            optD.step()
            s_gen, _, q_gen = netD.heads(for_g(fake, lambda: netG(z)))
            errG = bce(s_gen, 1.0) + info(q_gen, cat, cont)
            optG.zero_grad()
            errG.backward()
            optG.step()
            read_back(errD, errG)
        return step

    if name == "ebgan":
        netG = define_G(bb, nz, size, channels, ngf).to(device)
        netD = define_autoencoder_D(bb, size, channels, ndf, code=cfg.code)
        if bb == "infogan":  # the collection's EBGAN code: the encoder's linear output
            netD.encoder = netD.encoder[:4]
        netD = netD.to(device)
        optG, optD = adam(netG), adam(netD)

        def energy(v):
            code = netD.encode(v)
            return F.mse_loss(netD.decode(code), v), code

        def step(x, y, it):
            z = uniform(len(x))
            fake = netG(z)
            e_real, _ = energy(x)
            e_fake, _ = energy(for_d(fake))
            errD = e_real + F.relu(cfg.margin - e_fake)
            optD.zero_grad()
            errD.backward()
            optD.step()
            e_gen, codes = energy(for_g(fake, lambda: netG(z)))
            s = F.normalize(codes.flatten(1), dim=1)
            pt = ((s @ s.T) ** 2).sum().sub(len(s)).div(len(s) * (len(s) - 1))
            errG = e_gen + cfg.pt_weight * pt
            optG.zero_grad()
            errG.backward()
            optG.step()
            read_back(errD, errG)
        return step

    if name == "began":
        netG = define_G(bb, nz, size, channels, ngf).to(device)
        netD = define_autoencoder_D(bb, size, channels, ndf, code=cfg.code).to(device)
        optG, optD = adam(netG), adam(netD)
        k = 0.0

        def step(x, y, it):
            nonlocal k
            z = uniform(len(x))
            fake = netG(z)
            l_real = (netD(x) - x).abs().mean()
            errD = l_real - k * (netD(for_d(fake)) - for_d(fake)).abs().mean()
            optD.zero_grad()
            errD.backward()
            optD.step()
            fake = for_g(fake, lambda: netG(z))
            l_fake = (netD(fake) - fake).abs().mean()
            optG.zero_grad()
            l_fake.backward()
            optG.step()
            read_back(errD)
            balance = cfg.gamma * l_real.item() - l_fake.item()
            k = min(max(k + cfg.lambda_k * balance, 0.0), 1.0)
        return step

    raise ValueError(f"no plain version of {name!r}; known: {', '.join(FAMILIES)}")


def plain_wall(name: str, cfg, files: list[Path], labels: torch.Tensor, channels: int,
               sizes: list[int], steps: int, device: torch.device,
               style: str = "tuned") -> float:
    """Seconds for `steps` steps of the plain loop, everything from the DataLoader on. The
    tuned loop reads through 2 persistent workers; the collection's (its dataloader.py)
    through DataLoader(dataset, batch_size, shuffle=True), images read in the main process."""
    size = target_size(cfg)
    t0 = time.perf_counter()
    workers = {"num_workers": 2, "persistent_workers": True} if style == "tuned" else {}
    loader = torch.utils.data.DataLoader(
        FileDataset(files, labels, channels, size), batch_size=cfg.batch_size, shuffle=True,
        drop_last=True, **workers)
    torch.manual_seed(cfg.seed)
    step = plain_family(name, cfg, size, channels, sizes, device, style)
    it = 0
    while it < steps:
        for x, y in loader:
            step(x.to(device), y.to(device), it)
            it += 1
            if it == steps:
                break
    synchronize(device)
    wall = time.perf_counter() - t0
    del loader  # its workers stop here, outside the timing
    return wall


def ours_wall(name: str, cfg, data: Path, work: Path) -> float:
    """Seconds of one training.loop.train call (a fresh run folder, removed afterwards)."""
    out = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    t0 = time.perf_counter()
    train(name, cfg, data, out)
    wall = time.perf_counter() - t0
    shutil.rmtree(out, ignore_errors=True)
    return wall


class FlopCount(TorchDispatchMode):
    """torch.utils.flop_counter's formulas applied to every op that runs. FlopCounterMode itself
    tracks modules with backward hooks, which autograd.grad (the gradient penalties) refuses."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def step_gflop_per_image(name: str, cfg, data: Path) -> float:
    """GFLOP of one of the family's training steps per image, counted on the frame's own step
    (the nets are the plain loop's too). The n_critic families average n_critic steps, one of
    which also updates G."""
    from training.loop import prepare

    fam, dataset = prepare(name, cfg, data)
    torch.manual_seed(cfg.seed)
    model = fam(cfg, dataset, torch.device("cpu"))
    model.build()
    idx = model.train_index()[:cfg.batch_size]
    real = dataset.batch(idx).to(memory_format=model.memory_format)
    labels = dataset.labels_of(idx) if dataset.label_columns else None
    gen = torch.Generator().manual_seed(cfg.seed)
    steps = getattr(cfg, "n_critic", 1)
    with FlopCount() as counter:
        for step in range(steps):
            model.current_step = step
            model.step(real, labels, gen, False)
    return counter.total / steps / cfg.batch_size / 1e9


def mfu(ips: float | None, gflop: float, peak_gflops: float) -> float | None:
    """Model FLOPs utilisation: achieved GFLOP/s over the peak measured in the same run."""
    return round(ips * gflop / peak_gflops, 4) if ips else None


def images_per_s(walls: list[float], steps: int, batch: int) -> float | None:
    """steps x batch over the difference of the long and the short run's walls (None when
    the long run was not the slower: too few steps for this machine's noise)."""
    short, long = walls
    return round(steps * batch / (long - short), 2) if long > short else None


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def cell(value: float | None, unit: str = "") -> str:
    return "n/a" if value is None else f"{value:.2f}{unit}" if unit else f"{value:.1f}"


def measure(name: str, backbone: str, args: argparse.Namespace, store: H5ImageDataset,
            data_path: Path, files: list[Path], work: Path, device: torch.device) -> dict:
    """One row: ours (and ours in fp32 with --also-fp32) and plain, each from two runs."""
    family = get_family(name)
    common = dict(backbone=backbone, batch_size=args.batch_size, ngf=args.width,
                  ndf=args.width, sample_every=10 ** 9, checkpoint_every=10 ** 9,
                  **args.options)
    lengths = (args.warmup, args.warmup + args.steps)
    conditional = name in CONDITIONAL
    keep = store.labelled() if conditional else torch.arange(len(store))
    labels = store.labels_of(keep) if conditional else torch.zeros(len(keep), 0, dtype=torch.long)
    sizes = [len(store.label_values[c]) for c in LABEL_COLUMNS] if conditional else []
    if len(keep) < args.batch_size:
        raise SystemExit(f"{name}: {len(keep)} labelled images, fewer than a batch")
    kept = [files[i] for i in keep.tolist()]
    cfgs = [family.Config(steps=n, **common) for n in lengths]
    # one untimed run first: the first row's shorter run took the process's one-time costs
    # (oneDNN's kernels, the heap's growth) and read GAN at 1,875 images/s, 215% of the peak
    ours_wall(name, cfgs[0], data_path, work)
    walls = {"ours": [ours_wall(name, c, data_path, work) for c in cfgs]}
    if args.also_fp32:
        walls["ours_fp32"] = [ours_wall(name, family.Config(steps=n, bf16=False, **common),
                                        data_path, work) for n in lengths]
    if "tuned" in args.plain:
        walls["plain"] = [in_pristine_process(plain_wall, name, c, kept, labels,
                                              store.channels, sizes, c.steps, device)
                          for c in cfgs]
    if "collection" in args.plain:
        walls["collection"] = [in_pristine_process(plain_wall, name, c, kept, labels,
                                                   store.channels, sizes, c.steps, device,
                                                   "collection") for c in cfgs]
    row = {"family": name, "backbone": backbone, "image_size": target_size(cfgs[0])}
    for key, w in walls.items():
        row[f"{key}_images_per_s"] = images_per_s(w, args.steps, args.batch_size)
    for key, w in walls.items():
        row[f"{key}_wall_s"] = [round(x, 3) for x in w]
    row["ratio"] = ratio(row["ours_images_per_s"], row.get("plain_images_per_s"))
    row["ratio_collection"] = ratio(row["ours_images_per_s"],
                                    row.get("collection_images_per_s"))
    if args.also_fp32:
        row["ratio_fp32"] = ratio(row["ours_fp32_images_per_s"], row.get("plain_images_per_s"))
    row["gflop_per_image"] = round(step_gflop_per_image(name, cfgs[0], data_path), 4)
    return row


# ----- main ---------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10,
                    help="timed steps (the difference of the two runs); a multiple of 5")
    ap.add_argument("--warmup", type=int, default=2, help="steps of the shorter run")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--backbones", nargs="+", default=list(BACKBONES), choices=BACKBONES)
    ap.add_argument("--width", type=int, default=64, help="ngf = ndf (64: the collection's)")
    ap.add_argument("--data", type=Path, default=None,
                    help="an HDF5 image store (default: a synthetic packshot-like one)")
    ap.add_argument("--n-images", type=int, default=1024, help="images of the synthetic store")
    ap.add_argument("--image-format", choices=("png", "jpg"), default="png",
                    help="the files the plain loop reads")
    ap.add_argument("--also-fp32", action="store_true",
                    help="also time ours in fp32 (+ channels_last): for CPUs without native "
                         "bf16, where autocast is slower than fp32")
    ap.add_argument("--plain", nargs="+", default=list(PLAIN_STYLES), choices=PLAIN_STYLES,
                    help="the plain loops to time: tuned (one G forward for both updates, D's "
                         "update on it detached, 2 persistent loader workers) and collection "
                         "(the collection's step and loader as its files write them)")
    ap.add_argument("--set", nargs="+", default=[], metavar="OPTION=VALUE",
                    help="more options of every family's config, which the plain loops read "
                         "too (nets, schedule), e.g. penalty_bf16=false: WGAN-GP's and "
                         "DRAGAN's penalty in fp32 in ours")
    ap.add_argument("--out", type=Path, default=None, help="write every figure as JSON here")
    args = ap.parse_args()
    args.options = parse_options(args.set)
    if args.steps < 1 or args.warmup < 1 or args.batch_size < 2 or args.width < 1:
        ap.error("--steps, --warmup and --width must be at least 1, --batch-size at least 2")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    work = Path(tempfile.mkdtemp(prefix="classic-speed-"))
    try:
        data_path = args.data or synthetic_store(work / "store.h5", args.n_images)
        conditional = any(f in CONDITIONAL for f in args.families)
        store = H5ImageDataset(data_path, label_columns=LABEL_COLUMNS if conditional else ())
        if len(store) < args.batch_size:
            ap.error(f"{data_path} has {len(store)} images, fewer than a batch of "
                     f"{args.batch_size}")
        files = write_files(store, work / "files", args.image_format)
        where = machine(device)
        peak = matmul_peaks(device)
        settings = {"steps": args.steps, "warmup": args.warmup, "batch_size": args.batch_size,
                    "width": args.width, "nz": 62,
                    "data": str(args.data or f"synthetic, {len(store)} images of 64x64"),
                    "image_format": args.image_format, "plain": args.plain,
                    "options": args.options,
                    "loader_workers": {"tuned": 2, "collection": 0},
                    "persistent_workers": {"tuned": True, "collection": False}}
        print(f"{machine_line(where, peak)}\n"
              f"batch {args.batch_size}, ngf = ndf = {args.width}, nz 62, {args.steps} timed "
              f"steps (runs of {args.warmup} and {args.warmup + args.steps}); "
              f"{settings['data']}, plain loop from {args.image_format.upper()} files"
              + "".join(f"; {k} = {v}" for k, v in settings["options"].items()) + "\n",
              flush=True)
        print(speed_table_head(["family", "backbone", "px"], where,
                               args.also_fp32, "collection" in args.plain), flush=True)
        rows = []
        for backbone in args.backbones:
            for name in args.families:
                row = measure(name, backbone, args, store, data_path, files, work, device)
                rows.append(row)
                print(speed_table_row([name, backbone, str(row["image_size"])], row,
                                      args.also_fp32), flush=True)
        # The peaks again at the end, the better reading of each kept: one run on the AVX-512
        # EPYC started at half its usual peaks and the MFUs read against them exceeded 100%.
        peak_end = matmul_peaks(device)
        peak = {k: {**max(peak[k], peak_end[k], key=lambda p: p["gflops"]),
                    "start": peak[k]["gflops"], "end": peak_end[k]["gflops"]} for k in peak}
        print(f"\nmatmul peak at the end: {peak_end['fp32']['gflops']:.0f} GFLOP/s fp32, "
              f"{peak_end['bf16']['gflops']:.0f} bf16; MFU against the better of the two "
              "readings", flush=True)
        # MFU against the peak of the arithmetic each loop ran in
        ours_peak = peak["bf16" if where["ours_bf16"] else "fp32"]["gflops"]
        print("\n| family | backbone | GFLOP per image per step | ours MFU | plain MFU (fp32) |"
              "\n|---|---|---|---|---|")
        for row in rows:
            g = row["gflop_per_image"]
            row["ours_mfu"] = mfu(row["ours_images_per_s"], g, ours_peak)
            # the collection's loop does more arithmetic than this count: no MFU for it
            row["plain_mfu"] = mfu(row.get("plain_images_per_s"), g, peak["fp32"]["gflops"])
            print(f"| {row['family']} | {row['backbone']} | {g:.3f} | "
                  + " | ".join("n/a" if row[k] is None else f"{row[k]:.1%}"
                               for k in ("ours_mfu", "plain_mfu")) + " |", flush=True)
        where["load_average_1m_end"] = round(os.getloadavg()[0], 2)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"machine": where, "peak": peak,
                                            "settings": settings, "rows": rows}, indent=1))
            print(f"\nwrote {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
