"""Options of the training configs: `option` (a field with its help and allowed values, from
which the CLI and the Dagster config are generated), and named profiles: `demo` (minutes on a
2-core CPU) and `full` (the papers' settings, for a GPU)."""

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from training.augment import POLICIES as AUGMENT_POLICIES


def option(default: Any, help: str, *, choices: tuple | None = None, ge: float | None = None,
           gt: float | None = None, le: float | None = None, lt: float | None = None) -> Any:
    """A config field with its help text and allowed values. The CLI (argparse choices and
    checks) and the Dagster config (pydantic constraints) are both generated from these."""
    meta = {"help": help, "choices": choices, "ge": ge, "gt": gt, "le": le, "lt": lt}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_config(cfg: Any) -> None:
    """Every option inside its declared range and choices: a one-line ValueError naming the
    field, the value and what is allowed, before any work starts."""
    for f in dataclasses.fields(cfg):
        value, meta = getattr(cfg, f.name), f.metadata
        if value is None or isinstance(value, bool) or not meta:
            continue
        if meta.get("choices") and value not in meta["choices"]:
            raise ValueError(f"{f.name} must be one of {list(meta['choices'])}, got {value!r}")
        for key, ok, word in (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                              ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<")):
            bound = meta.get(key)
            if bound is not None and isinstance(value, (int, float)) and not ok(value, bound):
                raise ValueError(f"{f.name} must be {word} {bound}, got {value!r}")



class ProfileConfig:
    """Mixin for a family's config dataclass: PROFILES maps a profile name to overrides."""

    PROFILES: ClassVar[dict[str, dict]] = {"demo": {}}

    @classmethod
    def profile(cls, name: str, **overrides):
        """The profile's settings, then every override that is not None."""
        if name not in cls.PROFILES:
            raise ValueError(f"profile must be one of {list(cls.PROFILES)}, got {name!r}")
        given = {k: v for k, v in overrides.items() if v is not None}
        return cls(**{**cls.PROFILES[name], **given})


@dataclass
class GANConfig(ProfileConfig):
    """What every GAN loop takes: the DCGAN paper's optimiser, widths, seed and arithmetic.
    The demo profile is these defaults; `full` is the papers' widths and batch for a GPU."""

    steps: int = option(300, "training steps (a resumed run continues up to this)", ge=1)
    batch_size: int = option(32, "images per step (per process under torchrun)", ge=1)
    nz: int = option(100, "latent dimensions", ge=1)
    ngf: int = option(32, "generator width", ge=1)
    ndf: int = option(32, "discriminator width", ge=1)
    lr: float = option(2e-4, "Adam learning rate", gt=0)
    beta1: float = option(0.5, "Adam beta1", ge=0, lt=1)
    seed: int = option(0, "seed of weights, batches and noise", ge=0)
    bf16: bool = option(True, "bf16 autocast where the hardware runs it natively and faster than "
                        "fp32 (CUDA; AVX-512 BF16 or AMX CPUs whose bf16 products, timed once, "
                        "run 1.3x as fast; fp32 elsewhere); fp32 when false")
    channels_last: bool = option(True, "channels_last memory format")
    log_every: int = option(10, "steps between loss rows", ge=1)
    sample_every: int = option(100, "steps between sample grids", ge=1)
    checkpoint_every: int = option(100, "steps between checkpoints", ge=1)
    # small-data tools (training/augment.py, training/ema.py), off by default; a family whose
    # step does not use them refuses them before training (Family.check_small_data)
    augment: str = option("", "DiffAugment policy applied to real and generated images before "
                          "D, in D's and G's updates (empty: off)", choices=AUGMENT_POLICIES)
    augment_p: float = option(1.0, "probability each augmentation is applied to an image",
                              gt=0, le=1)
    ema_decay: float = option(0.0, "decay of the moving average of G's weights, which is then "
                              "sampled and exported (0: off)", ge=0, lt=1)
    ema_warmup: int = option(0, "G updates the average copies the weights before averaging",
                             ge=0)
    r1_gamma: float = option(0.0, "γ of the R1 penalty γ/2·E‖∇D(x)‖² on the real images in "
                             "D's update (0: off)", ge=0)
    r1_every: int = option(1, "lazy R1 (StyleGAN2): the penalty, weighted by this number, on "
                           "every this-many-th D update only; the same expected gradient at a "
                           "fraction of the cost of its double backward", ge=1)
    penalty_bf16: bool = option(False, "run the gradient penalty (WGAN-GP's, DRAGAN's, "
                                "StarGAN's, R1) and its double backward under bf16 autocast "
                                "too, where bf16 is on (false: in fp32)")

    PROFILES: ClassVar[dict[str, dict]] = {
        "demo": {}, "full": {"steps": 20000, "batch_size": 64, "ngf": 64, "ndf": 64,
                             "sample_every": 1000, "checkpoint_every": 1000, "log_every": 50}}
