"""BiGAN with latent reconstruction, after "Toward better reconstruction of style images with
GANs": E, G and a joint D(x, z) at 64x64, z ~ U[-1, 1]^nz, one-sided label smoothing (0.9).

    L = L_GAN + λ1·L_AD + λ2·L_AE + λ3·L_H
    L_AD = ρ(z − E(G(z)))           latent reconstruction
    L_AE = ρ(x − G(E(x)))           pixel reconstruction
    L_H  = ρ(F(x) − F(G(E(x))))     reconstruction in a fixed feature network F's space
with ρ the pseudo-Huber penalty, γ = 0.05. The paper's experiments EX1–EX9 are λ1 ∈ {0.05, 1,
2.5} x {no other term, λ2 = 1, λ3 = 1}, in that order (EX1, EX4, EX7: L_AD alone). Every term
is logged for every preset (measured without gradients where its λ is 0). A seeded `holdout`
share of the images is never trained on; the reconstruction grids and errors use it.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from training.checkpoint import load_checkpoint, save_checkpoint
from training.config import GANConfig
from training.datasets import H5ImageDataset, holdout_split
from training.features import FEATURE_NETS, feature_net
from training.grids import reconstruction_grid, save_image_grid
from training.latent import sample_latent
from training.losses import bce, pseudo_huber
from training.metrics import flip_gap, mean_abs_error
from training.models.bigan import define_D, define_E, define_G
from training.runtime import average_gradients, init_distributed

PRESETS = {f"EX{3 * i + j + 1}": (l1, l2, l3)
           for i, l1 in enumerate((0.05, 1.0, 2.5))
           for j, (l2, l3) in enumerate(((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)))}
LOSSES = ("d_loss_real", "d_loss_fake", "g_loss_adv", "l_ad", "l_ae", "l_h", "loss_ge")


@dataclass
class BiGANConfig(GANConfig):
    preset: str = "EX6"
    lambda_ad: float | None = None  # λ1, λ2, λ3: the preset's unless given
    lambda_ae: float | None = None
    lambda_h: float | None = None
    gamma: float = 0.05  # pseudo-Huber
    real_label: float = 0.9  # one-sided label smoothing
    feature_net: str = "classifier"  # F of L_H: classifier (offline) or alexnet
    feature_weights: str = ""  # classifier: attribute_classifier.pt; alexnet: ImageNet file
    nef: int = 32
    holdout: float = 0.1

    PROFILES = {"demo": {}, "full": {**GANConfig.PROFILES["full"], "nef": 64}}

    @property
    def lambdas(self) -> tuple[float, float, float]:
        if self.preset not in PRESETS:
            raise ValueError(f"preset must be one of {list(PRESETS)}, got {self.preset!r}")
        given = (self.lambda_ad, self.lambda_ae, self.lambda_h)
        return tuple(p if g is None else g  # type: ignore[return-value]
                     for p, g in zip(PRESETS[self.preset], given, strict=True))


def sample_z(n: int, nz: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return sample_latent(n, nz, "uniform", generator)


def train_bigan(cfg: BiGANConfig, data_path: Path, out_dir: Path,
                log_metrics: Callable[[int, dict], None] | None = None) -> dict:
    """Train (or resume from out_dir/checkpoint.pt) and return a summary."""
    lambda_ad, lambda_ae, lambda_h = cfg.lambdas
    if cfg.feature_net not in FEATURE_NETS:
        raise ValueError(f"feature_net must be one of {FEATURE_NETS}, got {cfg.feature_net!r}")
    out_dir = Path(out_dir)
    (out_dir / "samples").mkdir(parents=True, exist_ok=True)
    (out_dir / "reconstructions").mkdir(exist_ok=True)
    rank, world, device = init_distributed()
    lead = rank == 0
    torch.manual_seed(cfg.seed)
    data = H5ImageDataset(data_path, seed=cfg.seed + rank)
    train_idx, test_idx = holdout_split(len(data), cfg.holdout,
                                        torch.Generator().manual_seed(cfg.seed))
    held_out = data.batch(test_idx[:32]).to(device)
    # F is needed to optimise L_H, and to measure it when a feature network is at hand
    feats = None
    if lambda_h > 0 or cfg.feature_net == "alexnet" or Path(cfg.feature_weights or "").is_file():
        feats = feature_net(cfg.feature_net, cfg.feature_weights or None,
                            cfg.feature_weights or None).to(device)
    netG = define_G(cfg.nz, cfg.ngf).to(device)
    netE = define_E(cfg.nz, cfg.nef).to(device)
    netD = define_D(cfg.nz, 3, cfg.ndf).to(device)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    for net in (netG, netE, netD):
        net.to(memory_format=memory_format)
    optD = torch.optim.Adam(netD.parameters(), lr=cfg.lr, betas=(cfg.beta1, 0.999))
    optGE = torch.optim.Adam([*netG.parameters(), *netE.parameters()], lr=cfg.lr,
                             betas=(cfg.beta1, 0.999))
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * rank)
    fixed_z = sample_z(64, cfg.nz, torch.Generator().manual_seed(1))
    modules = {"netG": netG, "netE": netE, "netD": netD}
    optims = {"optD": optD, "optGE": optGE}
    generators = {"gen": gen}
    ckpt = out_dir / "checkpoint.pt"
    start = load_checkpoint(ckpt, modules, optims, generators) if ckpt.exists() else 0
    if world > 1:
        gen.manual_seed(cfg.seed + 1000 * rank + start)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16)
    history = out_dir / "losses.jsonl"
    t0, images_seen = time.perf_counter(), 0
    row: dict = {}
    for step in range(start, cfg.steps):
        idx = train_idx[torch.randint(0, len(train_idx), (cfg.batch_size,), generator=gen)]
        x = data.batch(idx).to(device, memory_format=memory_format)
        z = sample_z(cfg.batch_size, cfg.nz, gen).to(device)
        measure = step % cfg.log_every == 0 or step == cfg.steps - 1

        # (1) Update D: (x, E(x)) is "real" (smoothed label), (G(z), z) is fake
        netD.zero_grad(set_to_none=True)
        with autocast:
            fake, z_hat = netG(z), netE(x)
            d_real = bce(netD(x, z_hat.detach()), cfg.real_label)
            d_fake = bce(netD(fake.detach(), z), 0.0)
            errD = d_real + d_fake
        errD.backward()
        average_gradients(netD)
        optD.step()

        # (2) Update G and E together: fool D both ways, plus the reconstruction penalties
        netG.zero_grad(set_to_none=True)
        netE.zero_grad(set_to_none=True)
        with autocast:
            g_adv = bce(netD(fake, z), 1.0) + bce(netD(x, z_hat), 0.0)
            errGE = g_adv
            terms = {}
            if lambda_ad > 0:
                terms["l_ad"] = pseudo_huber(z - netE(fake), cfg.gamma)
                errGE = errGE + lambda_ad * terms["l_ad"]
            if lambda_ae > 0 or lambda_h > 0:
                recon = netG(z_hat)
                if lambda_ae > 0:
                    terms["l_ae"] = pseudo_huber(x - recon, cfg.gamma)
                    errGE = errGE + lambda_ae * terms["l_ae"]
                if lambda_h > 0:
                    terms["l_h"] = pseudo_huber(feats(x) - feats(recon), cfg.gamma)
                    errGE = errGE + lambda_h * terms["l_h"]
        errGE.backward()
        average_gradients(netG, netE)
        optGE.step()
        images_seen += cfg.batch_size * world

        if measure and lead:
            with torch.no_grad(), autocast:  # the terms this preset does not optimise
                if "l_ad" not in terms:
                    terms["l_ad"] = pseudo_huber(z - netE(fake), cfg.gamma)
                if "l_ae" not in terms or ("l_h" not in terms and feats is not None):
                    recon = netG(z_hat)
                    terms.setdefault("l_ae", pseudo_huber(x - recon, cfg.gamma))
                    if feats is not None:
                        terms.setdefault("l_h", pseudo_huber(feats(x) - feats(recon),
                                                             cfg.gamma))
            values = {"d_loss_real": d_real, "d_loss_fake": d_fake, "g_loss_adv": g_adv,
                      **terms, "loss_ge": errGE}
            row = {k: round(v.item(), 5) for k, v in values.items()}
            with history.open("a") as f:
                f.write(json.dumps({"step": step, **row}) + "\n")
            if log_metrics:
                log_metrics(step, row)
        if lead and ((step + 1) % cfg.sample_every == 0 or step == cfg.steps - 1):
            netG.eval(), netE.eval()
            with torch.no_grad():
                save_image_grid(netG(fixed_z.to(device)),
                                out_dir / "samples" / f"step_{step + 1:06d}.png")
                reconstruction_grid(held_out, netG(netE(held_out)),
                                    out_dir / "reconstructions" / f"step_{step + 1:06d}.png")
            netG.train(), netE.train()
        if lead and ((step + 1) % cfg.checkpoint_every == 0 or step == cfg.steps - 1):
            save_checkpoint(ckpt, step + 1, modules, optims, generators, asdict(cfg))
    wall = time.perf_counter() - t0
    summary = {"family": "bigan", "preset": cfg.preset,
               "lambdas": dict(zip(("ad", "ae", "h"), (lambda_ad, lambda_ae, lambda_h),
                                   strict=True)),
               "steps": cfg.steps, "steps_run": cfg.steps - start, "resumed_from": start,
               "images_per_s": round(images_seen / wall, 2) if images_seen else 0.0,
               "wall_s": round(wall, 2), "device": device.type, "bf16": cfg.bf16,
               "world_size": world, "rank": rank, "final_losses": row, "out": str(out_dir)}
    if lead:
        torch.save(netG.state_dict(), out_dir / "generator.pt")
        torch.save(netE.state_dict(), out_dir / "encoder.pt")
        summary.update(reconstruction_report(netG, netE, netD, data.batch(test_idx), cfg.nz,
                                             seed=cfg.seed))
        with torch.no_grad():
            reconstruction_grid(held_out.cpu(), netG.cpu()(netE.cpu()(held_out.cpu())),
                                out_dir / "reconstruction.png")
    if world > 1:
        torch.distributed.barrier()
    return summary


@torch.no_grad()
def reconstruction_report(netG: torch.nn.Module, netE: torch.nn.Module,
                          netD: torch.nn.Module | None, held_out: torch.Tensor, nz: int,
                          n: int = 256, seed: int = 0) -> dict[str, float]:
    """Held-out pixel reconstruction error mean |x − G(E(x))|, latent reconstruction error
    mean |z − E(G(z))|, and (with D) the flip gap, on the CPU in fp32."""
    netG, netE = netG.float().cpu().eval(), netE.float().cpu().eval()
    held_out = held_out.float().cpu().contiguous()
    z = sample_z(n, nz, torch.Generator().manual_seed(seed))
    fake = netG(z)
    report = {"reconstruction_error_pixel": mean_abs_error(held_out, netG(netE(held_out))),
              "reconstruction_error_latent": mean_abs_error(z, netE(fake)),
              "held_out_images": float(len(held_out))}
    if netD is not None:
        netD = netD.float().cpu().eval()
        report["flip_gap"] = flip_gap(lambda images: netD(images, z), fake)
    return {k: round(v, 5) for k, v in report.items()}


def load_networks(out_dir: Path, cfg: BiGANConfig) -> tuple[torch.nn.Module, torch.nn.Module]:
    """The trained (generator, encoder) of a run folder, on the CPU, in eval mode."""
    netG, netE = define_G(cfg.nz, cfg.ngf), define_E(cfg.nz, cfg.nef)
    netG.load_state_dict(torch.load(Path(out_dir) / "generator.pt", map_location="cpu"))
    netE.load_state_dict(torch.load(Path(out_dir) / "encoder.pt", map_location="cpu"))
    return netG.eval(), netE.eval()
