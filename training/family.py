"""What a model family is, and the registry of families.

A family is one module under training/families/ holding a subclass of `Family` decorated with
`@register`: its config dataclass (the single source of its options: the CLI flags and the
Dagster config are generated from it), how it builds its networks and optimisers, one training
step (the "(1) update D, (2) update G" block returning a row of losses), what it exports (a
sampler z -> image, a conditional sampler (z, labels) -> image, a translator image -> image, or
a classifier) and its report. training/loop.py runs every family the same way: devices,
torchrun, seeding, bf16 autocast + channels_last, exact resume, logging, grids, checkpoints,
the summary. See docs/ARCHITECTURE.md, "Adding a family".
"""

import importlib
import pkgutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from training.config import check_config, option  # noqa: F401  (families import them here)
from training.gemm_conv import use_gemm_convs
from training.latent import sampler_inputs
from training.runtime import average_gradients, bf16_choice
from training.stacking import both

if TYPE_CHECKING:
    from training.ema import EMA

KINDS = ("sampler", "conditional", "translator", "classifier")
FAMILIES: dict[str, type["Family"]] = {}


def register(cls: type["Family"]) -> type["Family"]:
    """Class decorator: make a family known by its name (CLI, assets, leaderboard)."""
    if cls.kind not in KINDS:
        raise ValueError(f"{cls.__name__}.kind must be one of {KINDS}, got {cls.kind!r}")
    if isinstance(cls.in_demo, tuple) and not set(cls.in_demo) <= set(cls.variants):
        raise ValueError(f"{cls.__name__}.in_demo names variants it does not have: "
                         f"{sorted(set(cls.in_demo) - set(cls.variants))}")
    FAMILIES[cls.name] = cls
    return cls


def backward_to(loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    """loss.backward() into the optimiser's parameters only. A G loss runs through D, and a
    plain backward() also computes D's weight gradients, which nothing reads before D's next
    zero_grad: a twelfth of a DCGAN step's arithmetic. Autograd skips them when told which
    leaves it is for; the gradients it does compute are the same."""
    params = [p for group in opt.param_groups for p in group["params"] if p.requires_grad]
    torch.autograd.backward(loss, inputs=params)


def load_families() -> dict[str, type["Family"]]:
    """Import every module of training/families/ (each registers itself); name -> family."""
    import training.families as package

    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"training.families.{info.name}")
    return dict(sorted(FAMILIES.items()))


def get_family(name: str) -> type["Family"]:
    families = load_families()
    if name not in families:
        raise ValueError(f"unknown family {name!r}; known: {', '.join(families)}")
    return families[name]


