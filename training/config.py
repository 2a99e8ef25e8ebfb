"""Named profiles for training configs: `demo` (minutes on a 2-core CPU) and `full` (the
papers' settings, for a GPU)."""

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
