"""The two-stage FashionGAN and its single-GAN baseline: the data join and its bad input, the
networks' shapes, a few steps through the CLI and train() with exact resume, every trick
switchable, the measures on inputs whose answer is known, and the swap matrix.

The stores are drawn here: 24 persons of 128 px whose upper garment has the product's colour
(black, red, blue, white) and long or short sleeves, the segmentation store in its real layout
(pipelines.processing.segmentation.write_store), a packshots-like attribute store and a
descriptions file in the layout agreed with the description encoder (ids, d, skin)."""

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from pipelines.processing.h5store import write_image_store
from pipelines.processing.segmentation import write_store
from training.__main__ import main as cli
from training.datasets import open_dataset
from training.family import get_family
from training.fashiongan_data import FashionGANDataError, FashionGANDataset
from training.fashiongan_metrics import (
    body_coherence,
    classifier_fd,
    mean_iou,
    read_attributes,
    swap_matrix,
    swap_rates,
    to_uint8,
)
from training.loop import train
from training.models.fashiongan import (
    TwoStageTranslator,
    coarse_from_segmentation,
    define_D1,
    define_D2,
    define_G1,
    define_G2,
    define_single_D,
    define_single_G,
)

N = 24
COLOURS = {"black": (25, 25, 25), "red": (220, 40, 40), "blue": (40, 60, 210),
           "white": (240, 240, 240)}
SLEEVES = ("long", "short")
STR = h5py.string_dtype("utf-8")


