"""`make bench-gpu` on a machine without CUDA: exit status 2 and a message saying why."""

import os
import subprocess
import sys

from training.paths import REPO_ROOT


def test_bench_gpu_says_it_needs_a_gpu():
    printed = subprocess.run(["make", "-n", "bench-gpu"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout
    assert "benchmarks/gpu_speed.py" in printed
    # hidden GPUs, so the test means the same on a GPU machine
    done = subprocess.run([sys.executable, "benchmarks/gpu_speed.py"], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 2
    assert "no CUDA GPU" in done.stderr and done.stdout == ""
