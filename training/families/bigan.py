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

Options from the paper, each off by default (the defaults train exactly as before):
- `latent_loss="l_ad_prime"`: λ1 weighs L′_AD = ρ(E(x) − E(G(E(x)))) instead of L_AD: the
  latent reconstruction of real images' codes, cycled through G (the target E(x) is held
  fixed, as z is in L_AD, so E cannot lower the penalty by shrinking its codes). This is our
  reading of the paper's equation 7; its exact form was not verified against the paper's text.
  Both terms are logged then (`l_ad` measured without gradients).
- `unroll_steps=k`: G and E are updated against D unrolled k steps ahead (Metz et al., 2017):
  D's weights and optimiser state are copied, D takes k more steps on the current batch, G/E's
  loss is taken against that D, and D is restored (its weights and Adam state exactly; its
  batch-norm running statistics to before the unrolled steps, so G's passes through the
  unrolled D do not feed them). First-order: the gradient does not flow through D's unrolled
  updates. Cost: k extra D forward/backward passes and a state copy per
  step, so roughly (1 + k) times D's share of a step.
- `bn_momentum=0.03`: the paper's batch-norm decay 0.97 (PyTorch momentum = 1 − decay) in
  every batch norm of G, E and D.
- `normalize_features=True`: L_H compares ℓ2-normalised features F(x)/‖F(x)‖ per image, so its
  size no longer depends on F's output scale (the paper's normalised AlexNet pool5).
