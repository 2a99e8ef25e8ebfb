"""infoGAN (Chen et al., 2016) on the classic collection's backbones: G's input carries codes
c besides the noise, and a head Q on D's features predicts them back from G(z, c); both G and
Q minimise the mutual-information loss, the variational bound L_I's negative,

    L_info = λ_cat · CE(Q_cat(G(z, c)), c_cat) + λ_cont · L_cont(Q_cont(G(z, c)), c_cont)

with L_cont the MSE to Q's means (`continuous_loss` mse: a Gaussian of fixed variance, as the
collection) or the Gaussian NLL of Q's means and log-variances (gaussian: the paper's factored
Gaussian). λ_cat = 1 as the paper (the demo profile: 0.2); the paper uses "a smaller λ" for
continuous codes, 0.1 here.
One step: (1) D and Q (they share D's layers, so one optimiser) minimise the GAN's D loss +
L_info on the fake batch; (2) G minimises its non-saturating loss + L_info. (The collection
steps a third Adam over G and D on L_info alone; folding L_info into both updates is the
paper's min_{G,Q} max_D V − λ·L_I with no third set of moments, and needs no second forward.)

Two modes:
- unsupervised (kind `sampler`, the default): a categorical code of `n_categorical` (10)
  classes and `n_continuous` (2) codes ~ U[-1, 1]; G's input is z = [noise (nz) | one-hot
  code | continuous codes], exactly the latent `infogan:<nz>:<cat>:<cont>` that
  training.latent.sample_latent draws, so the registry tags are latent = that string and
  nz = nz + cat + cont, with no label tags.
- supervised by a label column (`label_column`, e.g. category; `class` for Fashion-MNIST;
  kind `conditional`): the categorical code is that column's classes and is given by the real
  batch's labels (the collection's SUPERVISED mode), and Q is also trained to classify the
  real images into their labels (weight `lambda_supervised`; 0 gives the collection's mode
  exactly), which ties code k to the column's k-th value. Then the code is a condition, not a
  draw from the prior, so the sampler follows training/latent.py's conditional convention: its
  input is z from the latent `infogan:<nz>:0:<cont>` (noise, then continuous codes; nz tag =
  nz + cont) FOLLOWED by the one-hot of the label, and the tags add label_columns (the
  column), label_sizes (its class count) and label_values; `sampler_inputs(n, tags)` builds
  exactly G's input. Only images with a known label are trained on (the number dropped is in
  the summary). The class attribute `kind` says `sampler` (the registry is per family); a
  supervised run's registry tags and summary say `conditional`.
"""

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from training.classic import R1_DEMO, ClassicConfig, ClassicGAN, detached
from training.families.cgan import LabelConditioned
from training.family import option, register
from training.losses import bce
from training.models.classic import define_D

CONTINUOUS_LOSSES = ("mse", "gaussian")


@dataclass
class InfoGANConfig(ClassicConfig):
    n_categorical: int = option(10, "classes of the categorical code (unsupervised; with "
                                "label_column the column's classes)", ge=0)
    n_continuous: int = option(2, "continuous codes ~ U[-1, 1]", ge=0)
    label_column: str = option("", "a label column supervising the categorical code (e.g. "
                               "category; class for Fashion-MNIST); empty: unsupervised")
    lambda_cat: float = option(1.0, "λ of the categorical code's information loss (the "
                               "paper's 1)", ge=0)
    lambda_cont: float = option(0.1, "λ of the continuous codes' information loss (the paper: "
                                "smaller than for discrete codes)", ge=0)
    lambda_supervised: float = option(1.0, "weight of Q's classification of the real images "
                                      "(supervised mode; 0: the collection's)", ge=0)
    continuous_loss: str = option("mse", "mse (Q's means, fixed variance: the collection) or "
                                  "gaussian (Q's means and log-variances: the paper's NLL)",
                                  choices=CONTINUOUS_LOSSES)

    # the demo: GAN's small-data recipe (R1_DEMO) with λ_cat 0.2, which meets the small-data
    # targets where the paper's λ_cat 1 loses recall (0.16), while Q still recovers the code
    # (cross-entropy 0.11 nats of log 10 = 2.30; benchmarks/README.md, "Small-data targets")
    PROFILES = {**ClassicConfig.PROFILES, "demo": {**R1_DEMO, "lambda_cat": 0.2}}


