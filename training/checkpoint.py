"""Save and resume a training run exactly: weights, optimiser state, step and every RNG."""

import random
from pathlib import Path

import numpy as np
import torch


def rng_state(generators: dict[str, torch.Generator]) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(),
             "generators": {k: g.get_state() for k, g in generators.items()}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict, generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    for k, g in generators.items():
        g.set_state(state["generators"][k])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, step: int, modules: dict, optimizers: dict,
                    generators: dict[str, torch.Generator], config: dict) -> Path:
    """Atomically write everything a run needs to continue as if it never stopped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"step": step, "config": config,
                "modules": {k: m.state_dict() for k, m in modules.items()},
                "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
                "rng": rng_state(generators)}, tmp)
    tmp.replace(path)
    return path


def load_checkpoint(path: Path, modules: dict, optimizers: dict,
                    generators: dict[str, torch.Generator]) -> int:
    """Restore in place; returns the step to continue from."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    for k, m in modules.items():
        m.load_state_dict(state["modules"][k])
    for k, o in optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    set_rng_state(state["rng"], generators)
    return int(state["step"])
