"""Fader networks (Lample et al., 2017): an encoder-decoder whose latent code is made blind to
an attribute by a latent discriminator, so the decoder takes the attribute as a slider, on the
packshots (datasets/packshots.h5, the catalogue's one-hot labels).

E: 4x4 stride-2 convs (batch norm from the second, LeakyReLU 0.2), widths ngf, 2ngf, ... capped
at max_fm, down to a 4x4 code (the paper's 256 px -> 4x4 in 6 layers; 4 at 64 px). Dec:
mirrored 4x4 stride-2 transposed convs (batch norm + ReLU, tanh last), the attribute vector y
(one one-hot per label column, any mix of them as a slider) tiled and concatenated to every
layer's input. The latent discriminator continues E's convs to 1x1, then dropout 0.3 and
Linear-LeakyReLU-Linear to one softmax per column. Per step, as the paper's trainer:
    (1) latent discriminator (E frozen, in eval mode): minimise CE(Dis(E(x)), y)
    (2) autoencoder (Dis in eval mode):
        minimise λ_ae ‖Dec(E(x), y) − x‖² + λ_dis(t) CE(Dis(E(x)), ỹ)
with ỹ another value than y drawn per column (E learns to make Dis wrong), λ_ae 1, λ_dis
ramped linearly from 0 to 1e-4 over the first `lambda_schedule` steps (the paper's 500k of
~1.5M iterations: a third of training, which the profiles keep), Adam(2e-4, (0.5, 0.999)),
gradients clipped to norm 5.

The translator is Dec(E(x), y): (image, attribute vector). Measured like StarGAN
(stargan.AttributeEditor, the same options and held-out products): per (column, kept value)
edit success and preservation of the other attributes, and the identity L1 (the reconstruction
with the image's own attributes). The report's sheet is one held-out product per row: input,
reconstruction, the slider between two values of the first column (the one-hots and three
mixtures between), then every other kept value.
"""

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from training.families.cgan import as_columns, class_accuracy, class_loss
from training.families.stargan import AttributeConfig, AttributeEditor, kept_values
from training.family import Family, option, register
from training.translation_metrics import translate, translation_grid

SLIDER_MIX = (0.25, 0.5, 0.75)  # the sheet's mixtures between the slider's two values


@dataclass
class FaderConfig(AttributeConfig):
    label_columns: list[str] = option(["color"], "label columns the latent code is made blind "
                                      "to, each a slider (color, pattern, sleeve_length, ...)")
    lr: float = option(2e-4, "Adam learning rate of the autoencoder and the latent "
                       "discriminator (the paper's 2e-4)", gt=0)
    max_fm: int = option(512, "widest feature map of the encoder and the latent "
                         "discriminator (the paper's 512)", ge=1)
    hid_dim: int = option(512, "hidden units of the latent discriminator's MLP", ge=1)
    dis_dropout: float = option(0.3, "dropout before the latent discriminator's MLP", ge=0, lt=1)
    lambda_ae: float = option(1.0, "weight of the reconstruction MSE", ge=0)
    lambda_dis: float = option(1e-4, "final weight of the latent discriminator's term in the "
                               "autoencoder's loss (the paper's 1e-4)", ge=0)
    lambda_schedule: int = option(333, "steps over which λ_dis ramps from 0 (0: from the "
                                  "start)", ge=0)
    clip_grad_norm: float = option(5.0, "gradient norm clip of both updates (0: none)", ge=0)
    slider: list[str] = option([], "two kept values of the first column the sheet slides "
                               "between (e.g. black,white); empty: its first two")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.slider = as_columns(self.slider)

    # demo: batch 4 (2 batches of every kept colour on the demo store), widths 16-128, about
    # 1 min on an idle 2-core CPU (~0.05-0.065 s a step, against the classic GAN's step).
    # full: the paper's (batch 32, init_fm 32, max_fm 512, λ_dis ramped over 500k of 1.5M
    # iterations) at the store's size
    PROFILES = {"demo": {"steps": 1000, "batch_size": 4, "ngf": 16, "lambda_schedule": 333,
                         "log_every": 10, "sample_every": 500, "checkpoint_every": 500},
                "full": {"steps": 1500000, "batch_size": 32, "ngf": 32,
                         "lambda_schedule": 500000, "log_every": 100, "sample_every": 10000,
                         "checkpoint_every": 10000}}


def widths(ngf: int, max_fm: int, n: int) -> list[int]:
    """ngf, 2ngf, 4ngf, ... capped at max_fm: n layers' output widths."""
    return [min(ngf * 2 ** i, max_fm) for i in range(n)]


