"""A process that launched torchrun (training.launch.train_torchrun, the asset's path above one
process) is SIGKILLed mid-training, as a killed training step is, or torchrun itself is: torchrun
and its two workers must go rather than keep writing into the run folder a re-execution resumes
in. Real processes (a throwaway parent, torchrun, two gloo workers); nothing mocked."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from training.launch import CODE_ROOT

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="the parent-death signal is Linux's")

PARENT = textwrap.dedent("""
    import sys
    from training.family import get_family
    from training.launch import train_torchrun

    family = get_family("dcgan")
    cfg = family.Config(steps=100_000, batch_size=4, nz=8, ngf=8, ndf=8, log_every=1,
                        sample_every=100_000, checkpoint_every=100_000, bf16=False,
                        variant="baseline")
    train_torchrun(family, cfg, sys.argv[1], sys.argv[2], nproc_per_node=2)
""")


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # exited while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    """Running, not a zombie (a container's pid 1 may never reap the orphans it inherits)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.parametrize("victim", ["launcher", "torchrun"])
def test_torchrun_and_its_workers_die_with_the_launching_process(tmp_path, colour_store, victim):
    """SIGKILL the launcher (a killed training step): torchrun stops its workers and goes too.
    SIGKILL torchrun itself (the out-of-memory killer's pick): it can stop nothing, so each
    worker must go by its own parent-death signal (training.launch.die_with_torchrun)."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(CODE_ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(colour_store), str(out)],
                              cwd=CODE_ROOT, env=env)
    t0 = time.monotonic()
    trainers: list[int] = []
    try:
        history = out / "losses.jsonl"
        # the workers are training: rows are being written into the run folder
        while not (history.exists() and history.stat().st_size > 0):
            assert parent.poll() is None, "the launcher exited before training started"
            assert time.monotonic() - t0 < 120, "no training step within 120 s"
            time.sleep(0.1)
        [torchrun] = children(parent.pid)
        workers = children(torchrun)
        trainers += [torchrun, *workers]
        assert len(workers) == 2, workers
        print(f"training after {time.monotonic() - t0:.1f} s; torchrun {torchrun}, "
              f"workers {workers}")
        os.kill(parent.pid if victim == "launcher" else torchrun, signal.SIGKILL)
        t1 = time.monotonic()
        while left := [pid for pid in (torchrun, *workers) if alive(pid)]:
            assert time.monotonic() - t1 < 10, f"still running 10 s after the kill: {left}"
            time.sleep(0.1)
        print(f"torchrun and workers gone {time.monotonic() - t1:.1f} s after the kill")
        size = history.stat().st_size
        time.sleep(1)
        assert history.stat().st_size == size  # nothing writes into the run folder any more
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        for pid in trainers:  # only if the test failed: leave no trainers behind
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
