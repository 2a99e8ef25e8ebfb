"""The one training loop every family runs (read it like the official PyTorch DCGAN example).

Device and torchrun set-up, seeding, bf16 autocast + channels_last (fp32 as an option), exact
resume from out_dir/checkpoint.pt (a config that differs from the checkpoint's is refused, with
the fields named), a loss row every log_every steps (losses.jsonl, the tracking callback, the
progress callback), grids every sample_every steps, checkpoints, a loss-curve PNG and the
summary. The family (training/family.py) supplies the networks and the step.
"""

import json
import time
from collections.abc import Callable
from dataclasses import MISSING, asdict, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from training.checkpoint import checkpoint_config, load_checkpoint, save_checkpoint
from training.curves import save_loss_curves
from training.datasets import open_dataset
from training.family import Family, check_config, get_family
from training.grids import save_image_grid
from training.runtime import init_distributed, keep_freed_memory

LogFn = Callable[[int, dict], None]
ProgressFn = Callable[[int, int, float, dict], None]  # step, total, images/s, latest losses


def config_differences(saved: dict, cfg: Any, ignore: tuple[str, ...] = (
        "steps", "log_every", "sample_every", "checkpoint_every", "compile")
        ) -> dict[str, tuple]:
    """{field: (checkpoint's value, this run's)} for every option that changes what is
    trained; the step budget, the logging cadence and `compile` (how the step runs, not what
    it computes) may change on resume. An option the checkpoint predates counts as its default
    (what that run trained with)."""
    now = asdict(cfg)
    defaults = {f.name: f.default for f in fields(cfg) if f.default is not MISSING}
    saved = {**{k: v for k, v in defaults.items() if k not in saved}, **saved}
    return {k: (saved.get(k), now.get(k)) for k in sorted(set(saved) | set(now))
            if k not in ignore and saved.get(k) != now.get(k)}


def keep_rows_before(history: Path, step: int) -> None:
    """Drop the loss rows a killed run wrote past its last checkpoint, or all of them when it
    died before its first (and a line cut short by the kill), so the resumed run's rows follow
    on without repeats."""
    kept = []
    for line in history.read_text().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and row.get("step", step) < step:
            kept.append(line + "\n")
    partial = history.with_name(f".{history.name}.tmp")  # a kill now leaves the old file
    partial.write_text("".join(kept))
    partial.replace(history)


def prepare(family: str | type[Family], cfg: Any, data_path: Path | str) -> tuple:
    """(family class, dataset), every check done: options in range, data the family can use."""
    fam = get_family(family) if isinstance(family, str) else family
    check_config(cfg)
    fam.check_small_data(cfg)
    data = open_dataset(data_path, **fam.data_options(cfg))
    fam.check(cfg, data)
    return fam, data


def train(family: str | type[Family], cfg: Any, data_path: Path | str, out_dir: Path | str,
          log_metrics: LogFn | None = None, progress: ProgressFn | None = None) -> dict:
    """Train (or resume from out_dir/checkpoint.pt) and return the summary."""
    fam, data = prepare(family, cfg, data_path)
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint.pt"
    if ckpt.exists():
        differences = config_differences(checkpoint_config(ckpt), cfg)
        if differences:
            said = ", ".join(f"{k}: {a!r} in the checkpoint, {b!r} now"
                             for k, (a, b) in differences.items())
            raise ValueError(f"{ckpt} was trained with other options ({said}); "
                             "use another --out or the checkpoint's options")
    for name in fam.grid_names:
        (out_dir / name).mkdir(parents=True, exist_ok=True)
    rank, world, device = init_distributed()
    if device.type == "cpu":
        keep_freed_memory()
    lead = rank == 0  # only rank 0 writes files and logs
    data.reseed(cfg.seed + rank)
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    model = fam(cfg, data, device)
    model.build()
    train_idx = model.train_index()
    gen = torch.Generator().manual_seed(cfg.seed + 1000 * rank)  # batch indices and noise
    generators = {"gen": gen, "data": data.generator}
    start = (load_checkpoint(ckpt, model.modules, model.optimizers, generators)
             if ckpt.exists() else 0)
    if world > 1:  # ranks resume from rank 0's checkpoint; each reseeds its own batch stream
        gen.manual_seed(cfg.seed + 1000 * rank + start)
    history = out_dir / "losses.jsonl"
    if lead and history.exists():  # rows past the checkpoint (all, with none) are redone
        keep_rows_before(history, start)
    t0, images_seen = time.perf_counter(), 0
    row: dict = {}
    for step in range(start, cfg.steps):
        idx = train_idx[torch.randint(0, len(train_idx), (cfg.batch_size,), generator=gen)]
        batch = data.batch(idx)  # a tensor, or a translator's tuple (source, target)
        real = (tuple(t.to(model.device, memory_format=model.memory_format) for t in batch)
                if isinstance(batch, tuple)
                else batch.to(model.device, memory_format=model.memory_format))
        labels = data.labels_of(idx).to(model.device) if data.label_columns else None
        measure = step % cfg.log_every == 0 or step == cfg.steps - 1
        model.current_step = step  # schedules (n_critic, warm-ups) read it
        losses = model.step(real, labels, gen, measure and lead)
        images_seen += cfg.batch_size * world

        if measure and lead:
            row = {k: round(float(v.detach() if torch.is_tensor(v) else v), 5)
                   for k, v in losses.items()}
            with history.open("a") as f:
                f.write(json.dumps({"step": step, **row}) + "\n")
            if log_metrics:
                log_metrics(step, row)
            if progress:
                progress(step + 1, cfg.steps, images_seen / (time.perf_counter() - t0), row)
        if lead and ((step + 1) % cfg.sample_every == 0 or step == cfg.steps - 1):
            for m in model.modules.values():
                m.eval()
            with torch.no_grad():
                for name, images in model.grids().items():
                    save_image_grid(images, out_dir / name / f"step_{step + 1:06d}.png")
            for m in model.modules.values():
                m.train()
        if lead and ((step + 1) % cfg.checkpoint_every == 0 or step == cfg.steps - 1):
            save_checkpoint(ckpt, step + 1, model.modules, model.optimizers, generators,
                            asdict(cfg))
    wall = time.perf_counter() - t0
    summary = {"family": fam.name, "kind": fam.kind, "steps": cfg.steps,
               "steps_run": cfg.steps - start, "resumed_from": start,
               "images_per_s": round(images_seen / wall, 2) if images_seen else 0.0,
               "wall_s": round(wall, 2), "device": device.type, "bf16": model.bf16,
               "arithmetic": model.arithmetic,
               "world_size": world, "rank": rank, "final_losses": row, "out": str(out_dir)}
    if lead:
        summary.update(model.finish(out_dir))
        if history.exists():
            save_loss_curves(history, out_dir / "loss_curves.png",
                             title=f"{fam.name} ({getattr(cfg, 'variant', '') or fam.kind})")
    if world > 1:
        dist.barrier()
    return summary
