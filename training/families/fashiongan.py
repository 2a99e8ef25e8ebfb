"""The two-stage FashionGAN (Zhu et al., "Be Your Own Prada", ICCV 2017), as the DTU study
trained it: a new outfit from a description, on the same body.

Data: the segmentation store joined with the descriptions by product id
(training.fashiongan_data): image x, its 7-class map S, m(S0) its 8x8 coarse map, the
condition d (the description encoder's state) + skin tone, and another product's condition
d' for the mismatched term. With L(t) BCE against target t (1 real, 0 fake) and
w = (1, 1/2, 1/2) when the D loss is weighted (GAN-CLS's), else (1, 1, 1), one step is:

    (1) update D1:  w0 L(D1(S, d, m), 1) + w1 L(D1(S, d', m), 0) + w2 L(D1(Ŝ, d, m), 0),
                    Ŝ = softmax G1(z1, d, m(S0))
    (2) update G1:  L(D1(Ŝ, d, m), 1) + λ_ce CE(G1 logits, S)
    (3) update D2:  the same three terms on (x, d, S), (x, d', S), (x̂, d, S_in),
                    x̂ = G2(z2, d, S_in), S_in the real map (or G1's, g2_input=generated)
    (4) update G2:  L(D2(x̂, d, S_in), 1) + λ_l1 |x̂ − x|

The study's tricks are options, each on by default and each switchable off (the benchmark
ablates them): a triangular cyclic learning rate, a lazy discriminator (smaller lr, updated
every d_every steps), soft labels (real ~ U(1 − w, 1), fake ~ U(0, w)), noisy labels (a share
of D's targets flipped), instance noise on D's inputs (annealed to 0), the weighted D loss, and a
small batch (batch_size, the study's 10). Every random draw comes from the loop's generator or
the dataset's (both checkpointed), so a resumed run is the run that never stopped.

The report (training.fashiongan_metrics): body coherence (the human parser's parse of the
generated images against the stage-1 map and, for face, hair, arms and legs, against the
person's own map), the description-swap matrix as rates (picture and numbers), the Fréchet
distance in the attribute classifier's space per stage, the swap-matrix grid and a
real | stage 1 | stage 2 grid. The translator users load: (the person's segmentation one-hot,
d + skin) -> a new outfit (training.models.fashiongan.TwoStageTranslator).
"""

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from training.config import GANConfig
from training.family import Family, option, register
from training.fashiongan_data import FashionGANDataset
from training.fashiongan_metrics import (
    COARSE_AS_CLASS,
    body_coherence,
    classifier_fd,
    labelled_grid,
    load_parse,
    mean_iou,
    read_attributes,
    render_maps,
    swap_grid,
    swap_matrix,
    train_person_judge,
)
from training.models.fashiongan import (
    NORMS,
    TwoStageTranslator,
    define_D1,
    define_D2,
    define_G1,
    define_G2,
    hard_onehot,
)

G2_INPUTS = ("real", "generated")
SIZES = (32, 64, 128)
MEASURES_FILE = "measures.json"