class Family:
    """Base class of a model family. Subclasses set the class attributes and override the
    hooks; everything else (the loop, checkpoints, logging) is training/loop.py's."""

    name: ClassVar[str]
    kind: ClassVar[str] = "sampler"
    Config: ClassVar[type]
    losses: ClassVar[tuple[str, ...]] = ()  # the row step() returns, in order
    latent: ClassVar[str] = "normal"  # the prior of z (training.latent); a registry tag
    # One Dagster asset per variant: {asset suffix: config overrides}; {} = one asset named
    # after the family. in_demo: trained by full_pipeline on the demo (else by train_job only):
    # True for every variant, or a tuple naming the variants that are.
    variants: ClassVar[dict[str, dict]] = {}
    in_demo: ClassVar[bool | tuple[str, ...]] = False
    grid_names: ClassVar[tuple[str, ...]] = ("samples",)  # folders of per-step grids
    # the small-data options of GANConfig this family's step implements ("augment", "ema",
    # "r1"); the others are refused when set (check_small_data), never silently ignored
    small_data: ClassVar[tuple[str, ...]] = ()
    # whether the step has a gradient penalty of its own (WGAN-GP, DRAGAN, StarGAN), which
    # penalty_bf16 then runs in bf16 (R1 is the small-data tool above)
    penalty: ClassVar[bool] = False
    # translators (kind "translator"): the store the asset reads unless its `data` names
    # another, the measures the family reports (training.translation_metrics) and the one its
    # champion is chosen by, with "min" or "max" (the translator leaderboard reads both tags)
    data_store: ClassVar[str] = "packshots"
    # assets the family's asset needs besides the packshots, crops and classifier (by asset
    # name, e.g. "description_encoder"); the asset writing data_store is added by the assets
    upstream: ClassVar[tuple[str, ...]] = ()
    measures: ClassVar[tuple[str, ...]] = ()
    main_measure: ClassVar[tuple[str, str]] = ("frechet_distance", "min")

    def __init__(self, cfg: Any, data: Any, device: torch.device):
        self.cfg, self.data, self.device = cfg, data, device
        self.current_step = 0  # set by the loop before each step
        self.modules: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        # bf16 where the hardware runs it natively and faster than fp32; fp32 elsewhere
        self.bf16, self.arithmetic = ((False, "fp32: asked for (bf16 off)") if not cfg.bf16
                                      else bf16_choice(device))
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16)
        self.penalty_bf16 = self.bf16 and bool(getattr(cfg, "penalty_bf16", False))
        self.memory_format = (torch.channels_last if cfg.channels_last
                              else torch.contiguous_format)

    @classmethod
    def demo_variant(cls, variant: str) -> bool:
        """Whether full_pipeline trains this variant (in_demo), not only train_job."""
        if isinstance(cls.in_demo, tuple):
            return variant in cls.in_demo
        return cls.in_demo

    @classmethod
    def check_small_data(cls, cfg: Any) -> None:
        """Refuse augment / ema_decay / r1_gamma on a family whose step does not use them."""
        for tool, field in (("augment", "augment"), ("ema", "ema_decay"), ("r1", "r1_gamma")):
            if getattr(cfg, field, None) and tool not in cls.small_data:
                able = [n for n, f in FAMILIES.items() if tool in f.small_data]
                raise ValueError(f"{cls.name} does not implement {field}; families that do: "
                                 f"{', '.join(able) or 'none'}")
        if getattr(cfg, "r1_every", 1) > 1 and not getattr(cfg, "r1_gamma", 0):
            raise ValueError(f"r1_every={cfg.r1_every} spaces out an R1 penalty that is off: "
                             "set r1_gamma > 0 too, or leave r1_every at 1")
        if getattr(cfg, "penalty_bf16", False) and not (cls.penalty or getattr(cfg, "r1_gamma",
                                                                              0)):
            able = [n for n, f in FAMILIES.items() if f.penalty]
            raise ValueError(f"penalty_bf16: {cls.name} runs no gradient penalty; families with "
                             f"one: {', '.join(able)}, or any with r1_gamma > 0")

    # ----- declared by the family ------------------------------------------------------------
    @classmethod
    def check(cls, cfg: Any, data: Any) -> None:
        """Refuse a config or data this family cannot train on (one-line ValueError)."""

    @classmethod
    def from_store(cls, cfg: Any, store: Any) -> Any:
        """The config completed with files the pipeline's store provides (a
        training.paths.StoreLayout), for options left unset; the CLI passes files explicitly."""
        return cfg

    @classmethod
    def data_options(cls, cfg: Any) -> dict:
        """Keyword arguments for training.datasets.open_dataset (flips, size, labels)."""
        return {}

    def build(self) -> None:
        """Create self.modules and self.optimizers (torch is seeded with cfg.seed before)."""
        raise NotImplementedError

    def train_index(self) -> torch.Tensor:
        """The indices of the images training may draw from (all, unless a family holds
        some out)."""
        return torch.arange(len(self.data))

    def step(self, real: torch.Tensor, labels: torch.Tensor | None, gen: torch.Generator,
             measure: bool) -> dict[str, torch.Tensor]:
        """One training step on a batch; returns the loss row (tensors; read only when
        `measure`, so terms that are only measured can be skipped otherwise)."""
        raise NotImplementedError

    def grids(self) -> dict[str, torch.Tensor]:
        """Images in [-1, 1] for the per-step grids, one entry per name in grid_names."""
        raise NotImplementedError

    def finish(self, out_dir: Path) -> dict:
        """After the last step, on rank 0: write the exported weights, return summary extras."""
        return {}

    def sampler(self) -> nn.Module:
        """The network users load from the registry (kind sampler/conditional: input
        (N, sampler_dim, 1, 1), output images in [-1, 1])."""
        raise NotImplementedError

    @property
    def sampler_dim(self) -> int:
        return self.cfg.nz

    def translator(self) -> nn.Module:
        """The network users load (kind translator): images (N, channels, image_size,
        image_size) in [-1, 1] -> images of the target domain in [-1, 1]; when the tag
        `conditioning` is not `none` it takes a second tensor (N, cond_dim): the label one-hots
        of the requested edit (`labels`) or a style code (`style`)."""
        raise NotImplementedError

    def domains(self) -> tuple[str, str]:
        """(source, target) domain names of a translator: its data's (`packshot`, `person`,
        or `color=black`, ...), in the trained direction."""
        return (str(getattr(self.data, "a_name", "a")), str(getattr(self.data, "b_name", "b")))

    def conditioning(self) -> dict[str, str]:
        """A translator's second input, as registry tags: {} when there is none; else
        `conditioning` (`labels` or `style`), `cond_dim`, and for labels `label_columns`,
        `label_sizes`, `label_values` (JSON) as conditional samplers have them."""
        return {}

    def evaluation_set(self, n: int = 1000, seed: int = 0) -> dict:
        """Keyword arguments of training.translation_metrics.evaluate_translator from this
        family's held-out data: by default the test split's inputs, their targets when the data
        is paired, and every target-domain image as the realism reference. Conditional and
        multimodal families add `condition`, `identity`, `edits` or `style`."""
        from training.translation_metrics import translation_set

        return translation_set(self.data, n)

    def translator_example(self) -> tuple[torch.Tensor, ...]:
        """The inputs MLflow exports the translator with: 4 test images (and the second
        input of a conditional translator, which such a family adds)."""
        index = self.data.test_index()[:4] if hasattr(self.data, "test_index") else \
            torch.arange(4)
        return (self.data.images_of(index),)

    def report(self, out_dir: Path, summary: dict) -> tuple[dict, dict[str, list[Path]]]:
        """The family's own metrics and images ({MLflow folder: [png paths]}), for the asset."""
        return {}, {}

    def registry_tags(self) -> dict[str, str]:
        """Tags of the registered version, so every consumer samples it correctly: nz is the
        latent's dimensions only (training.latent appends a conditional sampler's one-hots).
        A translator's say what it translates instead (translator_tags)."""
        if self.kind == "translator":
            return self.translator_tags()
        return {"kind": self.kind, "latent": self.latent, "nz": str(self.cfg.nz),
                "image_size": str(getattr(self.cfg, "image_size", None) or 64),
                "channels": str(getattr(self.cfg, "channels", None) or 3)}

    def translator_tags(self) -> dict[str, str]:
        """kind translator, domains `source->target` (and each alone), image_size, channels,
        conditioning (`none`, `labels`, `style`, with its conditioning() tags), the measures
        and the main measure with its goal (`main_goal` min or max)."""
        source, target = self.domains()
        cond = self.conditioning()
        return {"kind": "translator", "domains": f"{source}->{target}", "source": source,
                "target": target, "image_size": str(self.data.image_size),
                "channels": str(self.data.channels), "conditioning": "none", **cond,
                "measures": ",".join(self.measures), "main_measure": self.main_measure[0],
                "main_goal": self.main_measure[1]}

    # ----- shared by every family ------------------------------------------------------------
    # net(x, *args), net(y, *args) as one call, batch norms per batch (training/stacking.py)
    both = staticmethod(both)

    def averaged_sampler(self, ema: "EMA") -> nn.Module:
        """G's moving average as users get it: its batch-norm statistics recomputed for the
        averaged weights (training/ema.py) on 1,024 inputs drawn as a registry user draws
        them (registry_tags, seed 2)."""
        inputs = sampler_inputs(1024, self.registry_tags(), torch.Generator().manual_seed(2))[0]
        return ema.recalibrated(inputs.to(self.device))

    def update(self, optimizer: str, loss: torch.Tensor, max_grad_norm: float = 0.0) -> None:
        """zero_grad, backward, data-parallel gradient averaging (a no-op on one process), the
        gradient-norm clip when max_grad_norm is set (Fader's), step: the one way every family
        updates a set of networks."""
        opt = self.optimizers[optimizer]
        opt.zero_grad(set_to_none=True)
        backward_to(loss, opt)
        nets = list(self.networks_of(optimizer))
        average_gradients(*nets)
        if max_grad_norm:
            nn.utils.clip_grad_norm_([p for n in nets for p in n.parameters()], max_grad_norm)
        opt.step()

    def networks_of(self, optimizer: str) -> Iterator[nn.Module]:
        params = {id(p) for group in self.optimizers[optimizer].param_groups
                  for p in group["params"]}
        for module in self.modules.values():
            if any(id(p) in params for p in module.parameters()):
                yield module

    def adam(self, *modules: nn.Module, lr: float | None = None,
             betas: tuple[float, float] | None = None) -> torch.optim.Adam:
        """Adam as one fused kernel per parameter group (CPU and CUDA): the per-tensor loop
        of sqrt, div and addcdiv took a third of the 32 px collection's step on the CPU, its
        1024 x 8192 layers being memory-bound there. Same update, same losses (the frame
        equivalence test)."""
        params = [p for m in modules for p in m.parameters()]
        return torch.optim.Adam(params, lr=lr or self.cfg.lr,
                                betas=betas or (self.cfg.beta1, 0.999), fused=True)

    @staticmethod
    def compiled(net: nn.Module, enabled: bool) -> nn.Module:
        """net's forward compiled by torch.compile (inductor), sharing net's parameters, for a
        step to call: the module itself stays as it is for checkpoints, grids and export.
        Shapes are specialised: each batch shape the step uses compiles once."""
        return torch.compile(net, dynamic=False) if enabled else net

    def to_device(self, net: nn.Module) -> nn.Module:
        """The network on the device in the run's memory format; with bf16 on the CPU, its
        small convolutions train as matrix products (training/gemm_conv.py), where oneDNN's
        bf16 kernels run up to 9x slower."""
        if self.bf16 and self.device.type == "cpu":
            use_gemm_convs(net)
        return net.to(self.device).to(memory_format=self.memory_format)

    @classmethod
    def restore(cls, cfg: Any, data: Any, out_dir: Path) -> "Family":
        """The trained family of a run folder (from its checkpoint), on the CPU, eval mode."""
        from training.checkpoint import load_modules

        family = cls(cfg, data, torch.device("cpu"))
        torch.manual_seed(cfg.seed)
        family.build()
        load_modules(Path(out_dir) / "checkpoint.pt", family.modules)
        for m in family.modules.values():
            m.float().eval()
        return family
