"""CGAN (Mirza & Osindero, 2014) as the classic collection trains it, conditioned on the
catalogue's labels: G takes z ~ N(0, I) followed by the one-hots of the label columns, D takes
the image with each one-hot spread as constant label maps, concatenated to its channels; D
maximises log D(x|y) + log(1 − D(G(z|y)|y)), G maximises log D(G(z|y)|y), with y the real
batch's labels (so the generated label combinations follow the data's). BCE on logits.

`LabelConditioned` (shared with ACGAN and a supervised infoGAN) holds what every family
conditioned on real labels needs: the `label_columns` option (default category and color; any
label column of the store by name, `class` for Fashion-MNIST), the data opened with those
columns, training only on the images with every label known (the number dropped is in the
summary), a one-line refusal of data without labels or an unknown column, and the registry
tags (`label_columns`, `label_sizes`, `label_values`) of a sampler that takes z then the
concatenated one-hots, as training/latent.py's convention says.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from training.classic import ClassicConfig, ClassicGAN, detached
from training.family import option, register
from training.latent import condition
from training.losses import bce
from training.models.classic import define_D

if TYPE_CHECKING:
    from training.datasets import ImageDataset

DEFAULT_LABEL_COLUMNS = ["category", "color"]


def as_columns(value: Any) -> list[str]:
    """A label-column option as a list: "category,color" and ("category", "color") alike."""
    if isinstance(value, str):
        return [s.strip() for s in value.split(",") if s.strip()]
    return [str(s) for s in value]


@dataclass
class ConditionalConfig(ClassicConfig):
    """The collection's options plus the label columns the family is conditioned on."""

    label_columns: list[str] = option(
        DEFAULT_LABEL_COLUMNS, "label columns conditioned on (category, color, length, "
        "sleeve_length, fit, pattern, neckline, occasion; class for Fashion-MNIST)")

    def __post_init__(self) -> None:
        # one form whether given by the CLI (a list), code (a tuple) or text, so a resumed
        # run's options compare equal to its checkpoint's
        parent = getattr(super(), "__post_init__", None)
        if parent:
            parent()
        self.label_columns = as_columns(self.label_columns)


@dataclass
class CGANConfig(ConditionalConfig):
    """CGAN's options. Its demo profile trains the infogan backbone (32 px) for 1,000 steps:
    at the cost of 300 steps of the 64 px DCGAN nets it reaches the small-data targets on the
    200-product demo shop (benchmarks/README.md, "Small-data targets"), where 300 DCGAN-net
    steps leave a page of blobs."""

    PROFILES = {**ConditionalConfig.PROFILES, "demo": {"backbone": "infogan", "steps": 1000}}


