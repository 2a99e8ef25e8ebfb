"""The unpaired translators: CycleGAN (packshot <-> person, or between two values of a label
column) and MUNIT (multimodal packshot -> person) through the CLI, resumed exactly, measured
for what they are for, refusing bad domains in one line, and registered by their assets."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from stacked_calls import BUFFER, assert_same_gradients, separate_calls, step_gradients

from pipelines.processing.h5store import write_image_store
from training.checkpoint import load_plain
from training.classifier import load_classifier, save_classifier, train_classifier
from training.families.cyclegan import CycleGAN, CycleGANConfig, parse_domains
from training.families.munit import MUNIT, MUNITConfig
from training.loop import prepare, train
from training.paired import build_paired_store
from training.translation_metrics import edit_success, translate

PALETTE = np.array([[200, 30, 30], [30, 200, 30], [30, 30, 200]], np.uint8)
TINY = {"batch_size": 2, "ngf": 4, "ndf": 4, "log_every": 1}
MUNIT_TINY = {**TINY, "mlp_dim": 8, "n_res": 1}
CLI_TINY = ["--steps", "2", "--batch-size", "2", "--ngf", "4", "--ndf", "4", "--no-progress"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """48 packshots (a coloured square on white, labelled red/green/blue, and short or long
    sleeves) and their person crops (a figure in the colour on grey), paired at 32 px with 16
    test pairs; the attribute classifier trained on the packshots for a few steps (the
    measures' feature space)."""
    root = tmp_path_factory.mktemp("unpaired")
    n, size = 48, 64
    rng = np.random.default_rng(0)
    colour, sleeve = rng.integers(0, 3, n), rng.integers(0, 2, n)
    a = np.full((n, size, size, 3), 255, np.uint8)
    a[:, 16:48, 16:48] = PALETTE[colour][:, None, None]
    b = np.full((n, size, size, 3), 120, np.uint8)
    b[:, 8:56, 24:40] = PALETTE[colour][:, None, None]
    ids = [f"P{i}" for i in range(n)]
    packshots = write_image_store(
        root / "packshots.h5", ids, a,
        {"labels": np.concatenate([np.eye(3, dtype=np.uint8)[colour],
                                   np.eye(2, dtype=np.uint8)[sleeve]], 1),
         "split": np.zeros(n, np.uint8)},
        attrs={"label_names": ["color_red", "color_green", "color_blue",
                               "sleeve_length_short", "sleeve_length_long"],
               "split_names": ["train", "val", "test"]})
    crops = write_image_store(root / "crops.h5", ids, b)
    paired = root / "datasets" / "paired_images.h5"
    paired.parent.mkdir()
    build_paired_store(packshots, crops, paired, min_test=16, size=32)
    no_test = root / "no_test.h5"  # the catalogue's split as it is: no test pairs
    build_paired_store(packshots, crops, no_test, min_test=0, size=32)
    classifier = root / "models" / "attribute_classifier.pt"
    save_classifier(train_classifier(packshots, steps=3, batch_size=8, width=4), classifier, 4)
    return {"root": root, "paired": paired, "no_test": no_test, "classifier": classifier}


def run_cli(capsys, *args: str) -> dict:
    """`python -m training ARGS` in this process (training.__main__.main, which the module
    runs): its JSON line, parsed."""
    from training.__main__ import main

    main(list(args))
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


# ----- through the CLI ------------------------------------------------------------------------
def test_cyclegan_cli_trains_both_directions_and_measures_them(stores, tmp_path, capsys):
    summary = run_cli(capsys, "cyclegan", "--data", str(stores["paired"]), "--out",
                      str(tmp_path / "run"), "--fd-classifier", str(stores["classifier"]),
                      *CLI_TINY)
    assert summary["kind"] == "translator" and summary["domains"] == "packshot->person"
    assert set(summary["final_losses"]) == set(CycleGAN.losses)
    m = summary["measures"]
    assert m["n_test"] == 16 and m["n_test_b2a"] == 16  # both test splits, both directions
    assert 0 < m["cycle_l1_a"] < 2 and 0 < m["cycle_l1_b"] < 2
    assert m["frechet_distance"] >= 0 and m["frechet_distance_b2a"] >= 0
    assert "edit_success" not in m  # packshot|person is no attribute edit
    run = tmp_path / "run"
    for name in ("translation.png", "translator.pt", "translator_b2a.pt",
                 "samples/step_000002.png"):
        assert (run / name).exists()
    # the history pools are checkpointed with the networks: 2 steps of 2 images each way
    modules = load_plain(run / "checkpoint.pt")["modules"]
    assert int(modules["pool_a"]["count"]) == 4 and int(modules["pool_b"]["count"]) == 4
    assert modules["pool_a"]["images"].shape == (50, 3, 32, 32)


def test_munit_cli_translates_with_style_codes_and_measures_diversity(stores, tmp_path,
                                                                        capsys):
    from PIL import Image

    summary = run_cli(capsys, "munit", "--data", str(stores["paired"]), "--out",
                      str(tmp_path / "run"), "--fd-classifier", str(stores["classifier"]),
                      "--mlp-dim", "8", "--n-res", "1", *CLI_TINY)
    assert summary["domains"] == "packshot->person"
    assert set(summary["final_losses"]) == set(MUNIT.losses)
    m = summary["measures"]
    assert m["n_test"] == 16 and m["frechet_distance"] >= 0 and m["diversity"] > 0
    # one row per test input: the input and 6 sampled styles (32 px, 2 px apart)
    assert Image.open(tmp_path / "run" / "translation.png").size == (7 * 34 - 2, 14 + 16 * 34)


def test_bad_domains_are_one_line_errors_before_training(stores, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(capsys, "cyclegan", "--data", str(stores["paired"]), "--out",
                str(tmp_path / "run"), "--domains", "colour:red|blue", *CLI_TINY)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
        "no label column 'colour'; the store has: color, sleeve_length")
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


@pytest.mark.parametrize("family", ["cyclegan", "munit"])
@pytest.mark.parametrize(("domains", "store", "batch", "error"), [
    ("packshot", "paired", 2, "domains must be 'A|B' (packshot|person) or 'column:A|B'"),
    (":red|blue", "paired", 2, "domains must be 'A|B'"),
    ("colour:red|blue", "paired", 2,
     "no label column 'colour'; the store has: color, sleeve_length"),
    ("color:red|purple", "paired", 2,
     "no value 'purple' in label column 'color'; it has: red, green, blue"),
    ("packshot|model", "paired", 2, "no domain 'model' in the store; it has: packshot, person"),
    ("color:red|blue", "paired", 8, "too few training images per domain for batch_size 8 "
                                    r"\(each needs 2 batches, 16\): A color=red: \d+, "
                                    r"B color=blue: \d+"),
    ("packshot|person", "no_test", 2, r"measured on domain A's test split \(2 images at least\), "
                                      "and packshot has 0"),
])
def test_bad_input_is_refused_in_one_line(stores, family, domains, store, batch, error):
    config = {"cyclegan": CycleGANConfig, "munit": MUNITConfig}[family]
    cfg = config(domains=domains, batch_size=batch)
    with pytest.raises(ValueError, match=error) as e:
        prepare(family, cfg, stores[store])
    assert "\n" not in str(e.value)


def test_parse_domains():
    assert parse_domains("packshot|person") == ("store", "packshot", "person")
    assert parse_domains("sleeve_length:short|long") == ("sleeve_length", "short", "long")
    assert parse_domains("length:3-4|knee") == ("length", "3-4", "knee")


# ----- exact resume ---------------------------------------------------------------------------
@pytest.mark.parametrize(("family", "cfg"), [
    ("cyclegan", lambda steps: CycleGANConfig(steps=steps, domains="color:red|blue",
                                              pool_size=2, **TINY)),
    ("munit", lambda steps: MUNITConfig(steps=steps, **MUNIT_TINY))])
def test_resume_is_exact(stores, tmp_path, family, cfg):
    """2 + 2 steps == 4 steps: weights, the history pools (CycleGAN's full after one step, so
    they swap), B draws, flips and styles."""
    train(family, cfg(4), stores["paired"], tmp_path / "straight")
    train(family, cfg(2), stores["paired"], tmp_path / "resumed")
    summary = train(family, cfg(4), stores["paired"], tmp_path / "resumed")
    assert summary["resumed_from"] == 2
    straight, resumed = (load_plain(tmp_path / k / "checkpoint.pt")["modules"]
                         for k in ("straight", "resumed"))
    assert straight.keys() == resumed.keys()
    for name in straight:
        for k in straight[name]:
            torch.testing.assert_close(straight[name][k], resumed[name][k], rtol=0, atol=0)


# ----- one call for two batches ----------------------------------------------------------
@pytest.mark.parametrize("norm", ["instance", "none", "batch"])
def test_stacked_calls_make_the_reference_update(stores, norm):
    """G_A(a) with the identity term's G_A(b), and D(real) with D(pooled), as one call each:
    the same gradients (and batch norms' running statistics) as separate calls, two steps
    running; with batch norm each batch is still normalised on its own."""
    # batch norm over 2 images makes every value ±1: rounding noise in its near-zero bias
    # gradients becomes ±lr in Adam's first step (a 5% weight difference), so 4 images there
    tiny = {**TINY, "batch_size": 4} if norm == "batch" else TINY
    cfg = CycleGANConfig(bf16=False, norm=norm, pool_size=2, **tiny)
    _, data = prepare("cyclegan", cfg, stores["paired"])
    nets = ("G_A", "G_B", "D_A", "D_B")
    ours, reference = (step_gradients(f, cfg, data, 2, nets)
                       for f in (CycleGAN, separate_calls(CycleGAN)))
    model = CycleGAN(cfg, data, torch.device("cpu"))
    model.build()
    every = {f"{k}.{n}" for k in nets for n, _ in model.modules[k].named_parameters()}
    # every parameter has a gradient
    assert all({k for k in step if not k.startswith(BUFFER)} == every for step in ours)
    assert_same_gradients(ours, reference)


def test_stacked_calls_keep_batch_norm_per_batch(stores):
    """Stacked in one call, batch norm still normalises each batch on its own: G_A(a) as
    the separate call gives it, not as a plain call on the stack would."""
    cfg = CycleGANConfig(bf16=False, norm="batch", **TINY)
    _, data = prepare("cyclegan", cfg, stores["paired"])
    torch.manual_seed(0)
    model = CycleGAN(cfg, data, torch.device("cpu"))
    model.build()
    a, b = data.batch(torch.arange(2))
    plain = model.G_A(torch.cat([a, b]))[:2]
    torch.testing.assert_close(model.both(model.G_A, a, b)[0], model.G_A(a), rtol=0, atol=1e-5)
    assert not torch.allclose(plain, model.G_A(a), atol=1e-3)


# ----- compiled for the step -------------------------------------------------------------------
def test_compiled_step_trains_as_the_networks_do(stores, tmp_path):
    """compile: the step calls torch.compile's forwards of the same networks. Three fp32 steps
    give the uncompiled run's losses (inductor sums in other orders: close, not equal), and the
    checkpoint holds the networks' own keys, so it resumes and exports as before. (No identity
    term: fewer shapes to compile, a minute less of the tests on a 2-core CPU.)"""
    def run(compile_: bool) -> tuple[list[dict], dict]:
        out = tmp_path / ("compiled" if compile_ else "eager")
        train("cyclegan", CycleGANConfig(steps=3, bf16=False, compile=compile_,
                                         lambda_identity=0, **TINY), stores["paired"], out)
        rows = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
        return rows, load_plain(out / "checkpoint.pt")["modules"]

    (eager_rows, eager), (compiled_rows, compiled) = run(False), run(True)
    # how the step runs is no option of what is trained: an eager run resumes compiled
    resumed = train("cyclegan", CycleGANConfig(steps=4, bf16=False, compile=True,
                                               lambda_identity=0, **TINY), stores["paired"],
                    tmp_path / "eager")
    assert resumed["resumed_from"] == 3 and resumed["steps"] == 4
    assert len(eager_rows) == len(compiled_rows) == 3
    for e, c in zip(eager_rows, compiled_rows, strict=True):
        assert e.keys() == c.keys()
        for k in CycleGAN.losses:
            assert c[k] == pytest.approx(e[k], rel=1e-3, abs=1e-4), (e["step"], k)
    assert compiled.keys() == eager.keys()
    for name in eager:
        assert compiled[name].keys() == eager[name].keys()  # no "_orig_mod." prefixes
        # Adam moves each weight by up to lr a step whatever its gradient's size, so a weight
        # whose gradient is near 0 may move apart; the network as a whole may not
        flat = [torch.cat([t.flatten().float() for t in m[name].values() if t.is_floating_point()])
                for m in (eager, compiled)]
        assert (flat[1] - flat[0]).norm() <= 1e-2 * flat[0].norm(), name


def test_compile_without_a_compiler_is_refused_before_training(stores, monkeypatch):
    from torch._inductor import config

    monkeypatch.setattr(config.cpp, "cxx", (None, "no-such-c++"))
    with pytest.raises(ValueError, match="compile: torch.compile needs a C\\+\\+ compiler and "
                                         "'no-such-c\\+\\+' was not found") as e:
        prepare("cyclegan", CycleGANConfig(compile=True, **TINY), stores["paired"])
    assert "\n" not in str(e.value)


# ----- what they are measured by --------------------------------------------------------------
def test_cyclegan_between_label_values_is_measured_by_edit_success(stores, tmp_path):
    cfg = CycleGANConfig(steps=1, domains="color:red|blue", fd_classifier=str(
        stores["classifier"]), **TINY)
    summary = train("cyclegan", cfg, stores["paired"], tmp_path / "run")
    assert summary["domains"] == "color=red->color=blue"
    m = summary["measures"]
    for key in ("edit_success", "edit_success_b2a", "preservation", "frechet_distance",
                "frechet_distance_b2a", "cycle_l1_a", "cycle_l1_b"):
        assert key in m
    # edit success: the classifier sees blue in G_A's outputs of the red test packshots
    fam, data = prepare("cyclegan", cfg, stores["paired"])
    model = CycleGAN.restore(cfg, data, tmp_path / "run")
    classifier, values = load_classifier(stores["classifier"])
    inputs = model.evaluation_set()["inputs"]
    assert m["n_test"] == len(inputs) == len(data.test_index()) > 0
    assert m["edit_success"] == pytest.approx(edit_success(
        classifier, translate(model.G_A, inputs), "color", values["color"].index("blue")),
        abs=1e-5)
    tags = model.registry_tags()
    assert tags["main_measure"] == "edit_success" and tags["main_goal"] == "max"
    assert tags["domains"] == "color=red->color=blue" and tags["conditioning"] == "none"
    assert "edit_success_b2a" in tags["measures"].split(",")
    # the paired store's two sides: realism decides
    store_cfg = CycleGANConfig(steps=1, **TINY)
    store_model = CycleGAN(store_cfg, prepare("cyclegan", store_cfg, stores["paired"])[1],
                           torch.device("cpu"))
    assert store_model.registry_tags()["main_measure"] == "frechet_distance"
    assert store_model.registry_tags()["main_goal"] == "min"


def test_munit_outputs_follow_the_style_code(stores):
    cfg = MUNITConfig(**MUNIT_TINY)
    _, data = prepare("munit", cfg, stores["paired"])
    torch.manual_seed(0)
    model = MUNIT(cfg, data, torch.device("cpu"))
    model.build()
    net = model.translator().eval()
    x = data.images_of(data.test_index()[:3])
    s = model.sample_style(3, torch.Generator().manual_seed(0))
    assert s.shape == (3, 8) and net(x, s).shape == x.shape
    assert not torch.allclose(net(x, s), net(x, -s))  # the style changes the output
    assert model.conditioning() == {"conditioning": "style", "cond_dim": "8"}
    ev = model.evaluation_set(5)
    assert ev["styles_per_input"] == 4 and ev["style"](2, None).shape == (2, 8)


# ----- the assets -------------------------------------------------------------------------------
def test_assets_register_the_translators_with_champions(stores, tmp_path):
    """cyclegan's two variants and munit on the tiny store: measured by evaluate_translator
    (CycleGAN's reverse direction and cycle errors from its report), registered with the
    translator tags (the main measure per variant), each model with a champion on the
    translator table."""
    import mlflow
    from dagster import RunConfig, materialize

    from pipelines.assets.training import ASSETS_BY_NAME, asset_config
    from pipelines.assets.translation import TranslatorBoardConfig, translator_leaderboard
    from pipelines.resources import MLflowResource, StorageResource

    store = stores["root"]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    resources = {"storage": StorageResource(root=str(store)),
                 "mlflow": MLflowResource(tracking_uri=uri,
                                          artifact_root=str(tmp_path / "artifacts"))}
    tiny = {"steps": 2, "batch_size": 2, "ngf": 4, "ndf": 4, "eval_samples": 10}
    names = ["cyclegan_packshot_person", "cyclegan_sleeve_short_long", "munit"]
    result = materialize(
        [*(ASSETS_BY_NAME[n] for n in names), translator_leaderboard], resources=resources,
        run_config=RunConfig(ops={
            **{n: asset_config(n, **tiny) for n in names[:2]},
            "munit": asset_config("munit", mlp_dim=8, n_res=1, **tiny),
            "translator_leaderboard": TranslatorBoardConfig()}))
    assert result.success
    client = mlflow.MlflowClient(tracking_uri=uri)
    meta = {}
    for name in names:
        [event] = result.asset_materializations_for_node(name)
        meta[name] = {k: v.value for k, v in event.metadata.items()}
        assert "translation" in meta[name]  # the grid on the asset page
    assert meta["munit"]["metrics"]["diversity"] > 0
    assert meta["munit"]["metrics"]["n_test"] == 10
    report = meta["cyclegan_packshot_person"]["cyclegan_report"]
    assert {"cycle_l1_a", "cycle_l1_b", "frechet_distance_b2a"} <= set(report)
    sleeves = meta["cyclegan_sleeve_short_long"]
    assert 0 <= sleeves["metrics"]["edit_success"] <= 1
    assert "edit_success_b2a" in sleeves["cyclegan_report"]

    versions = {v.tags["variant"]: v for v in
                client.search_model_versions("name='fashion-cyclegan'")}
    cycle, edit = versions["packshot_person"], versions["sleeve_short_long"]
    assert cycle.tags["kind"] == "translator" and cycle.tags["domains"] == "packshot->person"
    assert cycle.tags["conditioning"] == "none"
    assert (cycle.tags["main_measure"], cycle.tags["main_goal"]) == ("frechet_distance", "min")
    assert edit.tags["domains"] == "sleeve_length=short->sleeve_length=long"
    assert (edit.tags["main_measure"], edit.tags["main_goal"]) == ("edit_success", "max")
    metrics = client.get_run(cycle.run_id).data.metrics
    assert {"frechet_distance", "frechet_distance_b2a", "cycle_l1_a", "cycle_l1_b"} <= set(
        metrics)
    assert "edit_success_sleeve_length_long" in client.get_run(edit.run_id).data.metrics
    [munit] = client.search_model_versions("name='fashion-munit'")
    assert munit.tags["conditioning"] == "style" and munit.tags["cond_dim"] == "8"
    assert munit.tags["image_size"] == "32"
    mlflow.set_tracking_uri(uri)
    net = mlflow.pytorch.load_model("models:/fashion-munit@champion")
    assert net(torch.zeros(3, 3, 32, 32), torch.randn(3, 8)).shape == (3, 3, 32, 32)
    [board] = result.asset_materializations_for_node("translator_leaderboard")
    champions = board.metadata["champions"].value
    assert champions["fashion-munit"] == int(munit.version)
    assert champions["fashion-cyclegan"] in (int(cycle.version), int(edit.version))
    table = pd.read_csv(store / "evaluation" / "translators.csv")
    assert {"cycle_l1_a", "frechet_distance_b2a"} <= set(table.columns)  # its extra measures
