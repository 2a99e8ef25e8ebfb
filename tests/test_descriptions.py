"""Descriptions (training/descriptions.py), the description encoder and descriptions.h5
(training/description_encoder.py), and the `description_encoder` asset through Dagster's
materialize: the demo shop's products as catalogue rows, real HDF5 and Parquet files."""

import io
import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from dagster import materialize
from PIL import Image

from pipelines.assets.fashiongan import DescriptionEncoderConfig, description_encoder
from pipelines.processing.segmentation import crop_person, write_store
from pipelines.resources import MLflowResource, StorageResource
from scrapers.demo_shop.catalog import make_catalog
from scrapers.demo_shop.draw import SKINS, jpeg, model_photo
from training.description_encoder import (
    encode_texts,
    load_encoder,
    main,
    read_descriptions,
    recombine,
    save_encoder,
    skin_tones,
    train_encoder,
    train_on_catalogue,
    write_descriptions,
)
from training.descriptions import (
    MISSING,
    UnknownDescriptionsError,
    Vocabulary,
    attribute_targets,
    catalogue_descriptions,
    check_known,
    describe,
    tokenize,
)
from training.human_parser import SegmentationStoreError
from training.paths import StoreLayout

N = 120


def demo_catalogue(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Catalogue rows of the demo shop's products: id, brand, name and the translated columns
    (their truth: what the catalogue holds when translation is right)."""
    return pd.DataFrame([{"id": p.id, "brand": p.brand, "name": p.name, **p.truth}
                         for p in make_catalog(n, seed)])


@pytest.fixture(scope="module")
def catalogue() -> pd.DataFrame:
    return demo_catalogue()


@pytest.fixture(scope="module")
def segmentation(tmp_path_factory, catalogue):
    """segmentation.h5 of the first 20 products' front photos (the demo's masks), as
    segmentation_store writes it."""
    ids, images, labels = [], [], []
    for p in make_catalog(20, 0):
        photo, label = model_photo(p, p.views.index("front"))
        photo = np.asarray(Image.open(io.BytesIO(jpeg(photo))).convert("RGB"))
        image, label = crop_person(photo, np.asarray(label))
        ids.append(p.id)
        images.append(image)
        labels.append(label)
    return write_store(tmp_path_factory.mktemp("seg") / "segmentation.h5", ids,
                       np.stack(images), np.stack(labels))


@pytest.fixture(scope="module")
def encoder(catalogue):
    return train_on_catalogue(catalogue, recombined=600, steps=200, lr=2e-2, seed=0)


# ---- sentences, tokens, vocabulary ---------------------------------------------------------

def test_describe_phrases_the_columns_and_leaves_missing_values_out():
    row = {"brand": "s.Oliver", "category": "dresses", "color": "red", "sleeve_length": "half",
           "length": "3-4", "fit": "tight", "pattern": "stripes", "neckline": "v"}
    assert describe(row) == ("striped red dress by s.Oliver, half sleeves, three-quarter "
                             "length, tight fit, v neckline")
    sparse = pd.Series({"brand": None, "category": "pants", "color": float("nan"),
                        "sleeve_length": None, "length": "long", "fit": "", "pattern": None,
                        "neckline": None})
    assert describe(sparse) == "pants, long length"
    assert describe({}) == ""


def test_tokens_keep_brand_spellings_whole():
    assert tokenize("Polka-dot RED top by Marc O'Polo, Even&Odd; s.Oliver") == [
        "polka-dot", "red", "top", "by", "marc", "o'polo", "even&odd", "s.oliver"]


def test_vocabulary_encodes_pads_and_round_trips_as_json(catalogue, tmp_path):
    _, texts = catalogue_descriptions(catalogue)
    vocab = Vocabulary.build(texts)
    assert vocab.tokens[:2] == ["<pad>", "<unk>"] and {"red", "dress", "sleeves"} <= set(
        vocab.tokens)
    tokens, lengths = vocab.encode(["red dress", "red zebra dress by nobody"])
    assert tokens.dtype == lengths.dtype == np.int32 and tokens.shape == (2, 5)
    assert list(lengths) == [2, 5] and (tokens[0, 2:] == 0).all()
    assert tokens[1, 1] == vocab.unk and vocab.unknown_rate(tokens, lengths) == 2 / 7
    again = Vocabulary.load(vocab.save(tmp_path / "v.json"))
    assert again.tokens == vocab.tokens
    assert json.loads((tmp_path / "v.json").read_text())[:2] == ["<pad>", "<unk>"]


def test_descriptions_whose_tokens_are_all_unknown_are_refused_naming_count_and_first_id():
    vocab = Vocabulary.build(["red dress"])
    ids = ["A", "B", "C", "D"]
    texts = ["red dress", "gelbes kleid", "", "blue pants"]
    tokens, lengths = vocab.encode(texts)
    with pytest.raises(UnknownDescriptionsError,
                       match=r"3 of 4 descriptions have no token .* first is product 'B': "
                             r"'gelbes kleid'"):
        check_known(ids, texts, tokens, lengths, vocab)


def test_attribute_targets_follow_label_names(catalogue):
    targets, values = attribute_targets(catalogue)
    assert list(values) == ["category", "color", "length", "sleeve_length", "fit", "pattern",
                            "neckline", "occasion"]
    row = catalogue.iloc[0]
    assert values["color"][targets["color"][0]] == row["color"]
    # packshots.h5 may hold fewer columns; sleeve_length_* is not length_*
    targets, values = attribute_targets(catalogue, ["sleeve_length_long", "sleeve_length_short",
                                                    "length_long"])
    assert values == {"sleeve_length": ["long", "short"], "length": ["long"]}
    is_long = catalogue["sleeve_length"] == "long"
    assert (targets["sleeve_length"][is_long.to_numpy()] == 0).all()
    assert (targets["sleeve_length"][catalogue["sleeve_length"].isna().to_numpy()]
            == MISSING).all()


def test_recombined_products_take_each_column_from_a_training_row(catalogue):
    made = recombine(catalogue.iloc[:10], 50, seed=1)
    assert len(made) == 50 and made["id"].str.startswith("recombined-").all()
    for column in ("brand", "color", "sleeve_length"):
        assert set(made[column].dropna()) <= set(catalogue.iloc[:10][column].dropna())


# ---- the encoder -----------------------------------------------------------------------------

def test_encoder_learns_what_the_description_says_on_held_out_products(encoder):
    result, ids, texts = encoder
    assert len(ids) == len(texts) == N
    assert result.model.hidden == 100 and result.model.config["layers"] == 2
    assert set(result.accuracy) >= {"category", "color", "sleeve_length"}
    assert result.heldout["color"] == round(0.2 * N)
    # colour and category are in every sentence: a held-out product's are read back
    assert result.accuracy["color"] >= 0.8 and result.accuracy["category"] >= 0.8, \
        result.accuracy
    lrs = [r["lr"] for r in result.history]
    assert lrs[0] > 10 * lrs[-1]  # annealed


def test_encoder_saves_and_loads_with_weights_only(encoder, tmp_path):
    result, ids, texts = encoder
    loaded = load_encoder(save_encoder(result, tmp_path / "enc.pt"))
    assert loaded.vocabulary.tokens == result.vocabulary.tokens
    assert loaded.accuracy == result.accuracy
    tokens, lengths = result.vocabulary.encode(texts[:8])
    assert np.allclose(encode_texts(result.model, tokens, lengths),
                       encode_texts(loaded.model, tokens, lengths))
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not written by save_encoder"):
        load_encoder(tmp_path / "other.pt")


def test_lstm_and_too_few_descriptions():
    model = train_encoder(["red dress", "blue top", "red top"],
                          {"color": np.array([0, 1, 0])}, {"color": ["red", "blue"]},
                          steps=2, cell="lstm").model
    assert model.config["cell"] == "lstm"
    with pytest.raises(ValueError, match="at least 2 descriptions"):
        train_encoder(["red dress"], {"color": np.array([0])}, {"color": ["red"]})


# ---- descriptions.h5 -------------------------------------------------------------------------

def test_descriptions_file_holds_d_and_skin_in_the_agreed_layout(encoder, segmentation,
                                                                 tmp_path):
    result, ids, texts = encoder
    attrs = write_descriptions(tmp_path / "descriptions.h5", ids, texts, result, segmentation)
    assert attrs["with_skin"] == 20 and attrs["without_skin"] == N - 20
    with h5py.File(tmp_path / "descriptions.h5") as f:
        assert f["tokens"].dtype == f["lengths"].dtype == np.int32
        assert f["d"].dtype == f["skin"].dtype == np.float32
        assert f["d"].shape == (N, 100) and f["skin"].shape == (N, 3)
        assert f["has_skin"].dtype == bool
        assert f.attrs["vocabulary_size"] == len(result.vocabulary)
        assert f.attrs["unknown_token_rate"] == 0.0
        assert f.attrs["accuracy_color"] == result.accuracy["color"]
    d = read_descriptions(tmp_path / "descriptions.h5")
    assert d["ids"] == ids and d["text"] == texts
    assert np.isfinite(d["skin"]).all() and np.isfinite(d["d"]).all()
    assert -1 <= d["skin"].min() and d["skin"].max() <= 1
    # the demo draws each person in one of four skin tones: the mean of face + arm pixels is
    # near one of them (JPEG, eyes and the crop's resampling move it a little)
    skins = np.array(SKINS) / 127.5 - 1
    has = d["has_skin"]
    nearest = np.abs(d["skin"][has][:, None] - skins[None]).max(-1).min(-1)
    assert (nearest < 0.12).all(), nearest
    # products without a segmentation get the store's mean
    assert np.allclose(d["skin"][~has], d["skin"][has].mean(0), atol=1e-5)


def test_skin_is_refused_from_a_store_with_bad_labels(segmentation, tmp_path):
    with h5py.File(segmentation) as f:
        labels, ids = f["labels"][:], f["ids"][:]
    labels[2, 0, 0] = 7
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_dataset("labels", data=labels)
        f.create_dataset("images", data=np.full((20, 128, 128, 3), 128, np.uint8))
        f.create_dataset("ids", data=ids)
    with pytest.raises(SegmentationStoreError, match="1 of 20 label maps"):
        skin_tones(tmp_path / "bad.h5", ["x"])
    skin, has, counts = skin_tones(None, ["a", "b"])  # no store: mid grey, no skin
    assert not has.any() and (skin == 0).all() and counts["without_skin"] == 2


def test_another_catalogues_unknown_descriptions_are_refused_before_writing(encoder, tmp_path):
    """An encoder loaded for a catalogue whose words it never saw: refused with the count and
    the first product, and no descriptions.h5 is left behind."""
    result, _, _ = encoder
    other = pd.DataFrame({"id": ["X1", "X2", "X3"], "brand": ["Zara", "Gant", "Esprit"],
                          "category": ["mäntel", "westen", "dresses"]})
    ids, texts = catalogue_descriptions(other)
    with pytest.raises(UnknownDescriptionsError, match=r"2 of 3 .* first is product 'X1'"):
        write_descriptions(tmp_path / "d.h5", ids, texts, result)
    assert not (tmp_path / "d.h5").exists()


def test_cli_prints_a_json_line(catalogue, segmentation, tmp_path, capsys):
    path = tmp_path / "catalogue.parquet"
    catalogue.to_parquet(path)
    summary = main(["--catalogue", str(path), "--segmentation", str(segmentation), "--out",
                    str(tmp_path / "e.pt"), "--descriptions", str(tmp_path / "d.h5"),
                    "--steps", "3", "--recombined", "10"])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line == summary and line["products"] == N and line["with_skin"] == 20
    assert (tmp_path / "e.pt").is_file() and (tmp_path / "d.h5").is_file()


# ---- the asset -------------------------------------------------------------------------------

def test_description_encoder_asset_writes_the_encoder_and_descriptions(catalogue, segmentation,
                                                                       tmp_path):
    layout = StoreLayout(tmp_path / "store")
    layout.catalogue_dir.mkdir(parents=True)
    catalogue.to_parquet(layout.catalogue_parquet)
    layout.datasets_dir.mkdir(parents=True)
    layout.segmentation.write_bytes(segmentation.read_bytes())
    resources = {"storage": StorageResource(root=str(layout.root)),
                 "mlflow": MLflowResource(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                                          artifact_root=str(tmp_path / "artifacts"))}
    config = DescriptionEncoderConfig(steps=5, recombined=20).model_dump()
    result = materialize([description_encoder], resources=resources,
                         run_config={"ops": {"description_encoder": {"config": config}}})
    assert result.success
    [event] = result.asset_materializations_for_node("description_encoder")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert set(meta["heldout_accuracy"]) >= {"category", "color"}
    assert meta["descriptions"] == N and meta["with_skin"] == 20
    assert meta["vocabulary_size"] > 20 and meta["unknown_token_rate"] == 0.0
    assert layout.description_encoder.is_file() and layout.descriptions.is_file()
    assert layout.description_encoder.with_suffix(".vocab.json").is_file()
    assert read_descriptions(layout.descriptions)["d"].shape == (N, 100)
    import mlflow

    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db").get_run(
        meta["mlflow_run_id"])
    assert "heldout_accuracy_color" in run.data.metrics
