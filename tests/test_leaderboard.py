"""The leaderboard: generators sampled through their registry tags, scored once per version
(cached in the store), conditional accuracy mapped by label name, the table and the grid."""

import pandas as pd
import pytest
import torch
from torch import nn

from training.datasets import H5ImageDataset
from training.evaluation import evaluate_generator
from training.leaderboard import (
    MetricsClassifier,
    champion_grid,
    file_digest,
    markdown,
    read_scores,
    score_registered,
    score_version,
    set_champions,
    write_scores,
)
from training.models.dcgan import define_G

WHITE, BLACK = 0.88, -0.76  # the colour_store's shades, in [-1, 1]
# the painters' own label order is the reverse of the classifier's (black, white): scores are
# right only if the requested labels are mapped by name
PAINTER_TAGS = {"kind": "conditional", "nz": "4", "latent": "normal", "label_columns": "color",
                "label_sizes": "2", "label_values": {"color": ["white", "black"]},
                "image_size": "32", "channels": "1"}


class Painter(nn.Module):
    """A conditional sampler by the registry's input convention, (N, nz + 2, 1, 1) with the
    colour one-hot last: it paints shades[label] flat, as 32x32 grey images."""

    def __init__(self, nz: int, shades: tuple[float, float]):
        super().__init__()
        self.nz = nz
        self.register_buffer("shades", torch.tensor(shades))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shade = x[:, self.nz:, 0, 0] @ self.shades
        return shade.view(-1, 1, 1, 1).expand(-1, 1, 32, 32)


@pytest.fixture(scope="module")
def judge(colour_store):
    """The attribute classifier after 10 steps, its batch-norm statistics re-estimated on all
    the images (after so few steps the running averages are still far from the data)."""
    from training.classifier import train_classifier

    clf = train_classifier(colour_store, steps=10, batch_size=8, width=4)
    data = H5ImageDataset(colour_store)
    for m in clf.model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the one pass
    with torch.no_grad():
        clf.model.train()(data.batch(torch.arange(len(data))))
    return clf.model.eval(), clf.values, data


def test_conditional_accuracy_maps_labels_by_name(judge):
    classifier, values, data = judge
    assert values == {"color": ["black", "white"]}
    faithful = evaluate_generator(Painter(4, (WHITE, BLACK)), PAINTER_TAGS, data, classifier,
                                  values, n=64)
    assert faithful["conditional_accuracy"] >= 0.9
    assert faithful["conditional_accuracy_color"] == faithful["conditional_accuracy"]
    assert faithful["conditional_unmapped"] == 0.0
    assert faithful["symmetry_error_generated"] == 0.0 and faithful["symmetry_error_real"] > 0
    contrary = evaluate_generator(Painter(4, (BLACK, WHITE)), PAINTER_TAGS, data, classifier,
                                  values, n=64)
    assert contrary["conditional_accuracy"] <= 0.1
    # a value the classifier does not know is a miss, and reported
    purple = {**PAINTER_TAGS, "label_values": {"color": ["white", "purple"]}}
    odd = evaluate_generator(Painter(4, (WHITE, BLACK)), purple, data, classifier, values, n=64)
    assert 0.3 <= odd["conditional_unmapped"] <= 0.7
    assert odd["conditional_accuracy"] == pytest.approx(1 - odd["conditional_unmapped"], abs=0.1)


def test_unconditional_versions_keep_working_without_the_new_tags(judge):
    classifier, values, data = judge
    generator = define_G(16, 8)
    legacy = evaluate_generator(generator, 16, data, classifier, values, n=32)
    tagged = evaluate_generator(generator, {"nz": "16", "latent": "normal"}, data, classifier,
                                values, n=32)
    assert legacy == tagged and legacy["frechet_distance"] > 0
    assert not any(k.startswith("conditional") for k in legacy)


def test_file_digest_follows_content(tmp_path):
    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"classifier v1")
    b.write_bytes(b"classifier v1")
    assert file_digest(a) == file_digest(b) and len(file_digest(a)) == 16
    b.write_bytes(b"classifier v2")
    assert file_digest(a) != file_digest(b)


def test_score_table_round_trips_as_csv(tmp_path):
    row = {"model": "fashion-x", "version": 1, "run_id": "", "classifier_id": "0123456789012345",
           "data_id": "d", "samples": 8, "seed": 0, "inception_id": "", "tags_id": "t",
           "frechet_distance": 1.5}
    write_scores(tmp_path / "s.csv", [row])
    write_scores(tmp_path / "s.csv", [{**row, "frechet_distance": 2.5}])  # same key: replaced
    table = read_scores(tmp_path / "s.csv")
    assert table.to_dict("records") == [{**row, "frechet_distance": 2.5}]
    assert not list(tmp_path.glob(".*.tmp"))


