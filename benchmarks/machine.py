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


_pristine = None


def in_pristine_process(fn, *args):
    """fn(*args) in one spawned process of its own, kept for the script's later calls: the
    plain loops run there. The frame's training keeps freed memory in its process's heap
    for good (training.runtime.keep_freed_memory); a plain loop timed after it in the same
    process would run on that allocator too, not on the C library's default as the reference
    implementations' users have it. fn must be importable (a module-level function)."""
    global _pristine
    if _pristine is None:
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        _pristine = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
    return _pristine.submit(fn, *args).result()
