"""The machine a benchmark's figures were measured on, named the same way by every script,
and the spawned processes the scripts time a loop in where this one's state must not reach."""

import os
import platform
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager
from multiprocessing import get_context
from pathlib import Path
from unittest import mock


def cpu_model() -> str:
    """The "model name" line of /proc/cpuinfo (else what the platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


_pristine = None


def _set_environment(env: dict[str, str]) -> None:
    os.environ.update(env)


def spawned_process(**env: str) -> ProcessPoolExecutor:
    """An executor of one spawned process (a fresh interpreter: nothing this process did to
    its allocator or torch carries over), with `env` set in it before anything runs there."""
    return ProcessPoolExecutor(1, mp_context=get_context("spawn"),
                               initializer=_set_environment, initargs=(env,))


def in_pristine_process(fn, *args):
    """fn(*args) in one spawned process of its own, kept for the script's later calls: the
    plain loops run there. The frame's training keeps freed memory in its process's heap
    for good (training.runtime.keep_freed_memory); a plain loop timed after it in the same
    process would run on that allocator too, not on the C library's default as the reference
    implementations' users have it. fn must be importable (a module-level function)."""
    global _pristine
    if _pristine is None:
        _pristine = spawned_process()
    return _pristine.submit(fn, *args).result()


def cpu_bf16_mode(mode: str) -> AbstractContextManager:
    """training.runtime's CPU_BF16_ENV set to `mode` inside the block, restored after: "on"
    for figures that compare bf16 with fp32 on any CPU with native kernels, faster or not."""
    from training.runtime import CPU_BF16_ENV, CPU_BF16_MODES  # torch: only where it is used

    if mode not in CPU_BF16_MODES:
        raise ValueError(f"mode must be one of {', '.join(CPU_BF16_MODES)}, got {mode!r}")
    return mock.patch.dict(os.environ, {CPU_BF16_ENV: mode})
