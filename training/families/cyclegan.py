"""CycleGAN (Zhu et al., 2017): unpaired translation between two domains, packshots and person
crops (the paired store's two sides, used unpaired) or two values of a label column (short vs
long sleeves).

G_A: A -> B and G_B: B -> A are ResNet generators (6 blocks at 64/128 px, 9 at 256, as the
paper), D_A judges B images, D_B A images, both PatchGANs scaled to the image size
(training.models.translation). With the least-squares objective (LSGAN) and λ = 10:
    D_A minimises ½[(D_A(b) − 1)² + D_A(G_A(a)~)²]   (~: drawn from a history of 50 fakes)
    D_B minimises ½[(D_B(a) − 1)² + D_B(G_B(b)~)²]
    G   minimises (D_A(G_A(a)) − 1)² + (D_B(G_B(b)) − 1)²
                  + λ(‖G_B(G_A(a)) − a‖₁ + ‖G_A(G_B(b)) − b‖₁)                (cycle)
                  + ½λ(‖G_A(b) − b‖₁ + ‖G_B(a) − a‖₁)                         (identity)
Adam(2e-4, β1 0.5) for both G and both D; the full profile keeps the rate for half the steps and
decays it linearly to 0 (the repository's 100 + 100 epochs). Each direction keeps a pool of 50
generated images (ImagePool, checkpointed with the networks) that D sees half the time.

Measured on domain A's test split (A -> B, the exported translator) and B's (B -> A): the cycle
reconstruction error (L1, both directions), the Fréchet distance to the other domain's images in
the attribute classifier's space per direction, and, between two values of a label column, the
edit success (the classifier sees the target value) with the preservation of the others.
"""

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from training.config import GANConfig
from training.datasets import UnpairedDataset, check_domain_sizes
from training.family import Family, option, register
from training.models.translation import (
    DISCRIMINATORS,
    GENERATORS,
    NORMS,
    ImagePool,
    define_D,
    define_G,
)
from training.runtime import require_compiler
from training.translation_metrics import (
    Edit,
    evaluate_translator,
    l1,
    translate,
    translation_grid,
)

DOMAINS_HELP = ("the two domains: 'packshot|person' (the paired store's two sides, unpaired) or "
                "'column:value_a|value_b', two values of a label column (sleeve_length:short|"
                "long); A -> B is the exported translator")


def parse_domains(text: str) -> tuple[str, str, str]:
    """'a|b' -> ("store", a, b); 'column:a|b' -> (column, a, b) (training.datasets'
    UnpairedDataset domains, which names the columns and values a store has)."""
    column, _, pair = text.rpartition(":")
    sides = pair.split("|")
    if len(sides) != 2 or not all(s.strip() for s in sides) or (":" in text and not
                                                                 column.strip()):
        raise ValueError(f"domains must be 'A|B' (packshot|person) or 'column:A|B' (e.g. "
                         f"sleeve_length:short|long), got {text!r}")
    return (column.strip() or "store", sides[0].strip(), sides[1].strip())


def default_generator(image_size: int) -> str:
    """The paper's choice: 9 residual blocks from 256 px, 6 below."""
    return "resnet_9blocks" if image_size >= 256 else "resnet_6blocks"


def shown_rows(test: torch.Tensor, other: torch.Tensor, n: int) -> torch.Tensor:
    """n rows for the per-step grids: the test rows first, then others (pictures only)."""
    return torch.cat([test, other[~torch.isin(other, test)]])[:n]


