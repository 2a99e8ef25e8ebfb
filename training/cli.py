"""The training CLI, generated from the family registry: every option of a family's config
dataclass becomes a flag (`batch_size` -> `--batch-size`) with its help text and allowed
values, so the CLI never has to be written again when a family is added."""

import argparse
import dataclasses
import sys
import time
import types
import typing
from typing import Any

from training.family import Family, load_families

# shared flags the frame handles itself, not config fields
FRAME_FIELDS = ("bf16",)


def field_type(annotation: Any) -> tuple[type, bool]:
    """(the base type, optional?) of a config field's annotation (`int | None` -> int)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def config_fields(config: type) -> list[tuple[dataclasses.Field, type]]:
    hints = typing.get_type_hints(config)
    return [(f, field_type(hints[f.name])[0]) for f in dataclasses.fields(config)]


def parse_list(text: str) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()]


def summary_line(family: type[Family]) -> str:
    """The first paragraph of a family's docstring, on one line."""
    text = (family.__doc__ or family.name).strip().split("\n\n")[0]
    return " ".join(text.split())


def add_family_parser(sub, family: type[Family]) -> None:
    doc = summary_line(family)
    p = sub.add_parser(family.name, help=doc, description=doc)
    p.add_argument("--data", required=True,
                   help="HDF5 image store (images uint8 NxHxWxC, optional labels) or a "
                        "Fashion-MNIST folder (the four IDX files)")
    p.add_argument("--out", required=True, help="run folder (checkpoint, grids, losses); "
                                                "the same --out resumes")
    p.add_argument("--profile", choices=tuple(family.Config.PROFILES), default="demo",
                   help="demo: minutes on a 2-core CPU; full: the papers' settings (GPU)")
    p.add_argument("--fp32", action="store_true", help="no bf16 autocast")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    for f, base in config_fields(family.Config):
        if f.name in FRAME_FIELDS:
            continue
        flag = "--" + f.name.replace("_", "-")
        meta = f.metadata
        help_text = meta.get("help", "")
        if base is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                           help=help_text)
        elif typing.get_origin(base) in (list, tuple) or base in (list, tuple):
            p.add_argument(flag, type=parse_list, default=None,
                           help=f"{help_text} (comma-separated)")
        else:
            choices = meta.get("choices")
            metavar = None
            if choices and any(str(c) == "" or "," in str(c) for c in choices):
                # argparse would print {,color,translation,cutout,...}: name them one by one
                metavar = f.name.upper()
                help_text += " (one of: " + ", ".join(
                    repr(str(c)) if str(c) == "" or "," in str(c) else str(c)
                    for c in choices) + ")"
            p.add_argument(flag, type=base, default=None, choices=choices, metavar=metavar,
                           help=help_text)


def parser() -> argparse.ArgumentParser:
    from training import __main__ as main_module

    ap = argparse.ArgumentParser(prog="python -m training", description=main_module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list", action="store_true", help="list the families, one line each")
    sub = ap.add_subparsers(dest="family")
    for family in load_families().values():
        add_family_parser(sub, family)
    return ap


def family_lines() -> list[str]:
    families = load_families()
    width = max(map(len, families))
    return [f"{name:<{width}}  {fam.kind:<11}  {summary_line(fam)}"
            for name, fam in families.items()]


def config_from_args(family: type[Family], args: argparse.Namespace) -> Any:
    """The family's config: its profile, then every flag given."""
    given = {f.name: getattr(args, f.name, None) for f, _ in config_fields(family.Config)
             if f.name not in FRAME_FIELDS}
    given["bf16"] = False if args.fp32 else None
    return family.Config.profile(args.profile, **given)


class Progress:
    """A progress bar on stderr (steps, images/s, the latest losses, time left); plain lines
    at each logging step when stderr is not a terminal."""

    def __init__(self, total: int, stream=None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0 = time.perf_counter()
        self.total = total

    def __call__(self, step: int, total: int, images_per_s: float, row: dict) -> None:
        elapsed = time.perf_counter() - self.t0
        left = elapsed / max(step, 1) * (total - step)
        losses = " ".join(f"{k}={v:.3f}" for k, v in list(row.items())[:4])
        line = (f"step {step}/{total} {images_per_s:.1f} img/s {losses} "
                f"left {int(left // 60)}:{int(left % 60):02d}")
        if self.tty:
            width = 24
            done = int(width * step / max(total, 1))
            self.stream.write(f"\r[{'#' * done}{'.' * (width - done)}] {line}\x1b[K")
            if step >= total:
                self.stream.write("\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
