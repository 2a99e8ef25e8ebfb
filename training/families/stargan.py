"""StarGAN (Choi et al., 2018): one generator for every attribute edit of the packshots
(datasets/packshots.h5, the catalogue's one-hot labels), G(x, c) with the target labels c
(one one-hot per label column) tiled over the image.

G is the paper's ResNet generator (7x7 conv, two stride-2 downs, 6 residual blocks, two ups,
instance norm: define_G "resnet_6blocks" with cond_nc, whose input conv zero-pads as the
paper's so instance norm does not erase the constant label maps), D a PatchGAN without norm
(stride-2 4x4 convs down to 2x2, LeakyReLU 0.01) with two heads: D_src (a 3x3 conv, one score
per patch) and D_cls (a conv over the 2x2 map, one softmax per label column). With c' the
image's own labels and c a target drawn by shuffling the batch's labels (the paper's):
    D minimises  −D_src(x) + D_src(G(x, c)) + λ_gp (‖∇D_src(x̂)‖₂ − 1)² + λ_cls CE(D_cls(x), c')
    G minimises  −D_src(G(x, c)) + λ_cls CE(D_cls(G(x, c)), c) + λ_rec ‖x − G(G(x, c), c')‖₁
with x̂ between x and G(x, c), λ_gp 10, λ_cls 1, λ_rec 10, G updated every n_critic = 5 D
updates, Adam(1e-4, (0.5, 0.999)); `steps` counts D updates.

`label_columns` picks the attributes by name; `label_values` (`column=value` entries) keeps
some values of a column, so each has enough images (2 batches) on a small store. Only products
with a kept value in every column train; `test_products` of them (seeded by `split_seed`, the
same for every training seed; drawn first from the attribute classifier's held-out 20%, so the
judge has seen neither the inputs nor the edits) are held out for the measures and the
report: per edit (column, value) the attribute classifier's edit success and the preservation
of the other attributes, and the identity L1 of G(x, c'), through
translation_metrics.evaluate_translator.
`AttributeEditor` holds what StarGAN and Fader networks (fader.py) share.
"""

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from training.config import GANConfig
from training.datasets import H5ImageDataset, holdout_split, to_unit_range
from training.families.cgan import as_columns, class_accuracy, class_loss
from training.families.wgan_gp import interpolates
from training.family import Family, option, register
from training.latent import condition
from training.losses import gradient_penalty
from training.models.translation import define_G
from training.translation_metrics import Edit, evaluate_translator, translate, translation_grid

# the demo store (198 packshots): colour and pattern are drawn on most products; every value
# but yellow (7 products) keeps >= 2 demo batches of training images once 16 are held out
DEFAULT_COLUMNS = ["color", "pattern"]
# training.classifier's held-out share and seed: the test products are drawn from it first
CLASSIFIER_HOLDOUT, CLASSIFIER_SEED = 0.2, 0
DEFAULT_VALUES = [f"color={c}" for c in ("black", "white", "beige", "blue", "green", "gray",
                                         "pink", "red")]


@dataclass
class AttributeConfig(GANConfig):
    """Options every attribute editor shares: which attributes, which of their values, the
    held-out products, and the classifier of the summary's measures."""

    label_columns: list[str] = option(
        DEFAULT_COLUMNS, "label columns to edit (color, pattern, sleeve_length, length, fit, "
        "category, neckline, occasion)")
    label_values: list[str] = option(
        DEFAULT_VALUES, "column=value entries keeping only those values of a column (a "
        "column not named keeps all its values); empty: every value of every column")
    test_products: int = option(16, "products held out for the measures and the report's "
                                "sheet (drawn first from the fifth of the products the "
                                "attribute classifier held out)", ge=1)
    split_seed: int = option(0, "seed of the held-out draw (the same products for every "
                             "training seed)", ge=0)
    flip: bool = option(True, "random left-right flips of the training images")
    lr_decay_start: int = option(0, "step from which the learning rates fall linearly to 0 "
                                 "at `steps` (0: constant)", ge=0)
    classifier_file: str = option("", "attribute classifier file (attribute_classifier.pt) "
                                  "for edit success and preservation in the summary; empty: "
                                  "only the identity L1 (the asset measures with the metrics' "
                                  "classifier)")

    def __post_init__(self) -> None:
        # one form from the CLI (a list), code (a tuple) or text, so a resumed run's options
        # compare equal to its checkpoint's
        parent = getattr(super(), "__post_init__", None)
        if parent:
            parent()
        self.label_columns = as_columns(self.label_columns)
        self.label_values = as_columns(self.label_values)