@register
class InfoGAN(LabelConditioned, ClassicGAN):
    """infoGAN: categorical + continuous codes, Q head on D; a label column may supervise."""

    name = "infogan"
    kind = "sampler"  # "conditional" for a run supervised by a label column (see above)
    latent = "infogan:62:10:2"  # the default config's; each run's is set in __init__
    Config = InfoGANConfig
    losses = ("d_loss", "g_loss", "info_loss", "info_cat", "info_cont")

    def __init__(self, cfg: InfoGANConfig, data: Any, device: torch.device):
        super().__init__(cfg, data, device)
        if self.supervised:
            self.kind = "conditional"
        self.latent = f"infogan:{cfg.nz}:{0 if self.supervised else self.n_cat}:" \
                      f"{cfg.n_continuous}"

    @classmethod
    def conditioning_columns(cls, cfg: InfoGANConfig) -> tuple[str, ...]:
        return (cfg.label_column,) if cfg.label_column else ()

    @classmethod
    def check(cls, cfg: InfoGANConfig, data: Any) -> None:
        super().check(cfg, data)
        n_cat = (len(data.label_values[cfg.label_column]) if cfg.label_column
                 else cfg.n_categorical)
        if n_cat == 1:
            raise ValueError("infogan: a categorical code of one class carries no information; "
                             "n_categorical must be 0 or at least 2")
        if n_cat == 0 and cfg.n_continuous == 0:
            raise ValueError("infogan needs a code: n_categorical or n_continuous above 0 "
                             "(or a label_column)")

    # ----- codes -------------------------------------------------------------------------------
    @property
    def supervised(self) -> bool:
        return bool(self.cfg.label_column)

    @property
    def n_cat(self) -> int:
        return self.label_sizes[0] if self.supervised else self.cfg.n_categorical

    @property
    def latent_dim(self) -> int:
        """noise + categorical + continuous (supervised: the one-hot is the condition)."""
        return self.cfg.nz + (0 if self.supervised else self.n_cat) + self.cfg.n_continuous

    def build_D(self):
        cfg = self.cfg
        per_cont = 2 if cfg.continuous_loss == "gaussian" else 1
        return define_D(cfg.backbone, self.image_size, self.channels, cfg.ndf,
                        norm=cfg.d_norm, q_outputs=self.n_cat + per_cont * cfg.n_continuous)

    def codes(self, z: torch.Tensor, labels: torch.Tensor | None
              ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """(G's input, categorical targets (B,) or None, continuous targets (B, cont)) from z
        as sample_latent draws it (and the labels, when supervised)."""
        nz, n_cat, n_cont = self.cfg.nz, self.n_cat, self.cfg.n_continuous
        flat = z.flatten(1)
        cont = flat[:, flat.shape[1] - n_cont:]
        if self.supervised:
            return self.generator_input(z, labels), labels[:, 0], cont
        cat = flat[:, nz:nz + n_cat].argmax(1) if n_cat else None
        return z, cat, cont

    def information(self, q: torch.Tensor, cat: torch.Tensor | None, cont: torch.Tensor
                    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(categorical CE, continuous MSE or Gaussian NLL) of Q's outputs, in fp32."""
        q = q.float()
        n_cat, n_cont = self.n_cat, self.cfg.n_continuous
        zero = q.new_zeros(())
        l_cat = F.cross_entropy(q[:, :n_cat], cat) if cat is not None else zero
        if not n_cont:
            return l_cat, zero
        mean = q[:, n_cat:n_cat + n_cont]
        if self.cfg.continuous_loss == "mse":
            return l_cat, F.mse_loss(mean, cont)
        log_var = q[:, n_cat + n_cont:].clamp(-10, 10)
        return l_cat, F.gaussian_nll_loss(mean, cont, log_var.exp())

    # ----- training ----------------------------------------------------------------------------
    def step(self, real, labels, gen, measure):
        cfg, netG, netD = self.cfg, self.netG, self.D
        g_in, cat, cont = self.codes(self.sample_z(len(real), gen), labels)
        row = {}

        # (1) Update D and Q: real/fake, and recover the codes of the fake batch
        with self.autocast:
            fake = netG(g_in)
            (s_real, _, q_real), (s_fake, _, q_fake) = self.both(netD.heads, real, fake.detach())
            d_adv = bce(s_real, 1.0) + bce(s_fake, 0.0) + self.r1(real)
            l_cat, l_cont = self.information(q_fake, cat, cont)
            errD = d_adv + cfg.lambda_cat * l_cat + cfg.lambda_cont * l_cont
            if self.supervised:
                row["class_loss_real"] = F.cross_entropy(q_real[:, :self.n_cat].float(),
                                                         labels[:, 0])
                errD = errD + cfg.lambda_supervised * row["class_loss_real"]
        self.update("optD", errD)

        # (2) Update G: look real, and keep the codes recoverable
        with self.autocast:
            s_gen, _, q_gen = netD.heads(fake)
            g_adv = bce(s_gen, 1.0)
            l_cat, l_cont = self.information(q_gen, cat, cont)
            info = cfg.lambda_cat * l_cat + cfg.lambda_cont * l_cont
            errG = g_adv + info
        self.update("optG", errG)
        return detached({"d_loss": d_adv, "g_loss": g_adv, "info_loss": info,
                         "info_cat": l_cat, "info_cont": l_cont, **row})

    def finish(self, out_dir):
        return {**super().finish(out_dir), "kind": self.kind, "latent": self.latent}
