"""Where a training runs: one process or several under torchrun, CPU or GPU.

Every family's loop starts with init_distributed(); only rank 0 writes files and logs.
"""

import ctypes
import ctypes.util
import os
import shutil

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
    slower than fp32, so the frame trains in fp32 there even when bf16 is asked for."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


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
