"""Train the description encoder (training/models/text.py) on the catalogue's sentences, score
its heads on held-out products, and write datasets/descriptions.h5: what the two-stage
FashionGAN is conditioned on (the encoder's hidden state d, plus the skin tone).

descriptions.h5:
    ids       utf-8 (N,)            catalogue product ids
    text      utf-8 (N,)            the sentence (training.descriptions.describe)
    tokens    int32 (N, T)          vocabulary indices, 0-padded
    lengths   int32 (N,)
    d         float32 (N, 100)      the encoder's hidden state
    skin      float32 (N, 3)        mean RGB in [-1, 1] of the arm + face pixels of the
                                    product's segmentation-store image; the store's mean
                                    for products without one (has_skin False)
    has_skin  bool (N,)
    attrs: heads, accuracy_<head> (held-out), vocabulary_size, unknown_token_rate, hidden

    python -m training.description_encoder --catalogue catalogue/catalogue.parquet \\
        --segmentation datasets/segmentation.h5 --out models/description_encoder.pt \\
        --descriptions datasets/descriptions.h5

prints one JSON line: held-out accuracy per head, vocabulary size, wall time.
"""

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from pipelines.processing.catalogue import LABEL_COLUMNS
from pipelines.processing.h5store import STR, atomic_h5
from training.checkpoint import load_plain, plain, save_plain
from training.datasets import holdout_split
from training.descriptions import (
    DESCRIBED,
    MISSING,
    Vocabulary,
    attribute_targets,
    catalogue_descriptions,
    check_known,
)
from training.human_parser import read_segmentation, torch_threads
from training.models.text import DescriptionEncoder

SKIN_CLASSES = (1, 3)  # face (with the neck) and arm: the study's fix for arms whose colour
# did not match the face


@dataclass
class EncoderResult:
    model: DescriptionEncoder
    vocabulary: Vocabulary
    values: dict[str, list[str]]  # per head, its classes
    accuracy: dict[str, float]  # per head, on held-out products (heads with a target there)
    heldout: dict[str, int] = field(default_factory=dict)  # held-out targets per head
    wall_s: float = 0.0
    history: list[dict] = field(default_factory=list)