@dataclass
class AttributeSplit:
    """The kept values per column, every row's label index in them (-1: not kept or
    unknown), and the training and held-out rows (a kept value in every column)."""

    values: dict[str, list[str]]
    index: torch.Tensor  # (N, k) long
    train: torch.Tensor
    test: torch.Tensor


def kept_values(name: str, cfg: AttributeConfig, data: H5ImageDataset) -> dict[str, list[str]]:
    """{column: its kept values, in the order given (all the store's, in its order, for a
    column not named)}; a value or column that is not there is a one-line error naming the
    store's counts."""
    columns = list(cfg.label_columns)
    asked: dict[str, list[str]] = {}
    for entry in cfg.label_values:
        column, sep, value = entry.partition("=")
        if not sep or not column or not value:
            raise ValueError(f"{name}: label_values entry {entry!r} is not column=value "
                             "(e.g. color=black)")
        if column not in columns:
            raise ValueError(f"{name}: label_values names column {column!r}, which is not in "
                             f"label_columns {columns}; add it or drop its entries")
        asked.setdefault(column, []).append(value)
    out = {}
    for i, column in enumerate(columns):
        store = data.label_values[column]
        counts = torch.bincount(data.label_index[:, i][data.label_index[:, i] >= 0],
                                minlength=len(store)).tolist()
        missing = [v for v in asked.get(column, []) if v not in store]
        if missing:
            have = ", ".join(f"{v} ({n})" for v, n in zip(store, counts, strict=True))
            raise ValueError(f"{name}: label column {column!r} has no value "
                             f"{', '.join(map(repr, missing))}; it has (images): {have}")
        out[column] = list(dict.fromkeys(asked.get(column, store)))
        if len(out[column]) < 2:
            raise ValueError(f"{name}: label column {column!r} keeps one value "
                             f"({', '.join(out[column])}); an edit needs two or more")
    return out


def attribute_split(name: str, cfg: AttributeConfig, data: H5ImageDataset) -> AttributeSplit:
    """The rows with a kept value in every column, `test_products` of them held out (seeded by
    split_seed); each kept value needs 2 batches of training images, else a one-line error
    naming every value's count."""
    values = kept_values(name, cfg, data)
    index = torch.full_like(data.label_index, -1)
    for i, column in enumerate(cfg.label_columns):
        lookup = torch.tensor([values[column].index(v) if v in values[column] else -1
                               for v in data.label_values[column]] + [-1])
        index[:, i] = lookup[data.label_index[:, i]]  # -1 (unknown) reads the last entry
    eligible = (index >= 0).all(1)
    n_eligible = int(eligible.sum())
    if n_eligible <= cfg.test_products:
        raise ValueError(f"{name}: {n_eligible} images have a kept value in every column "
                         f"{list(cfg.label_columns)}, too few to hold out test_products "
                         f"{cfg.test_products} and train on the rest")
    # the classifier's held-out products first: it judges the inputs as fairly as the edits
    unseen = torch.zeros(len(index), dtype=torch.bool)
    unseen[holdout_split(len(index), CLASSIFIER_HOLDOUT,
                         torch.Generator().manual_seed(CLASSIFIER_SEED))[1]] = True
    shuffled = torch.randperm(len(index), generator=torch.Generator().manual_seed(
        cfg.split_seed))
    order = torch.cat([shuffled[(eligible & unseen)[shuffled]],
                       shuffled[(eligible & ~unseen)[shuffled]]])
    test, train = (order[:cfg.test_products].sort().values,
                   order[cfg.test_products:].sort().values)
    need = 2 * cfg.batch_size
    counts = {f"{c}={v}": int((index[train, i] == j).sum())
              for i, c in enumerate(cfg.label_columns) for j, v in enumerate(values[c])}
    if min(counts.values()) < need:
        said = ", ".join(f"{k}: {n}" for k, n in counts.items())
        raise ValueError(f"{name}: too few training images per value for batch_size "
                         f"{cfg.batch_size} (each needs 2 batches, {need}): {said}; keep "
                         "fewer values (label_values) or lower batch_size")
    return AttributeSplit(values, index, train, test)