@dataclass
class FashionGANBaseConfig(GANConfig):
    """Options both FashionGAN families share: the data, the study's tricks, the measures."""

    descriptions: str = option("", "descriptions file (datasets/descriptions.h5 of the "
                               "description_encoder asset): d and skin per product, joined "
                               "with --data's segmentation store by id (the asset: the store's)")
    image_size: int = option(64, "training size (the study's 128; 64 fits a CPU demo): images "
                             "antialiased, label maps nearest", choices=SIZES)
    flip: bool = option(True, "random left-right flips (image, map and m(S0) together)")
    norm: str = option("batch", "normalisation in G and D: batch or none", choices=NORMS)
    lambda_l1: float = option(100.0, "weight of the L1 term to the original image (G2; the "
                              "single GAN's G)", ge=0)
    # the study's tricks, each switchable
    cyclic_lr: bool = option(True, "triangular cyclic learning rate (the study's trick)")
    cyclic_low: float = option(0.1, "the cycle's lowest lr as a share of lr", gt=0, le=1)
    cyclic_period: int = option(200, "steps of one lr cycle (low -> lr -> low)", ge=2)
    lazy_d: bool = option(True, "lazy discriminator: lr x d_lr_scale, updated every d_every "
                          "steps (the study's trick)")
    d_lr_scale: float = option(0.5, "D's lr as a share of lr when lazy_d", gt=0, le=1)
    d_every: int = option(2, "steps between D updates when lazy_d", ge=1)
    soft_labels: bool = option(True, "soft labels: real targets ~ U(1 - soft_width, 1), fake "
                               "~ U(0, soft_width) (the study's trick)")
    soft_width: float = option(0.2, "width of the soft labels' intervals", gt=0, lt=0.5)
    noisy_labels: bool = option(True, "noisy labels: D's targets flipped with probability "
                                "label_flip (the study's trick)")
    label_flip: float = option(0.05, "share of D's targets flipped when noisy_labels", ge=0,
                               lt=0.5)
    noisy_d_input: bool = option(True, "instance noise on D's inputs, N(0, d_noise) falling "
                                 "linearly to 0 over d_noise_steps (the study's trick)")
    d_noise: float = option(0.1, "std of the instance noise at step 0", ge=0)
    d_noise_steps: int = option(1000, "steps over which the instance noise falls to 0", ge=1)
    weighted_d_loss: bool = option(True, "D's loss real + (mismatched + fake) / 2 (GAN-CLS) "
                                   "instead of the plain sum (the study's trick)")
    # the measures
    fd_classifier: str = option("", "attribute_classifier.pt: the feature space of the "
                                "per-stage Fréchet distances (the asset: the store's file; "
                                "empty: none)")
    parser: str = option("", "human_parser.pt: parses generated images for body coherence "
                         "(the asset: the store's when trained; empty: no coherence)")
    attributes: str = option("", "an image store with the products' one-hot labels "
                             "(packshots.h5): the colour and sleeve length the swap matrix "
                             "asks for (the asset: the store's; empty: no swap rates)")
    swap_n: int = option(8, "persons (and descriptions) in the swap matrix", ge=2)
    eval_draws: int = option(4, "z draws per held-out person for the Fréchet distances", ge=1)
    judge_steps: int = option(400, "training steps of the swap matrix's attribute judge (a "
                              "head per attribute on the store's real person images)", ge=1)

    # demo: 64 px at widths 16, minutes on a 2-core CPU, every trick but the cyclic lr (over
    # 300 steps its mean lr, 0.55 lr, left stage 1 at mIoU 0.24 against 0.42 without it, 3
    # seeds: benchmarks/README.md); full: the study's 128 px and batch 10 at widths 64 with
    # every trick, for a GPU (the step count is our reading: the study gives epochs)
    PROFILES: ClassVar[dict[str, dict]] = {
        "demo": {"steps": 300, "batch_size": 10, "ngf": 16, "ndf": 16, "cyclic_lr": False,
                 "sample_every": 100, "checkpoint_every": 100},
        "full": {"steps": 30000, "batch_size": 10, "image_size": 128, "ngf": 64, "ndf": 64,
                 "cyclic_period": 2000, "d_noise_steps": 10000, "log_every": 50,
                 "sample_every": 1000, "checkpoint_every": 1000}}


@dataclass
class FashionGANConfig(FashionGANBaseConfig):
    lambda_ce: float = option(10.0, "weight of G1's cross-entropy term to the real map", ge=0)
    g2_input: str = option("real", "G2 trains on the real segmentation (the study's) or on "
                           "G1's (generated, its argmax)", choices=G2_INPUTS)


def bce_to(logits: torch.Tensor, target: torch.Tensor | float) -> torch.Tensor:
    """BCE-with-logits against per-example targets (or one constant), in fp32."""
    logits = logits.float()
    target = torch.as_tensor(target, dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, target.expand_as(logits))


