"""DCGAN training with the symmetry loss of "Enhancing Symmetry in GAN Generated Fashion Images".

Three variants, one loop (read it like the official PyTorch DCGAN example):
- baseline:  D minimises d_loss_real + d_loss_fake, G minimises g_loss_orig;
- augment:   the same, on real images flipped left-right at random;
- symmetric: D also sees flipped real and flipped generated images and minimises
             d_loss_mean = mean(d_loss_real, d_loss_fake, d_loss_real_flip, d_loss_fake_flip);
             G minimises g_loss_mean = (g_loss_orig + g_loss_flip) / 2.
All six losses are logged for every variant; where a variant does not optimise the flip terms
they are measured (without gradients) at each logging step, so the paper's Fig. 3 can be drawn
for each. D outputs logits and the losses are BCE-with-logits, which is numerically the same as
the example's Sigmoid + BCELoss and safe under bf16 autocast.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import GANConfig
from training.datasets import H5ImageDataset
from training.grids import save_image_grid
from training.losses import bce
from training.metrics import flip_gap, mean_abs_error, symmetry_error
from training.models.dcgan import define_D, define_G
from training.repair import flip_inversion
from training.runtime import init_distributed

VARIANTS = ("baseline", "augment", "symmetric")
LOSSES = ("d_loss_real", "d_loss_fake", "g_loss_orig", "d_loss_real_flip", "d_loss_fake_flip",
          "g_loss_flip")


@dataclass
class DCGANConfig(GANConfig):
    variant: str = "symmetric"


def train_dcgan(cfg: DCGANConfig, data_path: Path, out_dir: Path,
                log_metrics: Callable[[int, dict], None] | None = None) -> dict:
    """Train (or resume from out_dir/checkpoint.pt) and return a summary."""
    if cfg.variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {cfg.variant!r}")
    out_dir = Path(out_dir)
    (out_dir / "samples").mkdir(parents=True, exist_ok=True)
    rank, world, device = init_distributed()
    lead = rank == 0  # only rank 0 writes files and logs
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    data = H5ImageDataset(data_path, flip=cfg.variant == "augment", seed=cfg.seed + rank)
    netG = define_G(cfg.nz, cfg.ngf).to(device)
    netD = define_D(3, cfg.ndf).to(device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    netG, netD = netG.to(memory_format=memory_format), netD.to(memory_format=memory_format)
    optD = torch.optim.Adam(netD.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    optG = torch.optim.Adam(netG.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * rank)  # batch indices and noise
    fixed_noise = torch.randn(64, cfg.nz, 1, 1, generator=torch.Generator().manual_seed(1))
    modules, optims = {"netG": netG, "netD": netD}, {"optG": optG, "optD": optD}
    generators = {"gen": gen, "data": data.generator}
    ckpt = out_dir / "checkpoint.pt"
    start = load_checkpoint(ckpt, modules, optims, generators) if ckpt.exists() else 0
    if world > 1:
        # Ranks resume from rank 0's checkpoint; each reseeds its own batch stream.
        gen.manual_seed(cfg.seed + 1000 * rank + start)
        # D runs on the same inputs pattern every step (static graph); G's loss goes through
        # the plain netD, so D's reducer only sees the D step.
        ddp_G = DDP(netG, static_graph=True)
        ddp_D = DDP(netD, static_graph=True)
    else:
        ddp_G, ddp_D = netG, netD
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    history = out_dir / "losses.jsonl"
    t0, images_seen = time.perf_counter(), 0
    row: dict = {}
    for step in range(start, cfg.steps):
        idx = torch.randint(0, len(data), (cfg.batch_size,), generator=gen)
        real = data.batch(idx).to(device, memory_format=memory_format)
        noise = torch.randn(cfg.batch_size, cfg.nz, 1, 1, generator=gen).to(device)
        measure = step % cfg.log_every == 0 or step == cfg.steps - 1

        # (1) Update D
        netD.zero_grad(set_to_none=True)
        with autocast:
            fake = ddp_G(noise)
            d_real, d_fake = bce(ddp_D(real), 1.0), bce(ddp_D(fake.detach()), 0.0)
            if cfg.variant == "symmetric":
                d_real_flip = bce(ddp_D(real.flip(-1)), 1.0)
                d_fake_flip = bce(ddp_D(fake.detach().flip(-1)), 0.0)
                errD = (d_real + d_fake + d_real_flip + d_fake_flip) / 4
            else:
                errD = d_real + d_fake
        errD.backward()
        optD.step()

        # (2) Update G
        netG.zero_grad(set_to_none=True)
        with autocast:
            g_orig = bce(netD(fake), 1.0)
            if cfg.variant == "symmetric":
                g_flip = bce(netD(fake.flip(-1)), 1.0)
                errG = (g_orig + g_flip) / 2
            else:
                errG = g_orig
        errG.backward()
        optG.step()
        images_seen += cfg.batch_size * world

        if measure and lead:
            if cfg.variant != "symmetric":  # the flip terms, measured, not optimised
                with torch.no_grad(), autocast:
                    d_real_flip = bce(netD(real.flip(-1)), 1.0)
                    d_fake_flip = bce(netD(fake.detach().flip(-1)), 0.0)
                    g_flip = bce(netD(fake.detach().flip(-1)), 1.0)
            values = (d_real, d_fake, g_orig, d_real_flip, d_fake_flip, g_flip)
            row = {name: round(v.item(), 5) for name, v in zip(LOSSES, values, strict=True)}
            row["d_loss_mean"] = round(sum(row[k] for k in LOSSES if k.startswith("d_")) / 4, 5)
            row["g_loss_mean"] = round((row["g_loss_orig"] + row["g_loss_flip"]) / 2, 5)
            with history.open("a") as f:
                f.write(json.dumps({"step": step, **row}) + "\n")
            if log_metrics:
                log_metrics(step, row)
        if lead and ((step + 1) % cfg.sample_every == 0 or step == cfg.steps - 1):
            with torch.no_grad():
                save_image_grid(netG.eval()(fixed_noise.to(device)),
                                out_dir / "samples" / f"step_{step + 1:06d}.png")
                netG.train()
        if lead and ((step + 1) % cfg.checkpoint_every == 0 or step == cfg.steps - 1):
            save_checkpoint(ckpt, step + 1, modules, optims, generators, asdict(cfg))
    wall = time.perf_counter() - t0
    if lead:
        torch.save(netG.state_dict(), out_dir / "generator.pt")
    if world > 1:
        dist.barrier()
    return {"family": "dcgan", "variant": cfg.variant, "steps": cfg.steps,
            "steps_run": cfg.steps - start, "resumed_from": start,
            "images_per_s": round(images_seen / wall, 2) if images_seen else 0.0,
            "wall_s": round(wall, 2), "device": device.type, "bf16": cfg.bf16,
            "world_size": world, "rank": rank,
            "final_losses": row, "out": str(out_dir)}


def load_generator(out_dir: Path, cfg: DCGANConfig) -> torch.nn.Module:
    """The trained generator of a run folder, on the CPU, in eval mode."""
    netG = define_G(cfg.nz, cfg.ngf)
    netG.load_state_dict(torch.load(Path(out_dir) / "generator.pt", map_location="cpu"))
    return netG.eval()


def load_discriminator(out_dir: Path, cfg: DCGANConfig) -> torch.nn.Module:
    """The final discriminator of a run folder (from its checkpoint), on the CPU, in eval mode."""
    netD = define_D(3, cfg.ndf)
    state = torch.load(Path(out_dir) / "checkpoint.pt", map_location="cpu", weights_only=False)
    netD.load_state_dict(state["modules"]["netD"])
    return netD.eval()


def symmetry_report(netG: torch.nn.Module, data: H5ImageDataset, nz: int, n: int = 256,
                    n_repair: int = 16, repair_steps: int = 100, seed: int = 0,
                    netD: torch.nn.Module | None = None
                    ) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """Symmetry error of real and generated images, the flip gap (with D), and flip-inversion
    repair on n_repair samples: (metrics, samples before, repaired after), in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    real = data.batch(torch.randint(0, len(data), (n,), generator=g))
    z = torch.randn(n, nz, 1, 1, generator=g)
    with torch.no_grad():
        fake = netG.eval()(z)
    z_hat, repaired, history = flip_inversion(netG, fake[:n_repair], z[:n_repair],
                                              steps=repair_steps)
    metrics = {
        "symmetry_error_real": symmetry_error(real),
        "symmetry_error_generated": symmetry_error(fake),
        # before/after on the same n_repair samples
        "symmetry_error_before_repair": symmetry_error(fake[:n_repair]),
        "symmetry_error_repaired": symmetry_error(repaired),
        "flip_inversion_reconstruction_error": mean_abs_error(repaired, fake[:n_repair].flip(-1)),
        "flip_inversion_objective_start": history[0],
        "flip_inversion_objective_end": history[-1],
    }
    if netD is not None:
        metrics["flip_gap"] = flip_gap(netD.eval(), fake)
    return {k: round(v, 5) for k, v in metrics.items()}, fake[:n_repair], repaired