def down(n_in: int, n_out: int, norm: bool) -> nn.Sequential:
    """The encoder's layer: 4x4 stride-2 conv, batch norm (not on the first), LeakyReLU 0.2."""
    return nn.Sequential(nn.Conv2d(n_in, n_out, 4, 2, 1),
                         *([nn.BatchNorm2d(n_out)] if norm else []), nn.LeakyReLU(0.2))


class FaderAutoEncoder(nn.Module):
    """E to a 4x4 code and Dec with y tiled into every layer; forward(x, y) = Dec(E(x), y)."""

    def __init__(self, nc: int, ngf: int, max_fm: int, image_size: int, cond_dim: int):
        super().__init__()
        n = int(round(math.log2(image_size))) - 2
        w = widths(ngf, max_fm, n)
        self.encoder = nn.Sequential(*[down(a, b, i > 0) for i, (a, b)
                                       in enumerate(zip([nc, *w[:-1]], w, strict=True))])
        self.decoder = nn.ModuleList()
        for i in reversed(range(n)):  # mirrored: w[i] + y -> w[i-1] (nc, tanh, last)
            n_out = w[i - 1] if i else nc
            layer: list[nn.Module] = [nn.ConvTranspose2d(w[i] + cond_dim, n_out, 4, 2, 1,
                                                         bias=False)]
            layer += [nn.BatchNorm2d(n_out), nn.ReLU()] if i else [nn.Tanh()]
            self.decoder.append(nn.Sequential(*layer))
        self.code_width = w[-1]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = z
        for layer in self.decoder:
            maps = y.to(h.dtype).view(h.shape[0], -1, 1, 1).expand(-1, -1, *h.shape[-2:])
            h = layer(torch.cat([h, maps], 1))
        return h

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), y)