def stack_sheets(parts: list[tuple[str, Path]], path: Path) -> Path:
    """Sheets one above the other, each under a caption line: one PNG for the asset page."""
    from PIL import Image, ImageDraw

    images = [(caption, Image.open(p).convert("RGB")) for caption, p in parts]
    width = max(im.width for _, im in images)
    caption_h, gap = 14, 8
    sheet = Image.new("RGB", (width, sum(im.height + caption_h + gap for _, im in images) - gap),
                      "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for caption, im in images:
        draw.text((2, y + 1), caption, fill="black")
        sheet.paste(im, (0, y + caption_h))
        y += im.height + caption_h + gap
    sheet.save(path)
    return path


@dataclass
class CycleGANConfig(GANConfig):
    domains: str = option("packshot|person", DOMAINS_HELP)
    lambda_cycle: float = option(10.0, "weight λ of each cycle term (the paper's 10)", ge=0)
    lambda_identity: float = option(0.5, "identity weight as a share of λ (the paper's 0.5: "
                                    "½λ·‖G_A(b) − b‖₁; 0: off)", ge=0)
    pool_size: int = option(50, "generated images kept per direction for D (the paper's 50; "
                            "0: none)", ge=0)
    generator: str = option("auto", "auto (resnet_6blocks below 256 px, resnet_9blocks from "
                            "256, as the paper), or a named one",
                            choices=("auto", *GENERATORS))
    discriminator: str = option("basic", "basic (PatchGAN scaled to the image size), "
                                "n_layers (d_layers), pixel (1x1)", choices=DISCRIMINATORS)
    d_layers: int = option(3, "stride-2 layers of the n_layers PatchGAN", ge=1, le=6)
    norm: str = option("instance", "instance (the paper's), batch or none", choices=NORMS)
    image_size: int = option(0, "resize both domains to this size (0: the store's own; 128 "
                             "and 256 are for GPUs)", ge=0)
    flip: bool = option(True, "random left-right flips of the training images")
    lr_decay_start: int = option(0, "step from which the learning rates fall linearly to 0 at "
                                 "`steps` (0: constant)", ge=0)
    compile: bool = option(False, "compile G and D for the training step with torch.compile "
                           "(inductor, needs a C++ compiler): about 2 minutes the first time "
                           "on a 2-core CPU, seconds once cached on disk, then steps 1.1-1.6x "
                           "faster there; for long runs")
    fd_classifier: str = option("", "attribute classifier file (attribute_classifier.pt) for "
                                "the Fréchet distances and edit success in the summary; empty: "
                                "cycle errors only (the asset fills in the store's)")

    # demo: ~2 min on an idle 2-core CPU at 64 px: 500 images at 0.20 s of one core's CPU
    # time each (6.5 GFLOP a step per image), x1.23, pix2pix's ratio of its measured idle
    # 2-core time to the same single-thread figure. full: the paper's: batch 1, widths 64,
    # 100 + 100 epochs of ~1,000 images per domain, the decay over the second half (scale
    # steps to the store)
    PROFILES = {"demo": {"steps": 250, "batch_size": 2, "ngf": 16, "ndf": 32,
                         "sample_every": 100, "checkpoint_every": 100},
                "full": {"steps": 200000, "batch_size": 1, "ngf": 64, "ndf": 64,
                         "lr_decay_start": 100000, "log_every": 100,
                         "sample_every": 5000, "checkpoint_every": 5000}}


@register
class CycleGAN(Family):
    """CycleGAN: two ResNet generators with cycle and identity losses, PatchGANs, LSGAN, a
    history pool; packshot <-> person or between two values of a label column."""

    name = "cyclegan"
    kind = "translator"
    Config = CycleGANConfig
    losses = ("d_a", "d_b", "g_a", "g_b", "cycle_a", "cycle_b", "idt_a", "idt_b")
    variants = {"packshot_person": {"domains": "packshot|person"},
                # the demo store's best-supported pair: 32 short / 41 long training packshots,
                # both recognised by the attribute classifier (~0.85 on the store)
                "sleeve_short_long": {"domains": "sleeve_length:short|long"}}
    data_store = "paired_images"
    # between two label values the champion is chosen by edit success instead (__init__)
    measures = ("frechet_distance", "frechet_distance_b2a", "cycle_l1_a", "cycle_l1_b")
    main_measure = ("frechet_distance", "min")
    ATTRIBUTE_MEASURES = ("edit_success", "edit_success_b2a", "preservation",
                          "frechet_distance", "frechet_distance_b2a", "cycle_l1_a",
                          "cycle_l1_b")

    def __init__(self, cfg: CycleGANConfig, data, device: torch.device):
        super().__init__(cfg, data, device)
        if data.domains[0] != "store":  # two values of a label column: an attribute edit
            self.measures, self.main_measure = self.ATTRIBUTE_MEASURES, ("edit_success", "max")

    @classmethod
    def from_store(cls, cfg: CycleGANConfig, store) -> CycleGANConfig:
        """The summary's classifier measures use the store's attribute classifier."""
        if not cfg.fd_classifier and Path(store.attribute_classifier).is_file():
            return replace(cfg, fd_classifier=str(store.attribute_classifier))
        return cfg

    @classmethod
    def data_options(cls, cfg: CycleGANConfig) -> dict:
        return {"domains": parse_domains(cfg.domains), "flip": cfg.flip,
                "image_size": cfg.image_size or None}

    @classmethod
    def check(cls, cfg: CycleGANConfig, data) -> None:
        if not isinstance(data, UnpairedDataset):
            raise ValueError(f"{cls.name} trains on two domains of a store (--domains), not "
                             f"{type(data).__name__}")
        check_domain_sizes(data, cfg.batch_size)
        if data.image_size % 4 and (cfg.generator == "auto" or "resnet" in cfg.generator):
            raise ValueError(f"the ResNet generator halves the image twice: image_size must be "
                             f"divisible by 4, got {data.image_size}")
        if data.channels != data.targets.shape[1]:
            raise ValueError(f"the identity loss needs both domains with the same channels, "
                             f"got {data.channels} and {data.targets.shape[1]}")
        if len(data.test_index()) < 2:  # a Fréchet distance needs two images at least
            raise ValueError(f"{cls.name} is measured on domain A's test split (2 images at "
                             f"least), and {data.a_name} has {len(data.test_index())}")
        if cfg.fd_classifier and not Path(cfg.fd_classifier).is_file():
            raise ValueError(f"fd_classifier {cfg.fd_classifier}: no such file")
        if cfg.compile:
            require_compiler()

    def build(self) -> None:
        cfg, data = self.cfg, self.data
        nc, size = data.channels, data.image_size
        netG = default_generator(size) if cfg.generator == "auto" else cfg.generator

        def g() -> torch.nn.Module:
            return self.to_device(define_G(nc, nc, cfg.ngf, netG, cfg.norm, image_size=size))

        def d() -> torch.nn.Module:
            return self.to_device(define_D(nc, cfg.ndf, cfg.discriminator, cfg.d_layers,
                                           cfg.norm, image_size=size))

        self.G_A, self.G_B, self.D_A, self.D_B = g(), g(), d(), d()
        # what the step calls: the networks, or their compiled forwards (same parameters)
        self.train_nets = [self.compiled(n, cfg.compile)
                           for n in (self.G_A, self.G_B, self.D_A, self.D_B)]
        # the pools are modules so the checkpoint keeps them and a resumed run draws alike
        self.pool_a = ImagePool(cfg.pool_size, (nc, size, size)).to(self.device)
        self.pool_b = ImagePool(cfg.pool_size, (nc, size, size)).to(self.device)
        self.modules = {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B,
                        "pool_a": self.pool_a, "pool_b": self.pool_b}
        self.optimizers = {"optG": self.adam(self.G_A, self.G_B),
                           "optD": self.adam(self.D_A, self.D_B)}
        a_rows = shown_rows(data.test_index(), data.train_index(), 8)
        b_rows = shown_rows(data.target_test_index(), data.b_pool, 8)
        self.fixed = (data.images_of(a_rows), data.targets_of(b_rows))

    def train_index(self) -> torch.Tensor:
        return self.data.train_index()

    def decay_lr(self) -> None:
        """The repository's linear policy: constant, then linearly to 0 from lr_decay_start."""
        start, steps = self.cfg.lr_decay_start, self.cfg.steps
        if start and self.current_step >= start:
            lr = self.cfg.lr * (1 - (self.current_step - start) / (steps - start + 1))
            for opt in self.optimizers.values():
                for group in opt.param_groups:
                    group["lr"] = lr

    @staticmethod
    def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
        pred = pred.float()
        return F.mse_loss(pred, torch.full_like(pred, float(real)))

    def step(self, real, labels, gen, measure):
        a, b = real
        cfg, (G_A, G_B, D_A, D_B) = self.cfg, self.train_nets
        lam, lam_idt = cfg.lambda_cycle, cfg.lambda_cycle * cfg.lambda_identity
        self.decay_lr()
        with self.autocast:
            if lam_idt > 0:  # G_A(b), G_B(a): the identity terms' images, in the same calls
                fake_b, same_b = self.both(G_A, a, b)
                fake_a, same_a = self.both(G_B, b, a)
            else:
                fake_b, fake_a = G_A(a), G_B(b)
            rec_a, rec_b = G_B(fake_b), G_A(fake_a)

        # (1) Update D_A on real B against the history of G_A(A), D_B likewise
        pooled_b, pooled_a = self.pool_b.query(fake_b, gen), self.pool_a.query(fake_a, gen)
        with self.autocast:
            real_b, past_b = self.both(D_A, b, pooled_b)
            real_a, past_a = self.both(D_B, a, pooled_a)
            d_a = 0.5 * (self.lsgan(real_b, True) + self.lsgan(past_b, False))
            d_b = 0.5 * (self.lsgan(real_a, True) + self.lsgan(past_a, False))
        self.update("optD", d_a + d_b)

        # (2) Update G_A and G_B: fool both D, close both cycles, keep the other domain's
        # images as they are (identity)
        self.D_A.requires_grad_(False)
        self.D_B.requires_grad_(False)
        with self.autocast:
            g_a, g_b = self.lsgan(D_A(fake_b), True), self.lsgan(D_B(fake_a), True)
            cycle_a = F.l1_loss(rec_a.float(), a.float())
            cycle_b = F.l1_loss(rec_b.float(), b.float())
            errG = g_a + g_b + lam * (cycle_a + cycle_b)
            idt_a = idt_b = torch.zeros((), device=a.device)
            if lam_idt > 0:
                idt_a = F.l1_loss(same_b.float(), b.float())
                idt_b = F.l1_loss(same_a.float(), a.float())
                errG = errG + lam_idt * (idt_a + idt_b)
        self.update("optG", errG)
        self.D_A.requires_grad_(True)
        self.D_B.requires_grad_(True)
        return {"d_a": d_a, "d_b": d_b, "g_a": g_a, "g_b": g_b, "cycle_a": cycle_a,
                "cycle_b": cycle_b, "idt_a": idt_a, "idt_b": idt_b}

    def grids(self):
        """Rows of 8 A images (test first), G_A(a), G_B(G_A(a)); then B likewise."""
        a, b = (t.to(self.device) for t in self.fixed)
        fake_b, fake_a = self.G_A(a).float(), self.G_B(b).float()
        return {"samples": torch.cat([a, fake_b, self.G_B(fake_b).float(),
                                      b, fake_a, self.G_A(fake_a).float()])}

    def translator(self):
        return self.G_A

    def translator_example(self) -> tuple[torch.Tensor, ...]:
        """4 images of A, test first (an attribute domain may hold fewer test images)."""
        return (self.data.images_of(shown_rows(self.data.test_index(),
                                               self.data.train_index(), 4)),)

    def edits(self, value: str) -> list[Edit]:
        """The edit a translation into `value` of the label column should make (none between
        the store's two sides)."""
        column = self.data.domains[0]  # the name is part of MLflow metric names: no "="
        return [] if column == "store" else [Edit(f"{column}_{value}", None, column, value)]

    def evaluation_set(self, n: int = 1000, seed: int = 0) -> dict:
        """A's test images into B (G_A), realism against every B image; between label values
        the edit to B's value."""
        data = self.data
        return {"inputs": data.images_of(data.test_index()[:n]),
                "reference": data.targets_of(torch.arange(len(data.targets))),
                "edits": self.edits(data.domains[2])}

    def reverse_set(self, n: int = 1000) -> dict:
        """B's test images into A (G_B), realism against every A image; the edit to A's value."""
        data = self.data
        return {"inputs": data.targets_of(data.target_test_index()[:n]),
                "reference": data.images_of(torch.arange(len(data.images))),
                "edits": self.edits(data.domains[1])}

    def measure(self, classifier=None, values: dict | None = None) -> dict[str, float]:
        """Both directions on the test splits: cycle L1 (A -> B -> A, B -> A -> B); with a
        classifier the Fréchet distances and the edits (B -> A suffixed _b2a)."""
        g_ab = copy.deepcopy(self.G_A).float().cpu().eval()
        g_ba = copy.deepcopy(self.G_B).float().cpu().eval()
        forward, backward = self.evaluation_set(), self.reverse_set()
        out: dict[str, float] = {}
        for suffix, net, other, ev in (("", g_ab, g_ba, forward), ("_b2a", g_ba, g_ab, backward)):
            x = ev["inputs"]
            if not len(x):
                continue
            side = "a" if not suffix else "b"
            out[f"cycle_l1_{side}"] = round(l1(translate(other, translate(net, x)), x), 5)
            if classifier is not None:
                if len(x) < 2:  # B's test split may hold one image: no Fréchet distance
                    ev = {**ev, "reference": None}
                scores = evaluate_translator(net, classifier=classifier, values=values, **ev)
                out |= {f"{k}{suffix}": v for k, v in scores.items()
                        if k in ("n_test", "frechet_distance", "edit_success", "preservation")}
        return out

    def write_sheet(self, path: Path, n: int = 16) -> Path:
        """input | A->B | A->B->A for n test products of A, and the same from B, one PNG."""
        path = Path(path)
        g_ab = copy.deepcopy(self.G_A).float().cpu().eval()
        g_ba = copy.deepcopy(self.G_B).float().cpu().eval()
        a_name, b_name = self.domains()
        parts = []
        for tag, net, other, ev, src, dst in (
                ("a2b", g_ab, g_ba, self.evaluation_set(n), a_name, b_name),
                ("b2a", g_ba, g_ab, self.reverse_set(n), b_name, a_name)):
            x = ev["inputs"]
            if not len(x):
                continue
            fwd = translate(net, x)
            arrows = ("A->B", "A->B->A") if tag == "a2b" else ("B->A", "B->A->B")
            sheet = translation_grid([("input", x), (arrows[0], fwd),
                                      (arrows[1], translate(other, fwd))],
                                     path.with_name(f"{path.stem}_{tag}.png"))
            parts.append((f"{arrows[0]}: {src} -> {dst}, {len(x)} test "
                          f"image{'s' * (len(x) != 1)}", sheet))
        return stack_sheets(parts, path)

    def finish(self, out_dir: Path) -> dict:
        """Both translators' weights, the report's sheet, and the measures (the classifier's
        when fd_classifier is given)."""
        out_dir = Path(out_dir)
        torch.save(self.G_A.state_dict(), out_dir / "translator.pt")
        torch.save(self.G_B.state_dict(), out_dir / "translator_b2a.pt")
        classifier = values = None
        if self.cfg.fd_classifier:
            from training.classifier import load_classifier

            classifier, values = load_classifier(Path(self.cfg.fd_classifier))
        self.write_sheet(out_dir / "translation.png")
        return {"domains": "->".join(self.domains()), "measures": self.measure(classifier,
                                                                               values)}

    def report(self, out_dir, summary):
        """The reverse direction's measures and both cycle errors (the asset measures A -> B
        itself with the registry's classifier); the two-direction sheet."""
        sheet = Path(out_dir) / "translation.png"
        if not sheet.exists():  # a run folder trained before the sheet was drawn
            self.write_sheet(sheet)
        measures = summary.get("measures") or self.measure()
        own = {k: v for k, v in measures.items() if k.endswith("_b2a") or k.startswith("cycle")}
        return own, {"translation": [sheet]}