class AttributeEditor:
    """Mixin of a translator that edits the packshots' attributes (put it first in the bases):
    the data opened with the label columns, the checks, the kept values and held-out products,
    the (image, one-hots) conditioning and its registry tags, the edits it is measured by."""

    name: str
    cfg: Any
    data: H5ImageDataset
    device: torch.device
    current_step: int
    optimizers: dict[str, torch.optim.Optimizer]

    @classmethod
    def data_options(cls, cfg: AttributeConfig) -> dict:
        return {"label_columns": tuple(cfg.label_columns), "flip": cfg.flip}

    @classmethod
    def check(cls, cfg: AttributeConfig, data: Any) -> None:
        if not isinstance(data, H5ImageDataset):
            raise ValueError(f"{cls.name} edits the attributes of an image store with labels "
                             "(datasets/packshots.h5), not a paired store or a folder")
        size = data.image_size
        if size < 16 or 2 ** round(math.log2(size)) != size:
            raise ValueError(f"{cls.name} takes square images of a power of two >= 16 px, got "
                             f"{size}")
        if not cfg.label_columns:
            raise ValueError(f"{cls.name}: label_columns is empty; name the attributes to edit")
        if len(set(cfg.label_columns)) != len(cfg.label_columns):
            raise ValueError(f"{cls.name}: label_columns {cfg.label_columns} names a column "
                             "twice")
        attribute_split(cls.name, cfg, data)
        if cfg.classifier_file and not Path(cfg.classifier_file).is_file():
            raise ValueError(f"classifier_file {cfg.classifier_file}: no such file")

    @property
    def split(self) -> AttributeSplit:
        if not hasattr(self, "_split"):
            self._split = attribute_split(self.name, self.cfg, self.data)
        return self._split

    @property
    def columns(self) -> list[str]:
        return list(self.cfg.label_columns)

    @property
    def values(self) -> dict[str, list[str]]:
        return self.split.values

    @property
    def label_sizes(self) -> list[int]:
        return [len(self.values[c]) for c in self.columns]

    @property
    def cond_dim(self) -> int:
        return sum(self.label_sizes)

    def train_index(self) -> torch.Tensor:
        return self.split.train

    def test_index(self) -> torch.Tensor:
        return self.split.test

    def kept(self, labels: torch.Tensor) -> torch.Tensor:
        """The loop's labels (indices in the store's values) as indices in the kept values."""
        lookup = [torch.tensor([self.values[c].index(v) if v in self.values[c] else -1
                                for v in self.data.label_values[c]] + [-1],
                               device=labels.device) for c in self.columns]
        return torch.stack([lk[labels[:, i]] for i, lk in enumerate(lookup)], 1)

    def onehots(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, k) kept-value indices -> (B, cond_dim) concatenated one-hots."""
        return condition(labels.cpu(), self.label_sizes).to(labels.device)

    def test_set(self, n: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(images, kept-value indices) of the first n held-out products, never flipped."""
        index = self.test_index()[:n]
        return to_unit_range(self.data.images[index]), self.split.index[index]

    def edits(self, labels: torch.Tensor) -> list[tuple[str, int, int, torch.Tensor]]:
        """Per (column, kept value): (name `column_value`, column, value, the one-hots of
        `labels` with that column set to the value)."""
        out = []
        for i, column in enumerate(self.columns):
            for j, value in enumerate(self.values[column]):
                target = labels.clone()
                target[:, i] = j
                out.append((f"{column}_{value}", i, j, self.onehots(target)))
        return out

    def evaluation_set(self, n: int = 1000, seed: int = 0) -> dict:
        """The held-out products as inputs, their own one-hots as `condition` and `identity`,
        and one Edit per (column, kept value) (MLflow-safe names `color_black`)."""
        images, labels = self.test_set(n)
        own = self.onehots(labels)
        return {"inputs": images, "condition": own, "identity": own,
                "edits": [Edit(name, cond, self.columns[i], self.values[self.columns[i]][j])
                          for name, i, j, cond in self.edits(labels)]}

    def translator_example(self) -> tuple[torch.Tensor, ...]:
        images, labels = self.test_set(4)
        return images, self.onehots(labels)

    def domains(self) -> tuple[str, str]:
        return "packshot", "+".join(self.columns)

    def conditioning(self) -> dict[str, str]:
        return {"conditioning": "labels", "cond_dim": str(self.cond_dim),
                "label_columns": ",".join(self.columns),
                "label_sizes": ",".join(map(str, self.label_sizes)),
                "label_values": json.dumps(self.values)}

    def decay_lr(self) -> None:
        """Constant, then linearly to 0 from lr_decay_start (StarGAN's second half)."""
        start, steps = self.cfg.lr_decay_start, self.cfg.steps
        if start and self.current_step >= start:
            lr = self.cfg.lr * (1 - (self.current_step - start) / (steps - start + 1))
            for opt in self.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = lr

    def edit_measures(self, net: nn.Module) -> dict[str, float]:
        """evaluate_translator on the held-out products: the identity L1, and with the
        `classifier_file` option edit success and preservation per edit and on average."""
        classifier, values = None, None
        if self.cfg.classifier_file:
            from training.classifier import load_classifier

            classifier, values = load_classifier(Path(self.cfg.classifier_file))
        return evaluate_translator(net, classifier=classifier, values=values,
                                   **self.evaluation_set())

    def edit_sheet(self, net: nn.Module, path: Path, per_row: int = 1) -> Path:
        """Each held-out product: its input, then its translation to every kept value of
        every column (titled by the value, the columns in order)."""
        images, labels = self.test_set()
        columns = [("input", images)] + [(self.values[self.columns[i]][j],
                                          translate(net, images, cond))
                                         for _, i, j, cond in self.edits(labels)]
        return translation_grid(columns, path, per_row=per_row)


