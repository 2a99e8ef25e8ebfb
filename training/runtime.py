"""Where a training runs: one process or several under torchrun, CPU or GPU.

Every family's loop starts with init_distributed(); only rank 0 writes files and logs.
"""

import ctypes
import ctypes.util
import functools
import os
import shutil
import time

import torch
import torch.distributed as dist


def init_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device). Under torchrun (WORLD_SIZE > 1) joins the process group:
    gloo on the CPU, nccl on GPUs, one GPU per local rank."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_kept = False


def keep_freed_memory() -> bool:
    """Keep freed memory in this process's heap for the next step, on the CPU.

    glibc's malloc maps every block over 32 MiB afresh from the kernel and unmaps it on
    free, and gives the heap's free top back: each step's gradients, casts and optimiser
    temporaries of a 1024 x 8192 fp32 layer (the 32 px nets') then fault in 32 MiB of new
    zeroed pages, 12 ms each where the arithmetic takes 2 (benchmarks/README.md, "Freed
    memory kept"). With mapping off and trimming out of reach, a step reuses the previous
    step's blocks. Process-wide and for good (a training process's heap then stays at its
    peak); once per process; False where the C library is not glibc or
    FASHION_GAN_KEEP_FREED=0."""
    global _kept
    if _kept:
        return True
    if os.environ.get("FASHION_GAN_KEEP_FREED", "1") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to change
        return False
    _kept = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    return _kept


def freed_memory_kept() -> bool:
    """Whether keep_freed_memory has changed this process's allocator."""
    return _kept


def average_gradients(*modules: torch.nn.Module) -> None:
    """Data-parallel gradient averaging across ranks, called between backward() and step().

    Used where a step runs a network several times on different inputs (BiGAN's encoder sees
    real and generated images), which DDP's reducer does not allow; on one process it does
    nothing. One flattened all-reduce per call."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    grads = [p.grad for m in modules for p in m.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()



def bf16_native(device: torch.device) -> bool:
    """Whether bf16 autocast runs natively here: CUDA with bf16, or a CPU whose oneDNN has bf16
    kernels (AVX-512 BF16 or AMX). On an AVX2-only CPU bf16 is emulated and about ten times
    slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# bf16 must beat fp32 by this much on the CPU for the frame to train in it: the AMX Xeon's
# products run 3-7x faster in bf16, the AVX-512 BF16 EPYC's 2.2x, and an Intel Xeon whose AMX
# the hypervisor hides (AVX-512 BF16 only) runs them at half its fp32 speed
# (benchmarks/README.md, "bf16 at half the fp32 speed: a Xeon without AMX").
BF16_MIN_SPEEDUP = 1.3
CPU_BF16_ENV = "FASHION_GAN_CPU_BF16"  # auto (measure), on or off
CPU_BF16_MODES = ("auto", "on", "off")


@functools.cache
def cpu_bf16_speedup(size: int = 1024, repeats: int = 5) -> float:
    """How many times faster a bf16 matrix product runs than an fp32 one on this CPU, with
    torch's threads: the best of `repeats` alternating readings of each (about 0.1 s, once a
    process). Native bf16 kernels are not always the faster ones, so the frame measures."""
    a = torch.randn(size, size, generator=torch.Generator().manual_seed(0))
    pairs = {torch.float32: (a, a.t().contiguous())}
    pairs[torch.bfloat16] = tuple(t.bfloat16() for t in pairs[torch.float32])
    best = dict.fromkeys(pairs, float("inf"))
    for _ in range(repeats):
        for dtype, (x, y) in pairs.items():
            t0 = time.perf_counter()
            torch.mm(x, y)
            best[dtype] = min(best[dtype], time.perf_counter() - t0)
    return best[torch.float32] / best[torch.bfloat16]


def bf16_choice(device: torch.device) -> tuple[bool, str]:
    """(whether the frame's bf16 option turns autocast on here, why), for the run's summary.

    CUDA: where it has bf16. CPU: where oneDNN has native bf16 kernels and they run products at
    least BF16_MIN_SPEEDUP times as fast as fp32; FASHION_GAN_CPU_BF16=on (or off) skips the
    measurement and takes any native kernels (or none). Under torchrun every rank follows
    rank 0's measurement, so all train in the same arithmetic."""
    mode = os.environ.get(CPU_BF16_ENV, "auto")
    if mode not in CPU_BF16_MODES:  # refused on every machine, not only where it would count
        raise ValueError(f"{CPU_BF16_ENV} must be one of {', '.join(CPU_BF16_MODES)}, "
                         f"got {mode!r}")
    if not bf16_native(device):
        return False, "fp32: no native bf16 kernels here"
    if device.type != "cpu":
        return True, "bf16: native on this GPU"
    if mode != "auto":
        return mode == "on", f"{'bf16' if mode == 'on' else 'fp32'}: {CPU_BF16_ENV}={mode}"
    speedup = torch.tensor([cpu_bf16_speedup()], dtype=torch.float64)
    if dist.is_initialized():
        dist.broadcast(speedup, src=0)
    x = float(speedup)
    if x >= BF16_MIN_SPEEDUP:
        return True, f"bf16: its products ran {x:.1f}x as fast as fp32 here"
    return False, (f"fp32: bf16 products ran only {x:.2f}x as fast as fp32 here (under "
                   f"{BF16_MIN_SPEEDUP}x; {CPU_BF16_ENV}=on forces bf16)")


def require_compiler() -> str:
    """The C++ compiler torch.compile's inductor will call (g++, or $CXX), or a ValueError
    saying so before training starts, instead of a compiler error at the first step."""
    from torch._inductor import config

    name = config.cpp.cxx[-1]
    if not name or not shutil.which(name):
        raise ValueError(f"compile: torch.compile needs a C++ compiler and {name!r} was not "
                         f"found; install g++ (or set CXX to one), or train without compile")
    return name


def device() -> torch.device:
    """The device every stage that computes with torch outside the frame's loop uses (the
    classifier, the metrics): CUDA when present, else the CPU; FASHION_GAN_DEVICE=cpu (or any
    torch device string) overrides it, e.g. to keep a shared GPU for training."""
    chosen = os.environ.get("FASHION_GAN_DEVICE", "")
    if chosen:
        return torch.device(chosen)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
