"""Named profiles for training configs: `demo` (minutes on a 2-core CPU) and `full` (the
papers' settings, for a GPU)."""

from dataclasses import dataclass
from typing import ClassVar


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

    steps: int = 300
    batch_size: int = 32
    nz: int = 100
    ngf: int = 32
    ndf: int = 32
    lr: float = 2e-4
    beta1: float = 0.5
    seed: int = 0
    bf16: bool = True  # autocast; fp32 when False
    channels_last: bool = True
    log_every: int = 10
    sample_every: int = 100
    checkpoint_every: int = 100

    PROFILES: ClassVar[dict[str, dict]] = {
        "demo": {}, "full": {"steps": 20000, "batch_size": 64, "ngf": 64, "ndf": 64,
                             "sample_every": 1000, "checkpoint_every": 1000, "log_every": 50}}