class LatentDiscriminator(nn.Module):
    """E's layers continued from the 4x4 code to 1x1 (batch norm, LeakyReLU 0.2), dropout,
    Linear-LeakyReLU-Linear to the attribute logits (cond_dim: one softmax per column)."""

    def __init__(self, code_width: int, ngf: int, max_fm: int, code_layers: int,
                 hid_dim: int, cond_dim: int, dropout: float):
        super().__init__()
        w = widths(ngf, max_fm, code_layers + 2)[code_layers:]
        self.conv = nn.Sequential(down(code_width, w[0], True), down(w[0], w[1], True))
        self.proj = nn.Sequential(nn.Dropout(dropout), nn.Linear(w[1], hid_dim),
                                  nn.LeakyReLU(0.2), nn.Linear(hid_dim, cond_dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.proj(self.conv(z).flatten(1))


@register
class FaderNetworks(AttributeEditor, Family):
    """Fader networks: encoder-decoder with a latent discriminator; each attribute of the
    packshots (colour by default) becomes a slider of the decoder."""

    name = "fader"
    kind = "translator"
    Config = FaderConfig
    losses = ("dis_loss", "dis_accuracy", "ae_loss", "rec_mse", "adv_loss", "lambda_dis")
    measures = ("edit_success", "preservation", "identity_l1")
    main_measure = ("edit_success", "max")

    @classmethod
    def check(cls, cfg: FaderConfig, data) -> None:
        super().check(cfg, data)
        first = cfg.label_columns[0]
        kept = kept_values(cls.name, cfg, data)[first]
        if cfg.slider and (len(cfg.slider) != 2 or len(set(cfg.slider)) != 2
                           or any(v not in kept for v in cfg.slider)):
            raise ValueError(f"fader: slider {cfg.slider} must be two kept values of "
                             f"{first!r}: {', '.join(kept)}")

    def build(self) -> None:
        cfg, data = self.cfg, self.data
        self.ae = self.to_device(FaderAutoEncoder(data.channels, cfg.ngf, cfg.max_fm,
                                                  data.image_size, self.cond_dim))
        layers = int(round(math.log2(data.image_size))) - 2
        self.lat_dis = self.to_device(LatentDiscriminator(
            self.ae.code_width, cfg.ngf, cfg.max_fm, layers, cfg.hid_dim, self.cond_dim,
            cfg.dis_dropout))
        self.modules = {"ae": self.ae, "lat_dis": self.lat_dis}
        self.optimizers = {"optAE": self.adam(self.ae), "optDis": self.adam(self.lat_dis)}

    def lambda_dis(self) -> float:
        """λ_dis ramped linearly from 0 over the first lambda_schedule steps."""
        s = self.cfg.lambda_schedule
        return self.cfg.lambda_dis * (min(self.current_step, s) / s if s else 1.0)

    def step(self, real, labels, gen, measure):
        cfg, ae, lat_dis = self.cfg, self.ae, self.lat_dis
        y = self.kept(labels)
        y_onehot = self.onehots(y)
        # another value than y in every column (the encoder's adversarial target)
        shift = torch.stack([torch.randint(1, s, (len(y),), generator=gen) if s > 1
                             else torch.zeros(len(y), dtype=torch.long)
                             for s in self.label_sizes], 1).to(y.device)
        flipped = (y + shift) % torch.tensor(self.label_sizes, device=y.device)

        # (1) Update the latent discriminator: predict y from the frozen encoder's code
        ae.eval()
        with torch.no_grad(), self.autocast:
            code = ae.encode(real)
        ae.train()
        with self.autocast:
            preds = lat_dis(code)
        dis_loss = class_loss(preds, y, self.label_sizes)
        self.update("optDis", dis_loss, cfg.clip_grad_norm)

        # (2) Update the autoencoder: reconstruct with y, make the discriminator wrong
        lat_dis.eval()
        weight = self.lambda_dis()
        with self.autocast:
            code = ae.encode(real)
            rec = ae.decode(code, y_onehot)
            adv = class_loss(lat_dis(code), flipped, self.label_sizes)
        rec_mse = F.mse_loss(rec.float(), real.float())
        ae_loss = cfg.lambda_ae * rec_mse + weight * adv
        self.update("optAE", ae_loss, cfg.clip_grad_norm)
        lat_dis.train()
        row = {"dis_loss": dis_loss, "dis_accuracy": class_accuracy(preds, y, self.label_sizes),
               "ae_loss": ae_loss, "rec_mse": rec_mse, "adv_loss": adv,
               "lambda_dis": torch.tensor(weight)}
        return {k: v.detach() for k, v in row.items()}

    def grids(self):
        """Rows of 8 held-out products: inputs, reconstructions, one row per kept value."""
        images, labels = self.test_set(8)
        images, labels = images.to(self.device), labels.to(self.device)
        rows = [images, self.ae(images, self.onehots(labels))]
        return {"samples": torch.cat(rows + [self.ae(images, c).float()
                                             for *_, c in self.edits(labels)])}

    def translator(self):
        return self.ae

    def slider(self) -> tuple[str, str]:
        """The two values of the first column the sheet slides between."""
        kept = self.values[self.columns[0]]
        a, b = self.cfg.slider or kept[:2]
        return a, b

    def edit_sheet(self, net: nn.Module, path: Path, per_row: int = 1) -> Path:
        """One held-out product per row: input, reconstruction, the slider from value a to b
        of the first column (a, 0.25, 0.5, 0.75, b), then the other kept values."""
        images, labels = self.test_set()
        own = self.onehots(labels)
        edits = {(i, j): cond for _, i, j, cond in self.edits(labels)}
        kept = self.values[self.columns[0]]
        a, b = (kept.index(v) for v in self.slider())
        columns = [("input", images), ("own", translate(net, images, own)),
                   (kept[a], translate(net, images, edits[0, a]))]
        columns += [(f"{t:.2f}", translate(net, images, (1 - t) * edits[0, a] + t * edits[0, b]))
                    for t in SLIDER_MIX]
        columns.append((kept[b], translate(net, images, edits[0, b])))
        columns += [(self.values[self.columns[i]][j], translate(net, images, cond))
                    for (i, j), cond in edits.items() if (i, j) not in ((0, a), (0, b))]
        return translation_grid(columns, path, per_row=per_row)

    def finish(self, out_dir: Path) -> dict:
        out_dir = Path(out_dir)
        torch.save(self.ae.state_dict(), out_dir / "translator.pt")
        net = copy.deepcopy(self.ae).float().cpu().eval()
        self.edit_sheet(net, out_dir / "translation.png")
        return {"domains": "->".join(self.domains()), "label_values": self.values,
                "slider": "->".join(self.slider()), "images_train": len(self.train_index()),
                "images_test": len(self.test_index()), "measures": self.edit_measures(net)}

    def report(self, out_dir, summary):
        sheet = Path(out_dir) / "translation.png"
        if not sheet.exists():
            self.edit_sheet(self.ae, sheet)
        return {}, {"translation": [sheet]}