def encoder_split(n: int, holdout: float = 0.2, seed: int = 0
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, held-out) row indices: a seeded random `holdout` share of the products."""
    return holdout_split(n, holdout, torch.Generator().manual_seed(seed))


def recombine(rows: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """n made-up products: each described column drawn on its own from a random training
    row (a missing value included). Trained on the catalogue's 160 demo sentences alone the
    encoder learnt them by heart (training loss 0.006) and read the colour of 'striped green
    top' as red on held-out products (colour 0.78, length 0.67); sentences whose words come
    in new combinations teach it that each phrase stands for its own attribute."""
    rng = np.random.default_rng(seed)
    columns = [c for c in (*DESCRIBED, *LABEL_COLUMNS) if c in rows]
    picks = {c: rows[c].to_numpy(object)[rng.integers(0, len(rows), n)]
             for c in dict.fromkeys(columns)}
    return pd.DataFrame({"id": [f"recombined-{i}" for i in range(n)], **picks})


def train_encoder(texts: Sequence[str], targets: dict[str, np.ndarray],
                  values: dict[str, list[str]], vocabulary: Vocabulary | None = None,
                  extra: tuple[Sequence[str], dict[str, np.ndarray]] | None = None,
                  steps: int = 400, batch_size: int = 32, lr: float = 1e-2,
                  lr_final: float = 0.01, embedding: int = 32, cell: str = "gru",
                  hidden: int = 100, layers: int = 2, bidirectional: bool = False,
                  dropout: float = 0.0, word_dropout: float = 0.0, weight_decay: float = 1e-4,
                  seed: int = 0, holdout: float = 0.2, threads: int | None = 1,
                  log: Callable[[str], None] | None = None) -> EncoderResult:
    """Cross-entropy summed over the heads (rows without a target for a head are left out of
    it), AdamW with the learning rate annealed by a cosine from lr to lr * lr_final. A seeded
    `holdout` share of the products (encoder_split) is kept out and scored per head; `extra`
    (texts, targets) are added to the training rows only (recombine)."""
    if len(texts) < 2:
        raise ValueError(f"the description encoder needs at least 2 descriptions, got "
                         f"{len(texts)}")
    texts = list(texts)
    train_idx, test_idx = encoder_split(len(texts), holdout, seed)
    vocabulary = vocabulary or Vocabulary.build(texts)
    pool_texts = [texts[i] for i in train_idx.tolist()]
    pool_y = {c: np.asarray(t, np.int64)[train_idx.numpy()] for c, t in targets.items()}
    if extra is not None:
        pool_texts += list(extra[0])
        pool_y = {c: np.concatenate([pool_y[c], np.asarray(extra[1][c], np.int64)])
                  for c in pool_y}
    tokens, lengths = vocabulary.encode(pool_texts)
    tokens_t, lengths_t = torch.from_numpy(tokens).long(), torch.from_numpy(lengths).long()
    y = {c: torch.from_numpy(t) for c, t in pool_y.items()}
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DescriptionEncoder(len(vocabulary), {c: len(v) for c, v in values.items()},
                               hidden=hidden, layers=layers, embedding=embedding, cell=cell,
                               dropout=dropout, bidirectional=bidirectional)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=lr * lr_final)
    history = []
    model.train()
    t0 = time.perf_counter()
    with torch_threads(threads):
        for step in range(steps):
            idx = torch.randint(0, len(pool_texts), (min(batch_size, len(pool_texts)),),
                                generator=g)
            batch = tokens_t[idx]
            if word_dropout:  # a word may go missing, so each counts on its own
                drop = (torch.rand(batch.shape, generator=g) < word_dropout) & (batch != 0)
                batch = torch.where(drop, torch.full_like(batch, vocabulary.unk), batch)
            out = model(batch, lengths_t[idx])
            terms = [F.cross_entropy(out[c], y[c][idx], ignore_index=MISSING)
                     for c in values if (y[c][idx] != MISSING).any()]
            loss = torch.stack(terms).sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append({"step": step, "loss": round(float(loss.detach()), 5),
                            "lr": sched.get_last_lr()[0]})
            sched.step()
            if log and (step % 100 == 0 or step == steps - 1):
                log(f"description encoder step {step}/{steps} loss {loss.item():.3f}")
        wall_s = time.perf_counter() - t0
        model.eval()
        test_tokens, test_lengths = vocabulary.encode([texts[i] for i in test_idx.tolist()])
        with torch.no_grad():
            out = model(torch.from_numpy(test_tokens).long(), torch.from_numpy(test_lengths))
    accuracy, heldout = {}, {}
    for c in values:
        truth = torch.from_numpy(np.asarray(targets[c], np.int64))[test_idx]
        known = truth != MISSING
        heldout[c] = int(known.sum())
        if known.any():
            pred = out[c].argmax(1)[known]
            accuracy[c] = round(float((pred == truth[known]).float().mean()), 4)
    return EncoderResult(model, vocabulary, values, accuracy, heldout, wall_s, history)


def train_on_catalogue(catalogue: pd.DataFrame, label_names: Sequence[str] | None = None,
                       recombined: int = 2000, **options
                       ) -> tuple[EncoderResult, list[str], list[str]]:
    """(result, ids, sentences): the encoder trained on every catalogue row's description
    (plus `recombined` made-up training products, see recombine), one head per attribute
    column of label_names (packshots.h5's; the catalogue's 8 by default)."""
    ids, texts = catalogue_descriptions(catalogue)
    targets, values = attribute_targets(catalogue, label_names)
    extra = None
    if recombined:
        train_idx, _ = encoder_split(len(texts), options.get("holdout", 0.2),
                                     options.get("seed", 0))
        made_up = recombine(catalogue.iloc[train_idx.numpy()], recombined,
                            options.get("seed", 0))
        extra = (catalogue_descriptions(made_up)[1],
                 attribute_targets(made_up, label_names)[0])
    return train_encoder(texts, targets, values, extra=extra, **options), ids, texts


def save_encoder(result: EncoderResult, path: Path) -> Path:
    """Weights, the net's config, the vocabulary's tokens, the heads' classes and scores, as
    plain values (load_encoder reads them with weights_only=True)."""
    return save_plain({"state_dict": result.model.state_dict(),
                       "config": plain(result.model.config, "config"),
                       "vocabulary": list(result.vocabulary.tokens),
                       "values": plain(result.values, "values"),
                       "accuracy": plain(result.accuracy, "accuracy"),
                       "heldout": plain(result.heldout, "heldout"),
                       "wall_s": float(result.wall_s)}, path)


def load_encoder(path: Path | str) -> EncoderResult:
    """A file written by save_encoder, read without unpickling objects; the model in eval
    mode."""
    saved = load_plain(path, "description encoder file")
    if not isinstance(saved, dict) or not {"state_dict", "config", "vocabulary",
                                           "values"} <= saved.keys():
        raise ValueError(f"description encoder file {path} was not written by save_encoder "
                         "(needs state_dict, config, vocabulary and values)")
    try:
        model = DescriptionEncoder(**saved["config"])
        model.load_state_dict(saved["state_dict"])
        vocabulary = Vocabulary(saved["vocabulary"])
    except (TypeError, ValueError, RuntimeError) as e:
        raise ValueError(f"description encoder file {path} does not hold an encoder of its "
                         f"stated config: {type(e).__name__}: {e}") from e
    return EncoderResult(model.eval(), vocabulary, saved["values"], saved.get("accuracy", {}),
                         saved.get("heldout", {}), saved.get("wall_s", 0.0))


@torch.no_grad()
def encode_texts(model: DescriptionEncoder, tokens: np.ndarray, lengths: np.ndarray,
                 batch_size: int = 256) -> np.ndarray:
    """d float32 (N, hidden) for padded tokens."""
    model.eval()
    out = np.zeros((len(tokens), model.hidden), np.float32)
    for s in range(0, len(tokens), batch_size):
        out[s:s + batch_size] = model.encode(torch.from_numpy(tokens[s:s + batch_size]).long(),
                                             torch.from_numpy(lengths[s:s + batch_size])
                                             ).numpy()
    return out


def skin_tones(segmentation: Path | None, ids: Sequence[str]
               ) -> tuple[np.ndarray, np.ndarray, dict]:
    """(skin float32 (N, 3) in [-1, 1], has_skin bool (N,), counts): per product the mean RGB
    of the face and arm pixels of its segmentation-store image; products the store lacks, or
    whose map shows no skin, get the mean over the others (0, mid grey, when no product has
    one). A store with labels outside 0-6 or without images is refused (read_segmentation)."""
    n = len(ids)
    skin = np.zeros((n, 3), np.float32)
    has = np.zeros(n, bool)
    if segmentation is not None and Path(segmentation).is_file():
        data = read_segmentation(segmentation)
        row = {}
        for i, pid in enumerate(data.ids):
            row.setdefault(pid, i)
        for k, pid in enumerate(ids):
            i = row.get(pid)
            if i is None:
                continue
            mask = np.isin(data.labels[i], SKIN_CLASSES)
            if mask.any():
                skin[k] = data.images[i][mask].mean(0) / 127.5 - 1.0
                has[k] = True
    if has.any():
        skin[~has] = skin[has].mean(0)
    counts = {"with_skin": int(has.sum()), "without_skin": int(n - has.sum())}
    return skin, has, counts


def write_descriptions(path: Path, ids: Sequence[str], texts: Sequence[str],
                       encoder: EncoderResult, segmentation: Path | None = None) -> dict:
    """descriptions.h5 (layout in the module docstring), written atomically. Descriptions the
    vocabulary knows no token of are refused first (UnknownDescriptionsError names the count
    and the first product). Returns the file's attrs plus the skin counts."""
    ids, texts = [str(i) for i in ids], list(texts)
    vocabulary = encoder.vocabulary
    tokens, lengths = vocabulary.encode(texts)
    check_known(ids, texts, tokens, lengths, vocabulary)
    d = encode_texts(encoder.model, tokens, lengths)
    skin, has_skin, counts = skin_tones(segmentation, ids)
    attrs = {"heads": list(encoder.values), "vocabulary_size": len(vocabulary),
             "unknown_token_rate": round(vocabulary.unknown_rate(tokens, lengths), 4),
             "hidden": int(encoder.model.hidden),
             **{f"accuracy_{c}": float(v) for c, v in encoder.accuracy.items()}}
    with atomic_h5(Path(path)) as f:
        f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STR)
        f.create_dataset("text", data=np.array(texts, dtype=object), dtype=STR)
        f.create_dataset("tokens", data=tokens.astype(np.int32))
        f.create_dataset("lengths", data=lengths.astype(np.int32))
        f.create_dataset("d", data=d.astype(np.float32))
        f.create_dataset("skin", data=skin.astype(np.float32))
        f.create_dataset("has_skin", data=has_skin)
        for key, value in attrs.items():
            f.attrs[key] = value
    return {**attrs, **counts, "descriptions": len(ids)}


