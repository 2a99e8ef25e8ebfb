"""Save and resume a training run exactly: weights, optimiser state, step and every RNG.

Files are read with `torch.load(weights_only=True)` only: a checkpoint, a classifier or a
weights file may come from someone else, and unpickling arbitrary objects runs their code.
So everything saved here is tensors and plain str/int/float/bool/None/list/tuple/dict, the
RNG states included (numpy's and python's are converted on save and back on load)."""

import pickle
import random
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipelines.processing.atomic import atomic_path


class UnsafeFileError(ValueError):
    """A file holds pickled objects other than tensors and plain values; it is not loaded."""


def save_plain(obj: Any, path: str | Path) -> Path:
    """torch.save through a temporary renamed onto `path` (atomic_path): a reader, another
    run's step or the leaderboard, sees the old file or the new one, never half of one. What
    it saves should be tensors and plain values, so load_plain can read it."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)


def load_plain(path: str | Path, what: str = "file") -> Any:
    """torch.load that never runs code from the file (weights_only=True, on the CPU); every
    error names the file and what it was meant to be."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = next((line.strip() for line in str(e).splitlines()
                      if "Unsupported global" in line or "WeightsUnpickler" in line), "")
        raise UnsafeFileError(
            f"{what} {path} holds non-tensor objects and is refused: only tensors and plain "
            f"str/int/float/list/dict values are loaded, never pickled objects, which could "
            f"run code. ({found or type(e).__name__})") from e
    except (RuntimeError, EOFError, OSError, ValueError) as e:  # truncated, not a torch file
        raise ValueError(f"cannot read {what} {path}: {type(e).__name__}: {e}") from e


def plain(value: Any, where: str = "value") -> Any:
    """`value` as types weights_only=True loads: Paths and enums become str, numpy scalars
    and arrays become python numbers and tensors; anything else is a TypeError at save time
    (better than a checkpoint that cannot be read back)."""
    if value is None or type(value) in (bool, int, float, str) or isinstance(value,
                                                                            torch.Tensor):
        return value
    if isinstance(value, np.generic):  # np.float64 and np.str_ subclass float and str
        return plain(value.item(), where)
    if isinstance(value, Enum):
        return plain(value.value, where)
    if isinstance(value, Path):
        return str(value)
    for kind in (bool, int, float, str):  # other subclasses (IntEnum handled above)
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        return {k: plain(v, f"{where}[{k!r}]") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v, f"{where}[{i}]") for i, v in enumerate(value))
    raise TypeError(f"{where} is a {type(value).__name__}, which a checkpoint cannot hold "
                    "(only tensors and plain str/int/float/bool/list/dict values)")


def rng_state(generators: dict[str, torch.Generator]) -> dict:
    """Every RNG's state as tensors and plain values (loadable with weights_only=True)."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"kind": str(kind), "key": torch.from_numpy(key.astype(np.int64)),
                       "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
             "python": {"version": int(version), "internal": list(internal),
                        "gauss_next": gauss_next},
             "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    """Restore what `rng_state` saved. A generator the checkpoint has no state for (a name
    added after it was written) is left as it is."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["key"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss_next"]))
    saved = state.get("generators", {})
    for k, g in generators.items():
        if k in saved:
            g.set_state(saved[k])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, step: int, modules: dict, optimizers: dict,
                    generators: dict[str, torch.Generator], config: dict) -> Path:
    """Atomically write everything a run needs to continue as if it never stopped."""
    return save_plain({"step": int(step), "config": plain(config, "config"),
                       "modules": {k: m.state_dict() for k, m in modules.items()},
                       "optimizers": {k: plain(o.state_dict(), f"optimizer {k}")
                                      for k, o in optimizers.items()},
                       "rng": rng_state(generators)}, path)


def load_checkpoint(path: Path, modules: dict, optimizers: dict,
                    generators: dict[str, torch.Generator]) -> int:
    """Restore in place; returns the step to continue from."""
    try:
        state = load_plain(path, "checkpoint")
    except UnsafeFileError as e:
        raise UnsafeFileError(f"{e} Checkpoints written before RNG states were stored as "
                              "tensors hold a numpy array object too: delete such a file to "
                              "start the run afresh.") from e
    if not isinstance(state, dict) or not {"step", "modules", "optimizers", "rng"} <= state.keys():
        raise ValueError(f"checkpoint {path} is not a training checkpoint (needs step, "
                         "modules, optimizers and rng)")
    try:
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
        for k, o in optimizers.items():
            o.load_state_dict(state["optimizers"][k])
    except (KeyError, RuntimeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} does not match this run's networks: "
                         f"{type(e).__name__}: {e}") from e
    set_rng_state(state["rng"], generators)
    return int(state["step"])


def checkpoint_config(path: Path) -> dict:
    """The options a checkpoint was trained with (compared on resume)."""
    state = load_plain(path, "checkpoint")
    return dict(state.get("config", {})) if isinstance(state, dict) else {}


def load_modules(path: Path, modules: dict) -> int:
    """The networks alone (for reports and exports after training); returns the step."""
    state = load_plain(path, "checkpoint")
    try:
        for k, m in modules.items():
            m.load_state_dict(state["modules"][k])
    except (KeyError, RuntimeError, TypeError) as e:
        raise ValueError(f"checkpoint {path} does not match these networks: "
                         f"{type(e).__name__}: {e}") from e
    return int(state["step"])
