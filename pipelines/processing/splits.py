"""Seeded train/val/test splits, stratified per (category, colour) as the thesis did.

Each product's place in its group is fixed by a hash of (seed, id), so a re-scrape that adds
products does not reshuffle the ones already assigned. Group quotas of val/test are rounded by
largest remainder, so a catalogue of small groups still gets round(N * fraction) of each.
"""

import hashlib
import math

import pandas as pd


def _key(seed: int, text: str) -> str:
    return hashlib.sha1(f"{seed}:{text}".encode()).hexdigest()


def _quotas(sizes: dict, fraction: float, seed: int) -> dict:
    exact = {g: n * fraction for g, n in sizes.items()}
    quota = {g: math.floor(x) for g, x in exact.items()}
    missing = round(sum(sizes.values()) * fraction) - sum(quota.values())
    order = sorted(sizes, key=lambda g: (-(exact[g] - quota[g]), _key(seed, repr(g))))
    for g in order[:max(0, missing)]:
        quota[g] += 1
    return quota


def assign_splits(df: pd.DataFrame, val: float = 0.01, test: float = 0.01, seed: int = 0,
                  by: tuple[str, ...] = ("category", "color")) -> pd.Series:
    """'train' / 'val' / 'test' for each row of df (index aligned)."""
    if df.empty:
        return pd.Series([], dtype=str, index=df.index)
    groups = df.groupby(list(by), dropna=False).groups
    sizes = {g: len(ix) for g, ix in groups.items()}
    q_val, q_test = _quotas(sizes, val, seed), _quotas(sizes, test, seed + 1)
    out = pd.Series("train", index=df.index, dtype=object)
    for g, ix in groups.items():
        ranked = sorted(ix, key=lambda i: _key(seed, str(df.at[i, "id"])))
        k_val, k_test = q_val[g], min(q_test[g], len(ranked) - q_val[g])
        out[ranked[:k_val]] = "val"
        out[ranked[k_val:k_val + k_test]] = "test"
    return out