class FashionGANFamily(Family):
    """What the two-stage FashionGAN and its single-GAN baseline share: data, the tricks,
    the measures and the report. Subclasses build, step and `draw`."""

    kind = "translator"
    data_store = "segmentation"
    # descriptions.h5 and the human parser (pipelines/assets/fashiongan.py)
    upstream = ("description_encoder", "human_parser")
    main_measure = ("frechet_distance", "min")

    # ----- config and data -------------------------------------------------------------------
    @classmethod
    def check(cls, cfg: FashionGANBaseConfig, data) -> None:
        if not isinstance(data, FashionGANDataset):
            raise ValueError(f"{cls.name} trains on a segmentation store with its descriptions "
                             "(--data datasets/segmentation.h5 --descriptions "
                             "datasets/descriptions.h5)")
        n_train, n_test = len(data.train_index()), len(data.test_index())
        if n_train < 2 or n_test < 2:
            raise ValueError(f"{cls.name} needs at least 2 training products and 2 held out; "
                             f"the data has {n_train} and {n_test} (of {len(data)}, the first "
                             f"{data.ids[0]!r})")
        for name in ("fd_classifier", "parser", "attributes"):
            value = getattr(cfg, name)
            if value and not Path(value).is_file():
                raise ValueError(f"{name} {value}: no such file")

    @classmethod
    def from_store(cls, cfg: FashionGANBaseConfig, store) -> FashionGANBaseConfig:
        """The store's descriptions, classifier, packshot labels and (when trained) parser
        for the options left empty."""
        parser = store.models_dir / "human_parser.pt"
        return replace(
            cfg, descriptions=cfg.descriptions or str(store.dataset("descriptions")),
            fd_classifier=cfg.fd_classifier or str(store.attribute_classifier),
            attributes=cfg.attributes or str(store.packshots),
            parser=cfg.parser or (str(parser) if parser.is_file() else ""))

    @classmethod
    def data_options(cls, cfg: FashionGANBaseConfig) -> dict:
        return {"descriptions": cfg.descriptions, "image_size": cfg.image_size,
                "flip": cfg.flip}

    def train_index(self) -> torch.Tensor:
        return self.data.train_index()

    # ----- the tricks ------------------------------------------------------------------------
    def lr_factor(self) -> float:
        """The triangular cycle: low -> 1 -> low over cyclic_period steps (1 when off)."""
        cfg = self.cfg
        if not cfg.cyclic_lr:
            return 1.0
        pos = (self.current_step % cfg.cyclic_period) / cfg.cyclic_period
        return cfg.cyclic_low + (1 - cfg.cyclic_low) * (1 - abs(2 * pos - 1))

    def set_lr(self) -> None:
        factor = self.lr_factor()
        d_scale = self.cfg.d_lr_scale if self.cfg.lazy_d else 1.0
        for name, opt in self.optimizers.items():
            lr = self.cfg.lr * factor * (d_scale if name.startswith("optD") else 1.0)
            for group in opt.param_groups:
                group["lr"] = lr

    def d_turn(self) -> bool:
        """Whether D is updated at this step (every step unless lazy)."""
        return not self.cfg.lazy_d or self.current_step % self.cfg.d_every == 0

    def noisy(self, x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """D's input with instance noise (annealed), drawn from the loop's generator."""
        cfg = self.cfg
        std = cfg.d_noise * max(0.0, 1 - self.current_step / cfg.d_noise_steps)
        if not cfg.noisy_d_input or std == 0:
            return x
        noise = torch.randn(x.shape, generator=gen).to(x.device, x.dtype)
        return x + std * noise

    def targets(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """D's (real, fake) targets (n,): 1 and 0, softened and flipped as the options say."""
        cfg = self.cfg
        real, fake = torch.ones(n), torch.zeros(n)
        if cfg.soft_labels:
            real = 1 - cfg.soft_width * torch.rand(n, generator=gen)
            fake = cfg.soft_width * torch.rand(n, generator=gen)
        if cfg.noisy_labels and cfg.label_flip > 0:
            flip_r = torch.rand(n, generator=gen) < cfg.label_flip
            flip_f = torch.rand(n, generator=gen) < cfg.label_flip
            real, fake = torch.where(flip_r, 1 - real, real), torch.where(flip_f, 1 - fake, fake)
        return real.to(self.device), fake.to(self.device)

    def d_weights(self) -> tuple[float, float, float]:
        return (1.0, 0.5, 0.5) if self.cfg.weighted_d_loss else (1.0, 1.0, 1.0)

    def d_step(self, netD: nn.Module, opt: str, real: torch.Tensor, fake: torch.Tensor,
               c: torch.Tensor, c_mis: torch.Tensor, m_real: torch.Tensor,
               m_fake: torch.Tensor, gen: torch.Generator, measure: bool
               ) -> dict[str, torch.Tensor]:
        """D's real / mismatched-description / generated terms; D updated on its turn (noisy
        inputs and soft/noisy targets), else only measured when `measure` (plain inputs and
        targets, nothing drawn, so the logging cadence never moves the random streams)."""
        if self.d_turn():
            t_real, t_fake = self.targets(len(real), gen)
            real_in, fake_in = self.noisy(real, gen), self.noisy(fake, gen)
            with self.autocast:
                terms = (bce_to(netD(real_in, c, m_real), t_real),
                         bce_to(netD(real_in, c_mis, m_real), t_fake),
                         bce_to(netD(fake_in, c, m_fake), t_fake))
                err = sum(w * t for w, t in zip(self.d_weights(), terms, strict=True))
            self.update(opt, err)
        elif measure:
            with torch.no_grad(), self.autocast:
                terms = (bce_to(netD(real, c, m_real), 1.0), bce_to(netD(real, c_mis, m_real), 0.0),
                         bce_to(netD(fake, c, m_fake), 0.0))
        else:
            return {}
        return dict(zip(("real", "mismatched", "fake"), terms, strict=True))

    def noise(self, n: int, gen: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.cfg.nz, 1, 1, generator=gen).to(self.device)

    # ----- drawing (subclasses) --------------------------------------------------------------
    def draw(self, index: torch.Tensor, condition: torch.Tensor | None = None,
             seed: int = 0) -> dict[str, torch.Tensor]:
        """For the persons `index` (with their own descriptions, or `condition` (N, C)) and z
        drawn from `seed`: {"image": (N, 3, S, S), and for the two-stage model "maps" (N, S, S)
        stage 1's argmax and "stage2_real": G2 on the real maps}, on the CPU, eval mode."""
        raise NotImplementedError

    def draw_batched(self, index: torch.Tensor, condition: torch.Tensor | None = None,
                     seed: int = 0, batch: int = 64) -> dict[str, torch.Tensor]:
        parts = [self.draw(index[i:i + batch],
                           None if condition is None else condition[i:i + batch], seed + i)
                 for i in range(0, len(index), batch)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    @contextmanager
    def in_eval(self) -> Iterator[None]:
        """Every module in eval mode without gradients; their modes restored after."""
        was = {k: m.training for k, m in self.modules.items()}
        for m in self.modules.values():
            m.eval()
        try:
            with torch.no_grad():
                yield
        finally:
            for k, m in self.modules.items():
                m.train(was[k])

    def shown(self, n: int = 8) -> torch.Tensor:
        """The held-out persons the grids show (training ones after them when fewer)."""
        order = torch.cat([self.data.test_index(), self.data.train_index()])
        return order[:n]

    # ----- measures --------------------------------------------------------------------------
    def measures_now(self, out_dir: Path) -> dict[str, float]:
        """Every measure the configured files allow (module doc), and the report's pictures
        written to out_dir."""
        cfg, data = self.cfg, self.data
        test = data.test_index()
        out: dict[str, float] = {"n_test": float(len(test))}
        own = self.draw_batched(test, seed=cfg.seed)
        if "maps" in own:  # stage 1 with the person's own description against its real map
            out["stage1_miou"] = mean_iou(own["maps"].numpy(), data.maps_of(test).numpy())
        if cfg.fd_classifier:
            from training.classifier import load_classifier

            classifier, _ = load_classifier(Path(cfg.fd_classifier))
            reference = data.images_of(torch.arange(len(data)))
            index = test.repeat(cfg.eval_draws)
            drawn = self.draw_batched(index, seed=cfg.seed + 1)
            out["fd_image"] = classifier_fd(classifier, drawn["image"], reference)
            if "maps" in drawn:
                out["fd_stage1"] = classifier_fd(
                    classifier, render_maps(drawn["maps"]),
                    render_maps(data.maps_of(torch.arange(len(data)))))
                out["fd_stage2"] = classifier_fd(classifier, drawn["stage2_real"], reference)
        if cfg.parser:
            parse = load_parse(cfg.parser)
            original = data.maps_of(test)
            coherence = body_coherence(parse, own["image"], original, own.get("maps"))
            out.update(coherence)
            out["body_miou_real"] = body_coherence(parse, data.images_of(test),
                                                   original)["body_miou"]
            if "stage2_real" in own:
                out["coherence_miou_stage2"] = body_coherence(
                    parse, own["stage2_real"], original, original)["coherence_miou"]
        if cfg.attributes:
            out.update(self.swap_measures(Path(out_dir)))
        self.stages_grid(own, test[:8], Path(out_dir) / "stages.png")
        return {k: round(float(v), 5) for k, v in out.items()}

    def swap_measures(self, out_dir: Path) -> dict[str, float]:
        """The swap matrix of swap_n persons (held out first) whose colour and sleeve length
        are known, read by an attribute judge trained on the training persons' real images."""
        cfg, data = self.cfg, self.data
        targets, _ = read_attributes(cfg.attributes, data.ids)
        train = data.train_index()
        judge, accuracy = train_person_judge(
            data.images_of(train), {c: t[train] for c, t in targets.items()},
            data.images_of(data.test_index()),
            {c: t[data.test_index()] for c, t in targets.items()}, steps=cfg.judge_steps,
            seed=cfg.seed)
        known = torch.stack([t >= 0 for t in targets.values()]).all(0)
        order = torch.cat([data.test_index(), train])
        persons = order[known[order]][:cfg.swap_n]
        if len(persons) < 2:
            return {**accuracy, "swap_persons": float(len(persons))}
        z_seed = cfg.seed + 2

        def draw(index: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
            return self.draw(index, condition, seed=z_seed)["image"]

        images, rates = swap_matrix(draw, persons, data.condition_of(persons), judge,
                                    {c: t[persons] for c, t in targets.items()})
        real = data.images_of(persons)
        swap_grid(images, real, real, out_dir / "swap_matrix.png")
        return {**rates, **accuracy, "swap_persons": float(len(persons))}

    def stages_grid(self, own: dict[str, torch.Tensor], index: torch.Tensor, path: Path
                    ) -> Path:
        """real | stage 1 | stage 2 (| stage 2 on the real map) for up to 8 held-out persons,
        a row each (the single GAN: real | m(S0) | image)."""
        data = self.data
        k = len(index)
        real = data.images_of(index)
        if "maps" in own:
            columns = [("real", real), ("real map", render_maps(data.maps_of(index))),
                       ("stage 1", render_maps(own["maps"][:k])), ("stage 2", own["image"][:k]),
                       ("G2(real map)", own["stage2_real"][:k])]
        else:
            coarse = F.interpolate(data.coarse[index][:, None].float(), size=real.shape[-1],
                                   mode="nearest")[:, 0].long()
            coarse = torch.tensor(COARSE_AS_CLASS)[coarse]
            columns = [("real", real), ("m(S0)", render_maps(coarse)),
                       ("single GAN", own["image"][:k])]
        rows = [[images[i] for _, images in columns] for i in range(k)]
        return labelled_grid(rows, path, col_titles=[t for t, _ in columns])

    # ----- the frame's hooks -----------------------------------------------------------------
    def finish(self, out_dir: Path) -> dict:
        """The translator's weights, the measures (measures.json) and the report's grids."""
        out_dir = Path(out_dir)
        torch.save(self.translator().state_dict(), out_dir / "translator.pt")
        measures = self.measures_now(out_dir)
        (out_dir / MEASURES_FILE).write_text(json.dumps(measures, indent=1) + "\n")
        return {"measures": measures, "domains": "->".join(self.domains())}

    def report(self, out_dir: Path, summary: dict) -> tuple[dict, dict[str, list[Path]]]:
        out_dir = Path(out_dir)
        file = out_dir / MEASURES_FILE
        measures = json.loads(file.read_text()) if file.exists() else \
            self.measures_now(out_dir)
        # one folder each, so the asset page shows both (it shows each folder's last picture)
        images = {name: [out_dir / f"{name}.png"] for name in ("swap_matrix", "stages")
                  if (out_dir / f"{name}.png").exists()}
        return ({k: v for k, v in measures.items() if isinstance(v, float | int)
                 and math.isfinite(v)}, images)

    def domains(self) -> tuple[str, str]:
        return ("segmentation", "person")

    def conditioning(self) -> dict[str, str]:
        return {"conditioning": "segmentation+description", "cond_dim": str(self.data.cond_dim)}

    def translator_tags(self) -> dict[str, str]:
        """The base tags; the input is the person's 7-class one-hot segmentation."""
        return {**super().translator_tags(), "channels": "7", "output_channels": "3",
                "nz": str(self.cfg.nz)}

    def evaluation_set(self, n: int = 1000, seed: int = 0) -> dict:
        """The held-out persons' segmentations and own descriptions, their photos as targets,
        every photo as the realism reference."""
        data = self.data
        index = data.test_index()[:n]
        return {"inputs": data.onehot_of(index), "condition": data.condition_of(index),
                "targets": data.images_of(index),
                "reference": data.images_of(torch.arange(len(data)))}

    def translator_example(self) -> tuple[torch.Tensor, ...]:
        index = self.shown(4)
        return (self.data.onehot_of(index), self.data.condition_of(index))


@register
class FashionGAN(FashionGANFamily):
    """Two-stage FashionGAN (ICCV 2017): stage 1 draws a new segmentation from (z, description,
    m(S0)), stage 2 its texture; the study's tricks as options; body coherence, swap matrix."""

    name = "fashiongan"
    Config = FashionGANConfig
    losses = ("d1_real", "d1_mismatched", "d1_fake", "g1_adv", "g1_ce", "d2_real",
              "d2_mismatched", "d2_fake", "g2_adv", "g2_l1", "lr")
    measures = ("frechet_distance", "l1", "fd_image", "fd_stage1", "fd_stage2", "stage1_miou",
                "body_miou", "coherence_miou", "swap_rate_diag", "swap_rate_off")

    def build(self) -> None:
        cfg, data = self.cfg, self.data
        size, cond = data.image_size, data.cond_dim
        self.netG1 = self.to_device(define_G1(cfg.nz, cond, cfg.ngf, size, cfg.norm))
        self.netD1 = self.to_device(define_D1(cond, cfg.ndf, size, cfg.norm))
        self.netG2 = self.to_device(define_G2(cfg.nz, cond, cfg.ngf, size, cfg.norm))
        self.netD2 = self.to_device(define_D2(cond, cfg.ndf, size, cfg.norm))
        self.modules = {"netG1": self.netG1, "netD1": self.netD1, "netG2": self.netG2,
                        "netD2": self.netD2}
        self.optimizers = {name.replace("net", "opt"): self.adam(net)
                           for name, net in self.modules.items()}

    def step(self, real, labels, gen, measure):
        cfg = self.cfg
        x, maps, coarse, c, c_mis = real
        maps = maps[:, 0]
        onehot = F.one_hot(maps, 7).permute(0, 3, 1, 2).to(x.dtype)
        z1, z2 = self.noise(len(x), gen), self.noise(len(x), gen)
        self.set_lr()

        # (1) Update D1 on (real map, d), (real map, d'), (G1's map, d)
        with self.autocast:
            logits = self.netG1(z1, c, coarse)
        seg = torch.softmax(logits.float(), 1)
        d1 = self.d_step(self.netD1, "optD1", onehot, seg.detach(), c, c_mis, coarse, coarse,
                         gen, measure)

        # (2) Update G1: fool D1, stay close to the real map
        self.netD1.requires_grad_(False)
        with self.autocast:
            g1_adv = bce_to(self.netD1(self.noisy(seg, gen), c, coarse), 1.0)
        g1_ce = F.cross_entropy(logits.float(), maps)
        self.update("optG1", g1_adv + cfg.lambda_ce * g1_ce)
        self.netD1.requires_grad_(True)

        # (3) Update D2 on (photo, d, map), (photo, d', map), (G2's image, d, its map)
        seg_in = onehot if cfg.g2_input == "real" else hard_onehot(seg.detach()).to(x.dtype)
        with self.autocast:
            fake = self.netG2(z2, c, seg_in)
        d2 = self.d_step(self.netD2, "optD2", x, fake.detach(), c, c_mis, onehot, seg_in, gen,
                         measure)

        # (4) Update G2: fool D2, stay close to the photo
        self.netD2.requires_grad_(False)
        with self.autocast:
            g2_adv = bce_to(self.netD2(self.noisy(fake, gen), c, seg_in), 1.0)
        g2_l1 = F.l1_loss(fake.float(), x.float())
        self.update("optG2", g2_adv + cfg.lambda_l1 * g2_l1)
        self.netD2.requires_grad_(True)
        if not measure:
            return {}
        row = {"g1_adv": g1_adv, "g1_ce": g1_ce, "g2_adv": g2_adv, "g2_l1": g2_l1,
               "lr": torch.tensor(cfg.lr * self.lr_factor())}
        row |= {f"d1_{k}": v for k, v in d1.items()} | {f"d2_{k}": v for k, v in d2.items()}
        return {k: row[k] for k in self.losses}

    def draw(self, index, condition=None, seed=0):
        data = self.data
        c = data.condition_of(index) if condition is None else condition
        g = torch.Generator().manual_seed(seed)
        z1 = torch.randn(len(index), self.cfg.nz, 1, 1, generator=g)
        z2 = torch.randn(len(index), self.cfg.nz, 1, 1, generator=g)
        dev = self.device
        with self.in_eval():
            logits = self.netG1(z1.to(dev), c.to(dev), data.coarse_of(index).to(dev)).float()
            shape = hard_onehot(logits)
            image = self.netG2(z2.to(dev), c.to(dev), shape)
            stage2_real = self.netG2(z2.to(dev), c.to(dev), data.onehot_of(index).to(dev))
        return {"image": image.float().clamp(-1, 1).cpu(), "maps": logits.argmax(1).cpu(),
                "stage2_real": stage2_real.float().clamp(-1, 1).cpu()}

    def grids(self):
        """Rows of 8 held-out persons: stage 1's map, stage 2 on it, stage 2 on the real map,
        the photo (fixed z)."""
        index = self.shown(8)
        drawn = self.draw(index, seed=1)
        return {"samples": torch.cat([render_maps(drawn["maps"]), drawn["image"],
                                      drawn["stage2_real"], self.data.images_of(index)])}

    def translator(self) -> nn.Module:
        return TwoStageTranslator(self.netG1, self.netG2)