def attributes(i: int) -> tuple[str, str]:
    return list(COLOURS)[i % 4], SLEEVES[(i // 4) % 2]


def person(i: int) -> tuple[np.ndarray, np.ndarray]:
    """(image (128, 128, 3), labels (128, 128)) of person i, shifted by (i % 3 - 1) * 4 px."""
    colour, sleeve = attributes(i)
    lab = np.zeros((128, 128), np.uint8)
    dx = (i % 3 - 1) * 4
    for (r0, r1, c0, c1), cls in (((10, 20, 54, 74), 2), ((20, 34, 56, 72), 1),
                                  ((34, 74, 40, 48), 3), ((34, 74, 80, 88), 3),
                                  ((34, 70, 48, 80), 4), ((70, 100, 50, 78), 5),
                                  ((100, 124, 52, 62), 6), ((100, 124, 66, 76), 6)):
        lab[r0:r1, c0 + dx:c1 + dx] = cls
    if sleeve == "long":  # sleeves cover the arms down to the hands
        lab[34:68, 40 + dx:48 + dx] = 4
        lab[34:68, 80 + dx:88 + dx] = 4
    palette = np.array([(250, 250, 250), (205, 150, 120), (60, 40, 30), (205, 150, 120),
                        COLOURS[colour], (50, 50, 120), (205, 150, 120)], np.uint8)
    return palette[lab], lab


def write_descriptions(path: Path, ids: list[str], images: np.ndarray | None = None,
                       labels: np.ndarray | None = None, d: np.ndarray | None = None) -> Path:
    """descriptions.h5: d = the product's colour and sleeve one-hots in 100 numbers (plus a
    little noise per product), skin = mean RGB of face and arms in [-1, 1]."""
    rng = np.random.default_rng(0)
    if d is None:
        d = rng.normal(0, 0.05, (len(ids), 100)).astype(np.float32)
        for k, i in enumerate(ids):
            colour, sleeve = attributes(int(i[1:]))
            d[k, list(COLOURS).index(colour)] += 1
            d[k, 4 + SLEEVES.index(sleeve)] += 1
    skin = np.zeros((len(ids), 3), np.float32)
    if images is not None:
        for k in range(len(ids)):
            m = np.isin(labels[k], (1, 3))
            skin[k] = images[k][m].mean(0) / 127.5 - 1
    with h5py.File(path, "w") as f:
        f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STR)
        f["text"] = np.array([f"{' '.join(attributes(int(i[1:])))} top" for i in ids],
                             dtype=object).astype(STR)
        f["d"], f["skin"] = d.astype(np.float32), skin
        f["has_skin"] = np.ones(len(ids), bool)
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fashiongan")
    ids = [f"P{i}" for i in range(N)]
    images, labels = (np.stack(a) for a in zip(*(person(i) for i in range(N)), strict=True))
    seg = write_store(folder / "segmentation.h5", ids, images, labels)
    # descriptions for 20 of the 24 persons, and for 2 products without a photo
    described = [f"P{i}" for i in range(4, N)] + ["X1", "X2"]
    rows = [int(i[1:]) for i in described[:-2]]
    desc = write_descriptions(folder / "descriptions.h5", described[:-2] + ["P1", "P2"],
                              np.concatenate([images[rows], images[[1, 2]]]),
                              np.concatenate([labels[rows], labels[[1, 2]]]))
    names = [f"color_{c}" for c in COLOURS] + [f"sleeve_length_{s}" for s in SLEEVES]
    onehot = np.zeros((N, len(names)), np.uint8)
    for i in range(N):
        colour, sleeve = attributes(i)
        onehot[i, names.index(f"color_{colour}")] = 1
        onehot[i, names.index(f"sleeve_length_{sleeve}")] = 1
    packshots = write_image_store(folder / "packshots.h5", ids,
                                  images[:, ::2, ::2].copy(), {"labels": onehot},
                                  attrs={"label_names": names})
    return {"seg": seg, "desc": desc, "packshots": packshots, "folder": folder,
            "images": images, "labels": labels}


def tiny(family: str = "fashiongan", **kw):
    return get_family(family).Config(**{
        "steps": 4, "batch_size": 4, "nz": 8, "ngf": 4, "ndf": 4, "image_size": 32,
        "log_every": 1, "sample_every": 100, "checkpoint_every": 100, "bf16": False,
        "d_noise_steps": 3, "cyclic_period": 3, **kw})


# ---- data -----------------------------------------------------------------------------------
def test_the_join_by_id_and_the_batch(stores):
    data = open_dataset(stores["seg"], descriptions=stores["desc"], image_size=32, flip=True)
    assert isinstance(data, FashionGANDataset)
    # P0 and P3 have no description; P1, P2 have one; X1, X2 have no photo
    assert data.ids == ["P1", "P2"] + [f"P{i}" for i in range(4, N)]
    assert data.without_description == 2 and data.cond_dim == 103
    assert len(data.train_index()) + len(data.test_index()) == len(data) == 22
    assert len(data.test_index()) >= 1
    with h5py.File(stores["desc"]) as f:
        d_p5 = f["d"][list(f["ids"].asstr()[:]).index("P5")]
    assert np.allclose(data.condition_of(torch.tensor([data.ids.index("P5")]))[0, :100], d_p5)
    idx = data.train_index()[:6]
    x, maps, coarse, c, mis = data.batch(idx)
    assert x.shape == (6, 3, 32, 32) and maps.shape == (6, 1, 32, 32)
    assert maps.dtype == torch.long and int(maps.max()) <= 6
    assert coarse.shape == (6, 4, 8, 8) and torch.equal(coarse.sum(1), torch.ones(6, 8, 8))
    assert c.shape == mis.shape == (6, 103, 1, 1)
    rows = data.mismatched_rows(idx)
    assert not (rows == idx).any() and all(int(r) in data.train_index() for r in rows)
    # a flipped example flips its photo, map and m(S0) together
    for k in range(6):
        plain = (data.images_of(idx[k:k + 1])[0], data.maps_of(idx[k:k + 1])[0],
                 data.coarse_of(idx[k:k + 1])[0])
        got = (x[k], maps[k, 0], coarse[k])
        assert all(torch.equal(a, b) for a, b in zip(got, plain, strict=True)) or \
            all(torch.equal(a, b.flip(-1)) for a, b in zip(got, plain, strict=True))
    assert any(not torch.equal(x[k], data.images_of(idx[k:k + 1])[0]) for k in range(6))


def test_the_mismatched_draws_come_from_the_checkpointed_generator(stores):
    a = open_dataset(stores["seg"], descriptions=stores["desc"], image_size=32)
    b = open_dataset(stores["seg"], descriptions=stores["desc"], image_size=32)
    idx = a.train_index()[:8]
    a.batch(idx)
    b.generator.set_state(a.generator.get_state())
    assert torch.equal(a.batch(idx)[4], b.batch(idx)[4])


def write_raw_store(path: Path, labels: np.ndarray, images: np.ndarray | None, ids) -> Path:
    with h5py.File(path, "w") as f:
        f["labels"] = labels
        if images is not None:
            f["images"] = images
        f.create_dataset("ids", data=np.array(ids, dtype=object), dtype=STR)
    return path


def test_bad_input_is_one_line_naming_the_count_and_the_first_product(stores, tmp_path,
                                                                      capsys):
    images, labels = stores["images"][:6], stores["labels"][:6].copy()
    ids = [f"P{i}" for i in range(6)]
    labels[[2, 4], 60, 60] = 9
    bad = write_raw_store(tmp_path / "bad.h5", labels, images, ids)
    with pytest.raises(FashionGANDataError,
                       match=r"^2 of 6 label maps .* outside 0-6 \(up to 9\); the first is "
                             r"product 'P2'"):
        open_dataset(bad, descriptions=stores["desc"])
    blind = write_raw_store(tmp_path / "blind.h5", stores["labels"][:6], None, ids)
    with pytest.raises(FashionGANDataError, match=r"has no images: its 6 label maps \(the "
                                                  r"first is product 'P0'\)"):
        open_dataset(blind, descriptions=stores["desc"])
    strangers = write_descriptions(tmp_path / "strangers.h5", ["Q1", "Q2"])
    with pytest.raises(FashionGANDataError, match=r"no product is in both .* \(24 ids, the "
                                                  r"first 'P0'\) and .* \(2 ids, the first "
                                                  r"'Q1'\)"):
        open_dataset(stores["seg"], descriptions=strangers)
    nan = np.zeros((3, 100), np.float32)
    nan[1, 5] = np.nan
    with pytest.raises(FashionGANDataError, match=r"1 of 3 descriptions .* NaN .* the first "
                                                  r"is product 'P5'"):
        open_dataset(stores["seg"], descriptions=write_descriptions(
            tmp_path / "nan.h5", ["P4", "P5", "P6"], d=nan))
    with pytest.raises(FashionGANDataError, match="--descriptions FILE"):
        open_dataset(stores["seg"], descriptions="")
    # `python -m training fashiongan` says it in one line, before any training
    with pytest.raises(SystemExit) as exit_:
        cli(["fashiongan", "--data", str(bad), "--descriptions", str(stores["desc"]), "--out",
             str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "first is product 'P2'" in err
    assert len(err.strip().splitlines()) == 1


# ---- networks -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [64, 128])
def test_the_networks_shapes(size):
    b, z, c = 2, torch.randn(2, 16, 1, 1), torch.randn(2, 103, 1, 1)
    m = torch.zeros(b, 4, 8, 8)
    m[:, 0] = 1
    g1, d1 = define_G1(16, 103, 4, size), define_D1(103, 4, size)
    g2, d2 = define_G2(16, 103, 4, size), define_D2(103, 4, size)
    gs, ds = define_single_G(16, 103, 4, size), define_single_D(103, 4, size)
    logits = g1(z, c, m)
    assert logits.shape == (b, 7, size, size)
    seg = torch.softmax(logits, 1)
    assert d1(seg, c, m).shape == (b,)
    image = g2(z, c, seg)
    assert image.shape == (b, 3, size, size) and image.abs().max() <= 1
    assert d2(image, c, seg).shape == (b,)
    assert gs(z, c.flatten(1), m).shape == (b, 3, size, size) and ds(image, c, m).shape == (b,)
    translated = TwoStageTranslator(g1, g2).eval()(seg, c.flatten(1))
    assert translated.shape == (b, 3, size, size)


def test_the_exported_coarse_vote_is_the_stores(stores):
    from pipelines.processing.segmentation import coarse_map

    labels = stores["labels"][:6]
    onehot = torch.nn.functional.one_hot(torch.from_numpy(labels).long(), 7).permute(0, 3, 1, 2)
    assert np.array_equal(coarse_from_segmentation(onehot.float()).argmax(1).numpy(),
                          coarse_map(labels))


# ---- training -------------------------------------------------------------------------------
def test_a_few_steps_through_the_cli(stores, tmp_path, capsys):
    """`python -m training fashiongan ...` (its main, in this process): the JSON line, the
    report's files."""
    summary = cli(["fashiongan", "--data", str(stores["seg"]), "--descriptions",
                   str(stores["desc"]), "--out", str(tmp_path), "--steps", "2",
                   "--batch-size", "4", "--nz", "8", "--ngf", "4", "--ndf", "4",
                   "--image-size", "32", "--fp32", "--no-progress", "--no-cyclic-lr"])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["steps_run"] == summary["steps_run"] == 2
    assert printed["kind"] == "translator" and printed["measures"]["n_test"] >= 1
    assert (tmp_path / "stages.png").exists() and (tmp_path / "translator.pt").exists()
    assert sorted(p.name for p in (tmp_path / "samples").glob("*.png")) == ["step_000002.png"]


@pytest.mark.parametrize("family", ["fashiongan", "fashiongan_single"])
def test_train_resumes_exactly(family, stores, tmp_path):
    """Every trick on (the random labels, the instance noise, the lazy D's turns, the
    mismatched draws and the flips all come from checkpointed generators)."""
    cfg = tiny(family, descriptions=str(stores["desc"]))
    straight = train(family, cfg, stores["seg"], tmp_path / "straight")
    train(family, dataclasses.replace(cfg, steps=2), stores["seg"], tmp_path / "resumed")
    resumed = train(family, cfg, stores["seg"], tmp_path / "resumed")
    assert resumed["resumed_from"] == 2
    assert resumed["final_losses"] == straight["final_losses"]
    a, b = (torch.load(tmp_path / run / "checkpoint.pt", weights_only=True)["modules"]
            for run in ("straight", "resumed"))
    for net in a:
        for key, value in a[net].items():
            assert torch.equal(value, b[net][key]), f"{net}.{key}"
    assert set(straight["final_losses"]) == set(get_family(family).losses)


def test_every_trick_switches_off(stores, tmp_path):
    from training.families.fashiongan import FashionGAN

    data = open_dataset(stores["seg"], descriptions=stores["desc"], image_size=32)
    on = FashionGAN(tiny(descriptions=str(stores["desc"]), cyclic_period=4, d_every=2),
                    data, torch.device("cpu"))
    off = FashionGAN(tiny(descriptions=str(stores["desc"]), cyclic_lr=False, lazy_d=False,
                          soft_labels=False, noisy_labels=False, noisy_d_input=False,
                          weighted_d_loss=False), data, torch.device("cpu"))
    for family in (on, off):
        torch.manual_seed(0)
        family.build()
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(64, 3, 4, 4)
    # cyclic lr: a triangle from 0.1 lr up to lr and back; off: lr
    factors = []
    for step in range(5):
        on.current_step = off.current_step = step
        factors.append(on.lr_factor())
        assert off.lr_factor() == 1.0
    assert factors == pytest.approx([0.1, 0.55, 1.0, 0.55, 0.1])
    # lazy D: half the lr, every second step; off: every step, lr
    on.current_step, off.current_step = 2, 2
    on.set_lr(), off.set_lr()
    assert on.optimizers["optD1"].param_groups[0]["lr"] == pytest.approx(0.5 * on.cfg.lr)
    assert on.optimizers["optG1"].param_groups[0]["lr"] == pytest.approx(on.cfg.lr)
    assert off.optimizers["optD2"].param_groups[0]["lr"] == pytest.approx(off.cfg.lr)
    turns = []
    for step in range(4):
        on.current_step = off.current_step = step
        turns.append(on.d_turn())
        assert off.d_turn()
    assert turns == [True, False, True, False]
    # soft and noisy labels: targets in [0.8, 1] and [0, 0.2] with ~5 % flipped; off: 1 and 0
    real, fake = on.targets(2000, g)
    flipped = (real < 0.5).float().mean()
    assert 0.02 < flipped < 0.09 and ((real >= 0.8) | (real <= 0.2)).all()
    assert fake.max() <= 1 and (fake[fake < 0.5] <= 0.2).all()
    real, fake = off.targets(100, g)
    assert torch.equal(real, torch.ones(100)) and torch.equal(fake, torch.zeros(100))
    # instance noise: std 0.1 falling to 0 over d_noise_steps (3); off: none
    on.current_step = 0
    assert on.noisy(x, g).std() == pytest.approx(0.1, rel=0.15)
    on.current_step = 3
    assert torch.equal(on.noisy(x, g), x) and torch.equal(off.noisy(x, g), x)
    # weighted D loss: real + (mismatched + fake) / 2; off: the plain sum
    assert on.d_weights() == (1.0, 0.5, 0.5) and off.d_weights() == (1.0, 1.0, 1.0)
    # and a run with all of them off, feeding G2 with G1's maps, trains
    summary = train("fashiongan", dataclasses.replace(off.cfg, steps=2, g2_input="generated"),
                    stores["seg"], tmp_path)
    assert summary["steps_run"] == 2 and np.isfinite(list(summary["final_losses"].values())).all()


# ---- measures -------------------------------------------------------------------------------
def truth_parser(images: np.ndarray, labels: np.ndarray):
    """A stand-in human parser made from the true maps: the map of each known photo (looked
    up by its pixels), background for anything else."""
    known = {im.tobytes(): lab for im, lab in zip(images, labels, strict=True)}

    def parse(batch: np.ndarray) -> np.ndarray:
        return np.stack([known.get(im.tobytes(), np.zeros(batch.shape[1:3], np.uint8))
                         for im in batch])

    return parse


def test_body_coherence_of_a_perfect_parse_is_one(stores):
    images = torch.from_numpy(stores["images"][:6]).permute(0, 3, 1, 2).float() / 127.5 - 1
    labels = torch.from_numpy(stores["labels"][:6])
    parse = truth_parser(to_uint8(images), stores["labels"][:6])
    scores = body_coherence(parse, images, labels, labels)
    assert scores["body_miou"] == 1.0 and scores["coherence_miou"] == 1.0
    # a parse that sees no one: every body class missed
    nobody = body_coherence(lambda b: np.zeros(b.shape[:3], np.uint8), images, labels, labels)
    assert nobody["body_miou"] == 0.0
    # legs parsed as lower clothes: legs IoU 0, the other three 1
    def no_legs(batch):
        out = parse(batch).copy()
        out[out == 6] = 5
        return out
    assert body_coherence(no_legs, images, labels)["body_miou"] == pytest.approx(0.75)
    assert mean_iou(np.array([[0, 1]]), np.array([[0, 0]])) == pytest.approx(0.25)


def test_swap_rates_on_known_matrices():
    target = {"color": torch.tensor([0, 1, 2, 2]), "sleeve_length": torch.tensor([0, 0, 1, -1])}
    follows = {c: t[None, :].expand(4, 4) for c, t in target.items()}  # j's value everywhere
    rates = swap_rates(follows, target)
    assert rates["swap_color_diag"] == rates["swap_color_off"] == 1.0
    assert rates["swap_sleeve_length_off"] == 1.0 and rates["swap_color_kept"] == 0.0
    ignores = {c: t[:, None].expand(4, 4) for c, t in target.items()}  # i's value: no swap
    rates = swap_rates(ignores, target)
    assert rates["swap_color_diag"] == 1.0 and rates["swap_color_kept"] == 1.0
    # off the diagonal j's colour is found only where i and j share it (2, 3): 2 of 12
    assert rates["swap_color_off"] == pytest.approx(2 / 12)
    assert rates["swap_rate_diag"] == 1.0


def test_the_swap_matrix_reads_the_description(stores):
    """A draw that dresses person i in product j's photo follows every description: the
    judge (reading the colour from the upper clothes' pixels) finds j's colour everywhere."""
    data = open_dataset(stores["seg"], descriptions=stores["desc"])
    persons = torch.arange(6)
    targets, values = read_attributes(stores["packshots"], data.ids)
    assert values["color"] == list(COLOURS)
    assert targets["color"][:3].tolist() == [list(COLOURS).index(attributes(i)[0])
                                             for i in (1, 2, 4)]
    conditions = data.condition_of(persons)

    def draw(index, condition):  # the product whose description this is, worn
        rows = [int(torch.nonzero((conditions == c).all(1))[0]) for c in condition]
        return data.images_of(persons[rows])

    rgb = torch.tensor([COLOURS[c] for c in COLOURS]).float() / 127.5 - 1

    def judge(images):
        upper = images[:, :, 50, 64]  # a pixel of the upper clothes
        return {"color": torch.cdist(upper, rgb).argmin(1)}

    images, rates = swap_matrix(draw, persons, conditions, judge,
                                {"color": targets["color"][persons]})
    assert images.shape == (6, 6, 3, 128, 128)
    assert rates["swap_color_diag"] == rates["swap_color_off"] == 1.0


def test_the_report_has_every_measure(stores, tmp_path):
    """FD per stage in a classifier's space, the swap matrix with its judge, the grids; the
    Fréchet distance of a set to itself is 0."""
    from training.classifier import ClassifierResult, save_classifier
    from training.models.classifier import define_classifier

    values = {"color": list(COLOURS), "sleeve_length": list(SLEEVES)}
    torch.manual_seed(0)
    classifier = define_classifier({k: len(v) for k, v in values.items()}, width=4).eval()
    path = save_classifier(ClassifierResult(classifier, values, {}, 0.0), tmp_path / "c.pt", 4)
    images = torch.from_numpy(stores["images"][:12]).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert classifier_fd(classifier, images, images) == pytest.approx(0, abs=1e-3)
    cfg = tiny("fashiongan", steps=2, descriptions=str(stores["desc"]),
               fd_classifier=str(path),
               attributes=str(stores["packshots"]), judge_steps=5, swap_n=4)
    summary = train("fashiongan", cfg, stores["seg"], tmp_path / "run")
    m = summary["measures"]
    for key in ("fd_image", "fd_stage1", "fd_stage2", "stage1_miou", "swap_rate_diag",
                "swap_rate_off", "swap_color_kept", "judge_accuracy_color"):
        assert np.isfinite(m[key]), key
    assert m["swap_persons"] == 4
    for png in ("swap_matrix.png", "stages.png"):
        assert (tmp_path / "run" / png).stat().st_size > 500
    model = get_family("fashiongan").restore(cfg, open_dataset(
        stores["seg"], **get_family("fashiongan").data_options(cfg)), tmp_path / "run")
    metrics, pictures = model.report(tmp_path / "run", summary)
    assert metrics["fd_image"] == m["fd_image"]
    assert {k: [p.name for p in v] for k, v in pictures.items()} == {
        "swap_matrix": ["swap_matrix.png"], "stages": ["stages.png"]}


# ---- the asset ------------------------------------------------------------------------------
def test_the_asset_trains_measures_and_registers_a_translator(stores, tmp_path):
    """The frame's generated `fashiongan` asset, materialised by Dagster on a store with the
    segmentation store, the descriptions, packshot labels and an attribute classifier: one
    MLflow run with the measures, the swap matrix and stages pictures on the asset page, and
    fashion-fashiongan registered as a conditional translator."""
    import mlflow
    from dagster import DagsterInstance, RunConfig, materialize

    from pipelines.assets.training import ASSETS_BY_NAME, asset_config
    from pipelines.resources import MLflowResource, StorageResource
    from training.classifier import ClassifierResult, save_classifier
    from training.models.classifier import define_classifier

    root = tmp_path / "store"
    (root / "datasets").mkdir(parents=True)
    for name, key in (("segmentation", "seg"), ("descriptions", "desc"),
                      ("packshots", "packshots")):
        (root / "datasets" / f"{name}.h5").write_bytes(stores[key].read_bytes())
    values = {"color": list(COLOURS), "category": ["tops"]}
    torch.manual_seed(0)
    save_classifier(ClassifierResult(define_classifier({k: len(v) for k, v in values.items()},
                                                       width=4), values, {}, 0.0),
                    root / "models" / "attribute_classifier.pt", 4)
    uri = f"sqlite:///{root}/mlflow/mlflow.db"
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    result = materialize(
        [ASSETS_BY_NAME["fashiongan"]],
        resources={"storage": StorageResource(root=str(root)),
                   "mlflow": MLflowResource(tracking_uri=uri,
                                            artifact_root=str(root / "mlflow" / "artifacts"))},
        instance=DagsterInstance.local_temp(str(dagster_home)),
        run_config=RunConfig(ops={"fashiongan": asset_config(
            "fashiongan", steps=2, batch_size=4, nz=8, ngf=4, ndf=4, image_size=32,
            judge_steps=5, swap_n=4, eval_samples=10, bf16=False)}))
    assert result.success
    [event] = result.asset_materializations_for_node("fashiongan")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["model"] == "fashion-fashiongan version 1"
    assert {"swap_matrix_picture", "stages_picture"} <= set(meta)
    client = mlflow.MlflowClient(uri)
    version = client.get_model_version("fashion-fashiongan", "1")
    assert version.tags["kind"] == "translator"
    assert version.tags["conditioning"] == "segmentation+description"
    assert version.tags["cond_dim"] == "103" and version.tags["channels"] == "7"
    metrics = client.get_run(meta["mlflow_run_id"]).data.metrics
    for key in ("frechet_distance", "l1", "fd_stage1", "fd_stage2", "swap_rate_off"):
        assert np.isfinite(metrics[key]), key
    assert client.get_run(meta["mlflow_run_id"]).data.params["descriptions"] == str(
        root / "datasets" / "descriptions.h5")