class LabelConditioned:
    """Mixin for a ClassicGAN conditioned on real labels (put it first in the bases)."""

    name: str
    cfg: Any
    data: "ImageDataset"
    device: torch.device

    @classmethod
    def conditioning_columns(cls, cfg: Any) -> tuple[str, ...]:
        """The label columns this config conditions on (none: an unconditional run)."""
        return tuple(as_columns(cfg.label_columns))

    @classmethod
    def data_options(cls, cfg: Any) -> dict:
        return {**super().data_options(cfg),  # type: ignore[misc]
                "label_columns": cls.conditioning_columns(cfg)}

    @classmethod
    def check(cls, cfg: Any, data: "ImageDataset") -> None:
        super().check(cfg, data)  # type: ignore[misc]
        columns = cls.conditioning_columns(cfg)
        if not columns:
            return
        if len(set(columns)) != len(columns):
            raise ValueError(f"{cls.name}: label_columns {list(columns)} names a column twice")
        if tuple(data.label_columns) != columns:
            raise ValueError(f"{cls.name} is conditioned on label columns {list(columns)}; "
                             f"the data was opened with {list(data.label_columns) or 'none'}")
        if len(data.labelled()) == 0:
            raise ValueError(f"{cls.name}: no image has a value in every label column "
                             f"{list(columns)}; choose other label_columns")

    @property
    def columns(self) -> tuple[str, ...]:
        return self.conditioning_columns(self.cfg)

    @property
    def label_sizes(self) -> list[int]:
        return [len(self.data.label_values[c]) for c in self.columns]

    @property
    def cond_dim(self) -> int:
        return sum(self.label_sizes)

    def condition(self, labels: torch.Tensor) -> torch.Tensor:
        """(B, k) class indices -> (B, cond_dim) concatenated one-hots on the device."""
        return condition(labels, self.label_sizes).to(self.device)

    def generator_input(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """G's input (B, latent_dim + cond_dim, 1, 1): z, then the labels' one-hots."""
        return torch.cat([z.flatten(1), self.condition(labels)], 1)[..., None, None]

    def train_index(self) -> torch.Tensor:
        """Only the images with every label known (an unknown label cannot be one-hot)."""
        return self.data.labelled() if self.columns else torch.arange(len(self.data))

    def finish(self, out_dir: Path) -> dict:
        extras = super().finish(out_dir)  # type: ignore[misc]
        if not self.columns:
            return extras
        trained = len(self.train_index())
        return {**extras, "label_columns": list(self.columns),
                "label_sizes": self.label_sizes, "images_labelled": trained,
                "images_dropped_unlabelled": len(self.data) - trained}

    def registry_tags(self) -> dict[str, str]:
        tags = super().registry_tags()  # type: ignore[misc]
        if not self.columns:
            return tags
        return {**tags, "label_columns": ",".join(self.columns),
                "label_sizes": ",".join(map(str, self.label_sizes)),
                "label_values": json.dumps({c: self.data.label_values[c]
                                            for c in self.columns})}


def class_loss(logits: torch.Tensor, labels: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Sum over label columns of the cross-entropy of that column's block of logits (each
    column its own classifier: the log-likelihood of the labels, factored), in fp32."""
    blocks = torch.split(logits.float(), sizes, dim=1)
    return sum(F.cross_entropy(b, labels[:, i]) for i, b in enumerate(blocks))


def class_accuracy(logits: torch.Tensor, labels: torch.Tensor, sizes: list[int]
                   ) -> torch.Tensor:
    """Share of (image, column) labels predicted right."""
    blocks = torch.split(logits.detach().float(), sizes, dim=1)
    return torch.stack([(b.argmax(1) == labels[:, i]).float().mean()
                        for i, b in enumerate(blocks)]).mean()


@register
class CGAN(LabelConditioned, ClassicGAN):
    """CGAN: G(z, one-hots), D(image + label maps), on the infogan or dcgan backbone."""

    name = "cgan"
    kind = "conditional"
    Config = CGANConfig
    in_demo = True  # full_pipeline's conditional sampler
    losses = ("d_loss", "g_loss", "d_loss_real", "d_loss_fake")

    def build_D(self):
        cfg = self.cfg
        return define_D(cfg.backbone, self.image_size, self.channels, cfg.ndf,
                        cond_channels=self.cond_dim, norm=cfg.d_norm)

    def step(self, real, labels, gen, measure):
        netG, netD = self.netG, self.D
        y = self.condition(labels)
        g_in = self.generator_input(self.sample_z(len(real), gen), labels)

        # (1) Update D: maximise log D(x|y) + log(1 - D(G(z|y)|y))
        with self.autocast:
            fake = netG(g_in)
            out_real, out_fake = self.both(netD, real, fake.detach(), y)
            d_real, d_fake = bce(out_real, 1.0), bce(out_fake, 0.0)
            errD = d_real + d_fake + self.r1(real, y)
        self.update("optD", errD)

        # (2) Update G: maximise log D(G(z|y)|y)
        with self.autocast:
            errG = bce(netD(fake, y), 1.0)
        self.update("optG", errG)
        return detached({"d_loss": errD, "g_loss": errG, "d_loss_real": d_real,
                         "d_loss_fake": d_fake})
