"""training.runtime.keep_freed_memory: a block freed by one step is reused by the next
instead of being faulted in afresh from the kernel; the loop turns it on for CPU training;
the benchmarks time the plain loops in a process it never touched."""

import os
import subprocess
import sys

import numpy as np
import pytest

from benchmarks.machine import in_pristine_process
from pipelines.processing.h5store import write_image_store
from training.families.gan import GANConfig
from training.loop import train
from training.paths import REPO_ROOT
from training.runtime import freed_memory_kept

# page faults of a 64 MiB tensor after eight were made and freed, as eight steps would (a
# fresh process; glibc settles on reusing one block after the first few, each aligned
# request being a little larger than the block the previous one freed)
LATER_ALLOCATION = """
import resource, torch
from training.runtime import keep_freed_memory
kept = keep_freed_memory()
for _ in range(8):
    x = torch.ones(16 << 20); del x
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
x = torch.ones(16 << 20)
print(int(kept), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def later_allocation_faults(keep: str) -> tuple[bool, int]:
    out = subprocess.run([sys.executable, "-c", LATER_ALLOCATION], check=True, text=True,
                         capture_output=True, cwd=REPO_ROOT,
                         env={**os.environ, "FASHION_GAN_KEEP_FREED": keep}).stdout.split()
    return bool(int(out[0])), int(out[1])


def test_a_freed_block_is_reused_instead_of_faulted_in_again():
    kept, faults = later_allocation_faults("1")
    if not kept:
        pytest.skip("not glibc: the allocator is left as it is")
    off, faults_off = later_allocation_faults("0")
    assert not off
    pages = (64 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert faults_off > pages // 2  # mapped afresh: every page faults on first touch
    assert faults < pages // 20     # the freed block again: its pages are already there


def test_cpu_training_keeps_freed_memory_and_the_plain_loops_do_not(tmp_path):
    rng = np.random.default_rng(0)
    store = write_image_store(tmp_path / "s.h5", [f"P{i}" for i in range(8)],
                              rng.integers(0, 255, (8, 32, 32, 3), dtype=np.uint8))
    train("gan", GANConfig(steps=1, batch_size=4, ngf=8, ndf=8, backbone="infogan"), store,
          tmp_path / "run")
    if not freed_memory_kept():
        pytest.skip("not glibc: the allocator is left as it is")
    assert in_pristine_process(freed_memory_kept) is False