def test_each_version_is_scored_once(tmp_path, judge):
    import mlflow
    from PIL import Image

    from training.tracking import log_generator, mlflow_run

    classifier, values, data = judge
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with mlflow_run("register", uri, str(tmp_path / "artifacts")):
        log_generator(define_G(16, 8), "dcgan", 16, {"variant": "baseline", "kind": "sampler"})
        log_generator(Painter(4, (WHITE, BLACK)), "cgan", 4, PAINTER_TAGS)
    client = mlflow.MlflowClient(tracking_uri=uri)
    assert client.get_model_version("fashion-cgan", "1").tags["label_values"] == \
        '{"color": ["white", "black"]}'
    cache = tmp_path / "evaluation" / "scores.parquet"

    def score(classifier_id="clf-1"):
        return score_registered(client, data, classifier, values, 32, 20, 0, None, cache,
                                classifier_id, "data-1")

    first, counts = score()
    assert counts == {"scored": 2, "cached": 0}
    rows = first.set_index("model")
    assert rows.loc["fashion-cgan", "conditional_accuracy"] >= 0.9
    assert pd.isna(rows.loc["fashion-dcgan", "conditional_accuracy"])
    again, counts = score()
    assert counts == {"scored": 0, "cached": 2}
    pd.testing.assert_frame_equal(again, first)

    with mlflow_run("register", uri, str(tmp_path / "artifacts")):
        log_generator(define_G(16, 8), "dcgan", 16, {"variant": "baseline", "kind": "sampler"})
    third, counts = score()
    assert counts == {"scored": 1, "cached": 2} and len(third) == 3
    _, counts = score("clf-2")
    assert counts == {"scored": 3, "cached": 0}
    # a version whose sampling tags change is scored again: here its label names are swapped
    client.set_model_version_tag("fashion-cgan", "1", "label_values",
                                 '{"color": ["black", "white"]}')
    swapped, counts = score("clf-2")
    assert counts == {"scored": 1, "cached": 2}
    assert swapped.set_index("model").loc["fashion-cgan", "conditional_accuracy"] <= 0.1

    champions = set_champions(client, third)
    assert set(champions) == {"fashion-dcgan", "fashion-cgan"}
    text = markdown(third, champions)
    samplers, conditional = text.split("**Conditional samplers")
    headers = [line for line in text.splitlines() if line.startswith("| model")]
    assert len(headers) == 2 and "cond_acc" not in headers[0] and "cond_acc" in headers[1]
    assert all(h in headers[1] for h in ("model", "ver", "FD", "KID", "cond_acc"))
    assert "champ" not in text.split("- ")[0]  # the mark sits beside the version, no column
    assert "FID_incep" not in text and text.count("✔") == 2 + 1  # two marks, one legend
    assert "| dcgan" in samplers and "| cgan" in conditional and "fashion-dcgan" not in samplers

    grid = champion_grid(client, champions, {"fashion-cgan": PAINTER_TAGS},
                         tmp_path / "champions.png", n=4)
    image = Image.open(grid)
    assert image.width >= 2 * 2 * 64 and image.height > 2 * 64


def test_a_version_scored_by_its_training_asset_is_not_scored_again(tmp_path, judge):
    """score_version (what a training asset calls after registering) puts the registered
    version's scores in the leaderboard's cache under the key score_registered looks up: the
    leaderboard takes them, with the same figures; other settings score it anew."""
    import mlflow

    from training.tracking import log_generator, mlflow_run

    classifier, values, data = judge
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with mlflow_run("register", uri, str(tmp_path / "artifacts")):
        version = log_generator(Painter(4, (WHITE, BLACK)), "cgan", 4, PAINTER_TAGS)
    client = mlflow.MlflowClient(tracking_uri=uri)
    cache = tmp_path / "scores.parquet"
    clf = MetricsClassifier(classifier, values, "fashion-classifier-multihead v1", "clf-1")
    scores = score_version(client, "fashion-cgan", version, data, clf, 32, 0, cache, "data-1")
    assert scores["conditional_accuracy"] >= 0.9

    def board(n=32):
        return score_registered(client, data, classifier, values, n, 20, 0, None, cache,
                                "clf-1", "data-1", classifier_name=clf.name)

    table, counts = board()
    assert counts == {"scored": 0, "cached": 1}
    row = table.set_index("model").loc["fashion-cgan"]
    assert row["frechet_distance"] == scores["frechet_distance"]
    assert row["classifier"] == "fashion-classifier-multihead v1"
    _, counts = board(n=24)  # another sample count: scored by the leaderboard itself
    assert counts == {"scored": 1, "cached": 0}


def test_concurrent_writers_keep_every_row(tmp_path):
    """Training assets of one train_job add their scores side by side: none is lost."""
    from concurrent.futures import ProcessPoolExecutor

    path = tmp_path / "scores.parquet"
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(write_one, [(path, i) for i in range(16)]))
    assert sorted(read_scores(path)["version"]) == list(range(16))


def write_one(args) -> None:
    path, version = args
    write_scores(path, [{"model": "fashion-x", "version": version, "run_id": "",
                         "classifier_id": "c", "data_id": "d", "samples": 8, "seed": 0,
                         "inception_id": "", "tags_id": "t", "classifier": "",
                         "frechet_distance": float(version)}])