def read_descriptions(path: Path | str) -> dict:
    """descriptions.h5 as arrays (ids and text as lists of str) and its attrs."""
    with h5py.File(path, "r") as f:
        out = {k: f[k][:] for k in f}
        attrs = dict(f.attrs)
    for k in ("ids", "text"):
        out[k] = [v.decode() if isinstance(v, bytes) else str(v) for v in out[k]]
    out["attrs"] = attrs
    return out


def training_figure(result: EncoderResult):
    """A PIL picture: the loss and the annealed learning rate against the step, beside the
    held-out accuracy per head (the asset page and MLflow show it)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    steps = [r["step"] for r in result.history]
    left.plot(steps, [r["loss"] for r in result.history], linewidth=1, label="loss")
    left.set_xlabel("step")
    left.set_ylabel("summed cross-entropy")
    left.grid(alpha=0.3)
    if result.history:
        lr = left.twinx()
        lr.plot(steps, [r["lr"] for r in result.history], color="tab:orange", linewidth=1)
        lr.set_ylabel("learning rate", color="tab:orange")
    left.set_title("training")
    heads = list(result.accuracy)
    right.barh(heads, [result.accuracy[h] for h in heads], color="tab:green")
    right.set_xlim(0, 1)
    right.invert_yaxis()
    for i, h in enumerate(heads):
        right.text(min(result.accuracy[h], 0.8), i, f" {result.accuracy[h]:.2f} "
                   f"(n={result.heldout.get(h, 0)})", va="center", fontsize=8)
    right.set_title("held-out accuracy per head")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def label_names_of(packshots: Path | None) -> list[str] | None:
    """packshots.h5's label_names (the heads), None when the file is absent."""
    if packshots is None or not Path(packshots).is_file():
        return None
    with h5py.File(packshots, "r") as f:
        names = f.attrs.get("label_names")
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names] \
            if names is not None else None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m training.description_encoder",
                                 description="Train the description encoder on a catalogue "
                                             "and write descriptions.h5; prints one JSON "
                                             "line.")
    ap.add_argument("--catalogue", required=True, help="catalogue.parquet")
    ap.add_argument("--out", help="write the encoder here")
    ap.add_argument("--weights", help="use this encoder file instead of training one")
    ap.add_argument("--descriptions", help="write descriptions.h5 here")
    ap.add_argument("--segmentation", help="segmentation.h5, for the skin tones")
    ap.add_argument("--packshots", help="packshots.h5, whose label_names name the heads")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--cell", choices=("gru", "lstm"), default="gru")
    ap.add_argument("--recombined", type=int, default=2000,
                    help="made-up training products (recombine); 0: the catalogue's only")
    ap.add_argument("--holdout", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        catalogue = pd.read_parquet(args.catalogue)
        if args.weights:
            encoder = load_encoder(args.weights)
            ids, texts = catalogue_descriptions(catalogue)
        else:
            encoder, ids, texts = train_on_catalogue(
                catalogue, label_names_of(args.packshots), args.recombined, steps=args.steps,
                batch_size=args.batch_size, lr=args.lr, cell=args.cell,
                holdout=args.holdout, seed=args.seed)
            if args.out:
                save_encoder(encoder, args.out)
        summary = {"accuracy": encoder.accuracy, "heldout": encoder.heldout,
                   "vocabulary_size": len(encoder.vocabulary), "products": len(ids),
                   "wall_s": round(encoder.wall_s, 2)}
        if args.descriptions:
            written = write_descriptions(args.descriptions, ids, texts, encoder,
                                         args.segmentation)
            summary.update({k: written[k] for k in ("unknown_token_rate", "with_skin",
                                                    "without_skin")})
    except (ValueError, FileNotFoundError, OSError) as e:
        ap.exit(2, f"{ap.prog}: error: {e}\n")
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