"""

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from training.checkpoint import load_plain
from training.config import GANConfig
from training.datasets import H5ImageDataset, holdout_split
from training.family import Family, option, register
from training.features import FEATURE_NETS, feature_net
from training.grids import reconstruction_grid
from training.latent import sample_latent
from training.losses import bce, pseudo_huber
from training.metrics import flip_gap, mean_abs_error
from training.models.bigan import define_D, define_E, define_G

PRESETS = {f"EX{3 * i + j + 1}": (l1, l2, l3)
           for i, l1 in enumerate((0.05, 1.0, 2.5))
           for j, (l2, l3) in enumerate(((0.0, 0.0), (1.0, 0.0), (0.0, 1.0)))}
LOSSES = ("d_loss_real", "d_loss_fake", "g_loss_adv", "l_ad", "l_ae", "l_h", "loss_ge")
LATENT_LOSSES = ("l_ad", "l_ad_prime")


@dataclass
class BiGANConfig(GANConfig):
    preset: str = option("EX6", "the paper's experiments: λ1 ∈ {0.05, 1, 2.5} x "
                         "{-, λ2 = 1, λ3 = 1}", choices=tuple(PRESETS))
    lambda_ad: float | None = option(None, "λ1 (latent), overrides the preset", ge=0)
    lambda_ae: float | None = option(None, "λ2 (pixels), overrides the preset", ge=0)
    lambda_h: float | None = option(None, "λ3 (features), overrides the preset", ge=0)
    gamma: float = option(0.05, "the pseudo-Huber penalty's γ", gt=0)
    real_label: float = option(0.9, "one-sided label smoothing of D's real target", gt=0, le=1)
    feature_net: str = option("classifier", "F of L_H: the attribute classifier (offline) or "
                              "AlexNet pool5", choices=FEATURE_NETS)
    feature_weights: str = option("", "classifier: attribute_classifier.pt; alexnet: a local "
                                  "ImageNet weights file (else torchvision's download)")
    nef: int = option(32, "encoder width", ge=1)
    holdout: float = option(0.1, "share of the images never trained on", gt=0, lt=1)
    latent_loss: str = option("l_ad", "the term λ1 weighs: l_ad = ρ(z − E(G(z))), or "
                              "l_ad_prime = ρ(E(x) − E(G(E(x)))) (our reading of the paper's "
                              "eq. 7)", choices=LATENT_LOSSES)
    unroll_steps: int = option(0, "D steps G/E look ahead (unrolled GAN; 0 = off); each costs "
                               "one more D forward/backward per step", ge=0, le=20)
    bn_momentum: float = option(0.1, "batch-norm momentum of G, E, D (1 − decay: the paper's "
                                "decay 0.97 is 0.03)", gt=0, le=1)
    normalize_features: bool = option(False, "ℓ2-normalise F's features per image before L_H")

    PROFILES = {"demo": {}, "full": {**GANConfig.PROFILES["full"], "nef": 64}}

    @property
    def lambdas(self) -> tuple[float, float, float]:
        given = (self.lambda_ad, self.lambda_ae, self.lambda_h)
        return tuple(p if g is None else g  # type: ignore[return-value]
                     for p, g in zip(PRESETS[self.preset], given, strict=True))


def sample_z(n: int, nz: int, generator: torch.Generator | None = None) -> torch.Tensor:
    return sample_latent(n, nz, "uniform", generator)


@register
class BiGAN(Family):
    """BiGAN 64x64 with latent reconstruction (EX1-EX9), z ~ U[-1, 1]."""

    name = "bigan"
    Config = BiGANConfig
    losses = LOSSES
    latent = "uniform"
    in_demo = False  # 5 min on a slow 2-core CPU (L_H through the classifier): train_job only
    grid_names = ("samples", "reconstructions")

    @classmethod
    def check(cls, cfg: BiGANConfig, data: H5ImageDataset) -> None:
        if data.image_size != 64 or data.channels != 3:
            raise ValueError(f"bigan trains on 64x64 RGB images; the data is "
                             f"{data.image_size}x{data.image_size}x{data.channels}")
        if cfg.lambdas[2] > 0 and cfg.feature_net == "classifier" and not cfg.feature_weights:
            raise ValueError("lambda_h > 0 with feature_net classifier needs feature_weights "
                             "(models/attribute_classifier.pt)")

    @classmethod
    def from_store(cls, cfg: BiGANConfig, store) -> BiGANConfig:
        """L_H's classifier feature network defaults to the store's attribute classifier."""
        if cfg.feature_net == "classifier" and not cfg.feature_weights:
            return replace(cfg, feature_weights=str(store.attribute_classifier))
        return cfg

    def build(self) -> None:
        cfg = self.cfg
        self.lambda_ad, self.lambda_ae, self.lambda_h = cfg.lambdas
        self.train_idx, self.test_idx = holdout_split(
            len(self.data), cfg.holdout, torch.Generator().manual_seed(cfg.seed))
        self.held_out = self.data.batch(self.test_idx[:32]).to(self.device)
        # F is needed to optimise L_H, and to measure it when a feature network is at hand
        self.feats = None
        if (self.lambda_h > 0 or cfg.feature_net == "alexnet"
                or Path(cfg.feature_weights or "").is_file()):
            self.feats = feature_net(cfg.feature_net, cfg.feature_weights or None,
                                     cfg.feature_weights or None).to(self.device)
        self.netG = self.to_device(define_G(cfg.nz, cfg.ngf, bn_momentum=cfg.bn_momentum))
        self.netE = self.to_device(define_E(cfg.nz, cfg.nef, bn_momentum=cfg.bn_momentum))
        self.netD = self.to_device(define_D(cfg.nz, 3, cfg.ndf, bn_momentum=cfg.bn_momentum))
        self.modules = {"netG": self.netG, "netE": self.netE, "netD": self.netD}
        self.optimizers = {"optD": self.adam(self.netD),
                           "optGE": self.adam(self.netG, self.netE)}
        self.fixed_z = sample_z(64, cfg.nz, torch.Generator().manual_seed(1))

    def train_index(self) -> torch.Tensor:
        return self.train_idx

    def step(self, x, labels, gen, measure):
        cfg, netG, netE, netD, feats = self.cfg, self.netG, self.netE, self.netD, self.feats
        z = sample_z(cfg.batch_size, cfg.nz, gen).to(self.device)

        # (1) Update D: (x, E(x)) is "real" (smoothed label), (G(z), z) is fake
        with self.autocast:
            fake, z_hat = netG(z), netE(x)
            d_real, d_fake = self.d_losses(x, z_hat.detach(), fake.detach(), z)
            errD = d_real + d_fake
        self.update("optD", errD)
        saved = self.unroll(x, z_hat.detach(), fake.detach(), z) if cfg.unroll_steps else None

        # (2) Update G and E together: fool D both ways, plus the reconstruction penalties
        latent = cfg.latent_loss  # "l_ad" or "l_ad_prime": the term λ1 weighs
        with self.autocast:
            g_adv = bce(netD(fake, z), 1.0) + bce(netD(x, z_hat), 0.0)
            errGE = g_adv
            terms = {}
            if self.lambda_ad > 0 and latent == "l_ad":
                terms["l_ad"] = pseudo_huber(z - netE(fake), cfg.gamma)
                errGE = errGE + self.lambda_ad * terms["l_ad"]
            if self.lambda_ae > 0 or self.lambda_h > 0 or (self.lambda_ad > 0
                                                           and latent == "l_ad_prime"):
                recon = netG(z_hat)
                if self.lambda_ad > 0 and latent == "l_ad_prime":
                    terms["l_ad_prime"] = pseudo_huber(z_hat.detach() - netE(recon), cfg.gamma)
                    errGE = errGE + self.lambda_ad * terms["l_ad_prime"]
                if self.lambda_ae > 0:
                    terms["l_ae"] = pseudo_huber(x - recon, cfg.gamma)
                    errGE = errGE + self.lambda_ae * terms["l_ae"]
                if self.lambda_h > 0:
                    terms["l_h"] = self.feature_loss(x, recon)
                    errGE = errGE + self.lambda_h * terms["l_h"]
        self.update("optGE", errGE)
        if saved is not None:  # D goes back to where its own update left it
            netD.load_state_dict(saved[0])
            self.optimizers["optD"].load_state_dict(saved[1])

        if not measure:
            return {}
        with torch.no_grad(), self.autocast:  # the terms this preset does not optimise
            if "l_ad" not in terms:
                terms["l_ad"] = pseudo_huber(z - netE(fake), cfg.gamma)
            if "l_ae" not in terms or ("l_h" not in terms and feats is not None) or (
                    latent == "l_ad_prime" and "l_ad_prime" not in terms):
                recon = netG(z_hat)
                terms.setdefault("l_ae", pseudo_huber(x - recon, cfg.gamma))
                if feats is not None:
                    terms.setdefault("l_h", self.feature_loss(x, recon))
                if latent == "l_ad_prime":
                    terms.setdefault("l_ad_prime", pseudo_huber(z_hat - netE(recon), cfg.gamma))
        return {"d_loss_real": d_real, "d_loss_fake": d_fake, "g_loss_adv": g_adv, **terms,
                "loss_ge": errGE}

    def d_losses(self, x, z_hat, fake, z) -> tuple[torch.Tensor, torch.Tensor]:
        """D's BCE on (x, E(x)) as real (smoothed) and (G(z), z) as fake, inputs detached."""
        return (bce(self.netD(x, z_hat), self.cfg.real_label),
                bce(self.netD(fake, z), 0.0))

    def unroll(self, x, z_hat, fake, z) -> tuple[dict, dict]:
        """Take cfg.unroll_steps more D steps on this batch; returns D's and its optimiser's
        state from before them, for step() to restore once G and E have been updated."""
        saved = (copy.deepcopy(self.netD.state_dict()),
                 copy.deepcopy(self.optimizers["optD"].state_dict()))
        for _ in range(self.cfg.unroll_steps):
            with self.autocast:
                d_real, d_fake = self.d_losses(x, z_hat, fake, z)
            self.update("optD", d_real + d_fake)
        return saved

    def feature_loss(self, x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
        """L_H = ρ(F(x) − F(G(E(x)))), on ℓ2-normalised features with normalize_features."""
        return feature_penalty(self.feats, x, recon, self.cfg.gamma,
                               self.cfg.normalize_features)

    def grids(self):
        return {"samples": self.netG(self.fixed_z.to(self.device)),
                "reconstructions": self.recon_grid(self.held_out)}

    def recon_grid(self, originals: torch.Tensor) -> torch.Tensor:
        """Rows of 8 held-out originals, each followed by the row of their reconstructions."""
        recon = self.netG(self.netE(originals))
        return torch.cat([t for i in range(0, len(originals), 8)
                          for t in (originals[i:i + 8], recon[i:i + 8])])

    def finish(self, out_dir: Path) -> dict:
        out_dir = Path(out_dir)
        torch.save(self.netG.state_dict(), out_dir / "generator.pt")
        torch.save(self.netE.state_dict(), out_dir / "encoder.pt")
        summary = {"preset": self.cfg.preset,
                   "lambdas": dict(zip(("ad", "ae", "h"),
                                       (self.lambda_ad, self.lambda_ae, self.lambda_h),
                                       strict=True))}
        summary.update(reconstruction_report(self.netG, self.netE, self.netD,
                                             self.data.batch(self.test_idx), self.cfg.nz,
                                             seed=self.cfg.seed))
        held_out = self.held_out.cpu()
        with torch.no_grad():
            reconstruction_grid(held_out, self.netG(self.netE(held_out)),
                                out_dir / "reconstruction.png")
        return summary

    def sampler(self):
        return self.netG

    def registry_tags(self):
        return {**super().registry_tags(), "variant": self.cfg.preset}

    def report(self, out_dir, summary):
        keys = ("reconstruction_error_pixel", "reconstruction_error_latent", "flip_gap")
        return ({k: summary[k] for k in keys if k in summary},
                {"reconstruction": [Path(out_dir) / "reconstruction.png"]})


def feature_penalty(feats: torch.nn.Module, x: torch.Tensor, recon: torch.Tensor,
                    gamma: float, normalize: bool = False) -> torch.Tensor:
    """ρ(F(x) − F(recon)); with `normalize`, each image's feature vector is ℓ2-normalised
    first, so the penalty does not depend on the scale of F's output."""
    a, b = feats(x), feats(recon)
    if normalize:
        a, b = F.normalize(a.float().flatten(1), dim=1), F.normalize(b.float().flatten(1), dim=1)
    return pseudo_huber(a - b, gamma)


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
    netG = define_G(cfg.nz, cfg.ngf, bn_momentum=cfg.bn_momentum)
    netE = define_E(cfg.nz, cfg.nef, bn_momentum=cfg.bn_momentum)
    netG.load_state_dict(load_plain(Path(out_dir) / "generator.pt", "BiGAN generator file"))
    netE.load_state_dict(load_plain(Path(out_dir) / "encoder.pt", "BiGAN encoder file"))
    return netG.eval(), netE.eval()
