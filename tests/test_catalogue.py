"""Catalogue library pieces without Dagster: merging re-scrapes, packshots, labels, splits."""

import pandas as pd
from PIL import Image

from pipelines.processing.catalogue import (
    LABEL_VOCABULARY,
    merge_products,
    one_hot,
    out_of_vocabulary,
)
from pipelines.processing.images import decodes, grid, markdown_image, square_packshot
from pipelines.processing.splits import assign_splits


def test_merge_keeps_newest_fields_and_seen_times():
    items = pd.DataFrame([
        {"id": "A", "name": "old", "crawled_at": "2026-01-01"},
        {"id": "B", "name": "b", "crawled_at": "2026-01-01"},
        {"id": "A", "name": "new", "crawled_at": "2026-01-08"},
        {"id": "A", "name": "same-crawl-dup", "crawled_at": "2026-01-08"},
    ])
    out = merge_products(items).set_index("id")
    assert len(out) == 2
    assert out.loc["A", "first_seen"] == "2026-01-01" and out.loc["A", "last_seen"] == "2026-01-08"
    assert out.loc["A", "name"] == "same-crawl-dup"
    assert out.loc["B", "first_seen"] == out.loc["B", "last_seen"]


def test_square_packshot(tmp_path):
    src = tmp_path / "src.jpg"
    Image.new("RGB", (300, 500), (200, 0, 0)).save(src)
    dst = tmp_path / "out" / "x.jpg"
    assert square_packshot(src, dst, 256)
    im = Image.open(dst)
    assert im.size == (256, 256)
    assert im.getpixel((2, 128))[1] > 240  # padded white at the sides
    assert im.getpixel((128, 128))[0] > 180  # the garment in the middle
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(src.read_bytes()[:200])
    assert not square_packshot(broken, tmp_path / "out" / "y.jpg")
    assert not (tmp_path / "out" / "y.jpg").exists()
    assert not decodes(broken) and decodes(dst)


def test_preview_grid_and_markdown(tmp_path):
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"{i}.jpg")
        Image.new("RGB", (64, 64), (i * 40, 0, 0)).save(paths[-1])
    sheet = grid(paths, cols=4, cell=32)
    assert sheet.size == (128, 64)
    assert markdown_image(sheet).startswith("![preview](data:image/jpeg;base64,")


def catalogue_frame(n=500):
    cats = sorted(LABEL_VOCABULARY["category"])
    colors = sorted(LABEL_VOCABULARY["color"])
    return pd.DataFrame({
        "id": [f"P{i:05d}" for i in range(n)],
        "img_path": [f"{cats[i % 7]}/P{i:05d}.jpg" for i in range(n)],
        "category": [cats[i % 7] for i in range(n)],
        "color": [colors[(i // 7) % 9] for i in range(n)],
        "length": ["knee" if i % 3 else None for i in range(n)],
        "sleeve_length": ["short"] * n, "fit": [None] * n, "pattern": ["lace"] * n,
        "neckline": ["v"] * n, "occasion": [None] * n,
    })


def test_one_hot_has_the_thesis_42_columns():
    labels = one_hot(catalogue_frame(20))
    assert labels.shape == (20, 43)
    assert "category_dresses" in labels and "sleeve_length_half" in labels
    assert labels.filter(like="category_").sum(axis=1).eq(1).all()
    assert labels["length_knee"].sum() == sum(1 for i in range(20) if i % 3)
    assert out_of_vocabulary(catalogue_frame(5)) == {}
    bad = catalogue_frame(5).assign(color="lila")
    assert out_of_vocabulary(bad) == {"color": ["lila"]}


def test_splits_are_seeded_stratified_and_stable():
    df = catalogue_frame(1000)
    a, b = assign_splits(df, seed=1), assign_splits(df, seed=1)
    assert a.equals(b)
    assert not a.equals(assign_splits(df, seed=2))
    assert a.value_counts().to_dict() == {"train": 980, "val": 10, "test": 10}
    # each val/test product's (category, colour) group is represented in train too
    held = df[a != "train"]
    train_groups = set(map(tuple, df[a == "train"][["category", "color"]].values))
    assert set(map(tuple, held[["category", "color"]].values)) <= train_groups
    # adding products keeps most earlier assignments
    grown = assign_splits(pd.concat([df, catalogue_frame(1100).iloc[1000:]]), seed=1)
    assert (grown.iloc[:1000] == a).mean() > 0.98
