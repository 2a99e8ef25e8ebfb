"""The machine a benchmark's figures were measured on, named the same way by every script."""

import platform
from pathlib import Path


def cpu_model() -> str:
    """The "model name" line of /proc/cpuinfo (else what the platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"