@dataclass
class StarGANConfig(AttributeConfig):
    lr: float = option(1e-4, "Adam learning rate of G and D (the paper's 1e-4)", gt=0)
    beta1: float = option(0.5, "Adam beta1 (the paper's 0.5; beta2 0.999)", ge=0, lt=1)
    n_critic: int = option(5, "D updates per G update", ge=1)
    lambda_gp: float = option(10.0, "weight of the gradient penalty", ge=0)
    lambda_cls: float = option(1.0, "weight of the domain classification losses", ge=0)
    lambda_rec: float = option(10.0, "weight of the reconstruction (cycle) L1", ge=0)
    n_blocks: int = option(6, "residual blocks of G (6: the paper's)", choices=(6, 9))

    # demo: batch 4 (2 batches of every kept value on the demo store), widths 16, 1,500 D
    # steps (300 G updates: colour edits show from ~1,500); about 2 min on an idle 2-core CPU
    # (~0.07-0.09 s a step, against the classic GAN's step). full: the paper's (batch 16,
    # widths 64, 200k D steps, the learning rates decaying over the last 100k)
    PROFILES = {"demo": {"steps": 1500, "batch_size": 4, "ngf": 16, "ndf": 16, "log_every": 10,
                         "sample_every": 500, "checkpoint_every": 500},
                "full": {"steps": 200000, "batch_size": 16, "ngf": 64, "ndf": 64,
                         "lr_decay_start": 100000, "log_every": 100, "sample_every": 5000,
                         "checkpoint_every": 5000}}


