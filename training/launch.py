"""Training on several processes, GPUs or nodes: torchrun running the family's CLI.

One process trains in this process (training.loop.train); more launch
`torchrun --nproc_per_node N -m training <family> ...` with every field of the config as its
CLI flag (training/cli.py generates them from the same dataclass, so the child trains exactly
this config), read the job's JSON line back and log its losses.jsonl rows, so the caller sees
the same summary and run folder as an in-process training. The frame's loop joins the process
group itself (training.runtime.init_distributed: gloo on the CPU, nccl on GPUs).

torchrun dies with the process that launched it (Linux: the parent-death signal SIGTERM, on
which torchrun stops its workers) and runs in its own process group: a killed training step
leaves no workers writing into the run folder that a re-execution resumes in.
"""

import ctypes
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from training.cli import FRAME_FIELDS, config_fields
from training.family import Family

CODE_ROOT = Path(__file__).resolve().parent.parent


def cli_args(family: type[Family], cfg: Any, data: Path | str, out: Path | str,
             profile: str = "demo") -> list[str]:
    """`<family> --data D --out O --profile P` and every config field as its flag, so
    training.cli.config_from_args rebuilds `cfg` (None fields are left to the profile)."""
    args = [family.name, "--data", str(data), "--out", str(out), "--profile", profile]
    for f, base in config_fields(type(cfg)):
        value = getattr(cfg, f.name)
        if f.name in FRAME_FIELDS or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if base is bool:
            args.append(flag if value else f"--no-{flag[2:]}")
        elif isinstance(value, list | tuple):
            args.append(f"{flag}={','.join(map(str, value))}")
        else:  # `=`: an empty string or a negative number stays one value
            args.append(f"{flag}={value!r}" if isinstance(value, float) else f"{flag}={value}")
    if not getattr(cfg, "bf16", True):
        args.append("--fp32")
    return args


def torchrun_command(family: type[Family], cfg: Any, data: Path | str, out: Path | str,
                     nproc_per_node: int, nnodes: int = 1, rdzv_endpoint: str = "",
                     rdzv_id: str = "fashion-gan", profile: str = "demo") -> list[str]:
    """torchrun (as `python -m torch.distributed.run`, this interpreter's) for the family's
    CLI: standalone on one node; with nnodes > 1 a c10d rendezvous at rdzv_endpoint, which
    every node's same command joins."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node",
               str(nproc_per_node)]
    if nnodes > 1:
        if not rdzv_endpoint:
            raise ValueError("nnodes > 1 needs rdzv_endpoint (host:port of the rendezvous)")
        command += ["--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint",
                    rdzv_endpoint, "--rdzv-id", rdzv_id]
    else:
        command.append("--standalone")
    return [*command, "-m", "training", *cli_args(family, cfg, data, out, profile)]


def summary_from_output(stdout: str) -> dict:
    """The job's summary: the last stdout line that is a JSON object with `steps`."""
    for line in reversed(stdout.splitlines()):
        try:
            summary = json.loads(line)
        except ValueError:
            continue
        if isinstance(summary, dict) and "steps" in summary:
            return summary
    raise RuntimeError("torchrun's training printed no summary line")


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_TIMEOUT_S = 40  # torchrun gives its workers 30 s after SIGTERM before it SIGKILLs them


@cache
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, resolved here and not in a forked child; None where there is none
    (macOS, Windows)."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (AttributeError, OSError):
        return None
    prctl.argtypes, prctl.restype = [ctypes.c_int, ctypes.c_ulong], ctypes.c_int
    return prctl


def die_with_parent(sig: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn that has the child receive `sig` when the thread that starts it exits (the
    launching process SIGKILLed included), so it cannot outlive it; None where prctl is missing.
    A parent that died between fork and prctl is caught by comparing the parent pid."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:
        if prctl(PR_SET_PDEATHSIG, sig) == 0 and os.getppid() != parent:
            os.kill(os.getpid(), sig)

    return preexec


def die_with_torchrun(sig: int = signal.SIGTERM) -> bool:
    """In a torchrun worker: receive `sig` when torchrun exits, however it exits. torchrun
    stops its workers when it is stopped, but a SIGKILLed torchrun (the out-of-memory killer)
    cannot, and its workers would go on training into the run folder a re-execution resumes in.
    False outside torchrun or where prctl is missing. A torchrun that died before this call
    (the worker already re-parented) is caught by the parent pid: the worker then stops."""
    prctl = _prctl()
    if "TORCHELASTIC_RUN_ID" not in os.environ or prctl is None:
        return False
    parent = os.getppid()
    if parent == 1:  # torchrun is already gone: init adopted this worker
        os.kill(os.getpid(), sig)
    if prctl(PR_SET_PDEATHSIG, sig) != 0:
        return False
    if os.getppid() != parent:  # torchrun died between the two reads
        os.kill(os.getpid(), sig)
    return True


def stop_group(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to the child's process group (torchrun then stops its workers, which it runs in
    sessions of their own), SIGKILL to the group if it has not exited by `timeout`."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def train_torchrun(family: type[Family], cfg: Any, data: Path | str, out: Path | str,
                   nproc_per_node: int, nnodes: int = 1, rdzv_endpoint: str = "",
                   rdzv_id: str = "fashion-gan", profile: str = "demo",
                   log_metrics: Callable[[int, dict], None] | None = None,
                   log: Callable[[str], None] = print) -> dict:
    """Train under torchrun; the summary of its rank 0, its stderr in out/torchrun.log, and
    every losses.jsonl row of this launch passed to log_metrics(step, row) afterwards. torchrun
    dies with this process and is stopped when the wait is interrupted (a terminated step)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    command = torchrun_command(family, cfg, data, out, nproc_per_node, nnodes, rdzv_endpoint,
                               rdzv_id, profile)
    log(f"launching {' '.join(command)}" + (" (run the same on every node)" if nnodes > 1
                                            else ""))
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(CODE_ROOT),
                                                       os.environ.get("PYTHONPATH")]))}
    stderr_log = out / "torchrun.log"
    with stderr_log.open("w") as err:
        proc = subprocess.Popen(command, cwd=CODE_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=err, text=True, process_group=0,
                                preexec_fn=die_with_parent())
        try:
            stdout, _ = proc.communicate()
        except BaseException:  # interrupted (Ctrl-C, a Dagster terminate): no orphans
            stop_group(proc)
            raise
    if proc.returncode != 0:
        tail = "\n".join(stderr_log.read_text().splitlines()[-20:])
        raise RuntimeError(f"torchrun exited with {proc.returncode}; the end of "
                           f"{stderr_log}:\n{tail}")
    summary = summary_from_output(stdout)
    history = out / "losses.jsonl"
    if log_metrics and history.exists():
        for line in history.read_text().splitlines():
            row = json.loads(line)
            step = row.pop("step")
            if step >= summary.get("resumed_from", 0):
                log_metrics(step, row)
    return summary


def run_training(family: type[Family], cfg: Any, data: Path | str, out: Path | str,
                 nproc_per_node: int = 1, nnodes: int = 1, rdzv_endpoint: str = "",
                 rdzv_id: str = "fashion-gan", profile: str = "demo",
                 log_metrics: Callable[[int, dict], None] | None = None,
                 log: Callable[[str], None] = print) -> dict:
    """One process: training.loop.train here; more: train_torchrun. The same summary."""
    if nproc_per_node * nnodes == 1:
        from training.loop import train

        return train(family, cfg, data, out, log_metrics=log_metrics)
    return train_torchrun(family, cfg, data, out, nproc_per_node, nnodes, rdzv_endpoint,
                          rdzv_id, profile, log_metrics, log)

