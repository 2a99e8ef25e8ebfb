"""The loss-curve picture of a run, shown next to the sample grids (asset page and MLflow)."""

import json
from pathlib import Path


def read_history(path: Path) -> list[dict]:
    """The rows of a losses.jsonl ({step, loss: value, ...})."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def save_loss_curves(history: Path, out: Path, title: str = "") -> Path:
    """One line per logged loss against the step, discriminator terms solid, the rest dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_history(history)
    names = [k for k in rows[0] if k != "step"] if rows else []
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    steps = [r["step"] for r in rows]
    for name in names:
        ax.plot(steps, [r.get(name, float("nan")) for r in rows], label=name, linewidth=1.2,
                linestyle="-" if name.startswith("d_") else "--")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title or "losses")
    ax.grid(alpha=0.3)
    if names:
        ax.legend(fontsize=7, ncol=2, loc="upper right")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