class StarDiscriminator(nn.Module):
    """StarGAN's D: stride-2 4x4 convs with LeakyReLU 0.01 (no norm: the penalty is per
    image) down to a 2x2 map, widths ndf, 2ndf, ...; D_src a 3x3 conv to one score per patch,
    D_cls a 2x2 conv to the label logits (cond_dim), as the paper's at 128 px (6 layers)."""

    def __init__(self, nc: int, ndf: int, image_size: int, cond_dim: int):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(nc, ndf, 4, 2, 1), nn.LeakyReLU(0.01)]
        width = ndf
        for _ in range(int(round(math.log2(image_size))) - 2):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1), nn.LeakyReLU(0.01)]
            width *= 2
        self.main = nn.Sequential(*layers)
        self.src = nn.Conv2d(width, 1, 3, 1, 1, bias=False)
        self.cls = nn.Conv2d(width, cond_dim, 2, bias=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.main(x)
        return self.src(h), self.cls(h).flatten(1)


@register
class StarGAN(AttributeEditor, Family):
    """StarGAN: one G(x, target labels) for every colour/pattern/... edit of the packshots,
    PatchGAN D with a label head, WGAN-GP + classification + reconstruction losses."""

    name = "stargan"
    kind = "translator"
    Config = StarGANConfig
    losses = ("d_loss", "d_real", "d_fake", "d_cls", "gradient_penalty", "cls_accuracy",
              "g_fake", "g_cls", "g_rec")
    measures = ("edit_success", "preservation", "identity_l1")
    main_measure = ("edit_success", "max")
    penalty = True

    def build(self) -> None:
        cfg, data = self.cfg, self.data
        self.netG = self.to_device(define_G(data.channels, data.channels, cfg.ngf,
                                            f"resnet_{cfg.n_blocks}blocks", "instance",
                                            image_size=data.image_size,
                                            cond_nc=self.cond_dim))
        self.netD = self.to_device(StarDiscriminator(data.channels, cfg.ndf, data.image_size,
                                                     self.cond_dim))
        self.modules = {"netG": self.netG, "netD": self.netD}
        self.optimizers = {"optG": self.adam(self.netG), "optD": self.adam(self.netD)}
        self.g_row = {k: torch.zeros((), device=self.device) for k in ("g_fake", "g_cls",
                                                                       "g_rec")}

    def g_losses(self, real: torch.Tensor, fake: torch.Tensor, c_own: torch.Tensor,
                 target: torch.Tensor) -> dict[str, torch.Tensor]:
        """G's three terms: fool D_src, be classified as the target, come back to x."""
        with self.autocast:
            src, cls = self.netD(fake)
            rec = self.netG(fake, c_own)
        return {"g_fake": -src.float().mean(), "g_cls": class_loss(cls, target,
                                                                   self.label_sizes),
                "g_rec": F.l1_loss(rec.float(), real.float())}

    def step(self, real, labels, gen, measure):
        cfg, netG, netD = self.cfg, self.netG, self.netD
        self.decay_lr()
        own = self.kept(labels)
        target = own[torch.randperm(len(own), generator=gen).to(own.device)]
        c_own, c_target = self.onehots(own), self.onehots(target)
        update_g = (self.current_step + 1) % cfg.n_critic == 0

        # (1) Update D: real vs translated, the penalty, the real images' own labels
        with self.autocast, torch.set_grad_enabled(update_g):
            fake = netG(real, c_target)
        with self.autocast:
            src_real, cls_real = netD(real)
            src_fake, _ = netD(fake.detach())
        d_real, d_fake = -src_real.float().mean(), src_fake.float().mean()
        d_cls = class_loss(cls_real, own, self.label_sizes)
        penalty = gradient_penalty(lambda x: netD(x)[0], interpolates(real, fake.detach(), gen),
                                   bf16=self.penalty_bf16)
        errD = d_real + d_fake + cfg.lambda_gp * penalty + cfg.lambda_cls * d_cls
        self.update("optD", errD)

        # (2) Update G every n_critic-th step: translate, be classified, reconstruct
        if update_g:
            netD.requires_grad_(False)
            self.g_row = self.g_losses(real, fake, c_own, target)
            errG = (self.g_row["g_fake"] + cfg.lambda_cls * self.g_row["g_cls"]
                    + cfg.lambda_rec * self.g_row["g_rec"])
            self.update("optG", errG)
            netD.requires_grad_(True)
        elif measure:  # logged between G updates: measured without gradients
            with torch.no_grad():
                self.g_row = self.g_losses(real, fake, c_own, target)
        row = {"d_loss": errD, "d_real": d_real, "d_fake": d_fake, "d_cls": d_cls,
               "gradient_penalty": penalty,
               "cls_accuracy": class_accuracy(cls_real, own, self.label_sizes), **self.g_row}
        return {k: v.detach() for k, v in row.items()}

    def grids(self):
        """Rows of 8 held-out products: the inputs, then one row per (column, kept value)."""
        images, labels = self.test_set(8)
        images, labels = images.to(self.device), labels.to(self.device)
        return {"samples": torch.cat([images] + [self.netG(images, c).float()
                                                 for *_, c in self.edits(labels)])}

    def translator(self):
        return self.netG

    def finish(self, out_dir: Path) -> dict:
        """The translator's weights, the edit sheet, the measures on the held-out products."""
        out_dir = Path(out_dir)
        torch.save(self.netG.state_dict(), out_dir / "translator.pt")
        net = copy.deepcopy(self.netG).float().cpu().eval()
        self.edit_sheet(net, out_dir / "translation.png")
        return {"domains": "->".join(self.domains()), "label_values": self.values,
                "images_train": len(self.train_index()), "images_test": len(self.test_index()),
                "measures": self.edit_measures(net)}

    def report(self, out_dir, summary):
        sheet = Path(out_dir) / "translation.png"
        if not sheet.exists():
            self.edit_sheet(self.netG, sheet)
        return {}, {"translation": [sheet]}
