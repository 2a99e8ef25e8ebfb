"""What a newcomer sees in the Dagster and MLflow UIs after `make run`.

The terminal run is asked for through a real dagster-webserver's GraphQL API (what the job's
page and the Overview timeline query); descriptions are rendered as the UI renders markdown;
the MLflow experiment and the metric names are read back from a real sqlite store.
"""

import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from markdown_it import MarkdownIt
from PIL import Image

from training.paths import REPO_ROOT

BIN = Path(sys.executable).parent
LOCATION, REPOSITORY = "pipelines.definitions", "__repository__"


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", method="POST",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    assert not body.get("errors"), body["errors"]
    return body["data"]


def wait_loaded(port: int, server: subprocess.Popen, timeout: float = 600) -> list[str]:
    """The names of the webserver's code locations once all have loaded."""
    query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
                 locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"dagster-webserver exited with {server.returncode}"
        try:
            entries = graphql(port, query)["workspaceOrError"]["locationEntries"]
        except OSError:
            time.sleep(1)
            continue
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            for e in entries:
                error = e["locationOrLoadError"]
                assert error["__typename"] != "PythonError", error["message"]
            return [e["name"] for e in entries]
        time.sleep(1)
    raise TimeoutError("the code location did not load")


def make_run_command() -> str:
    """The command `make run` runs, as `make -n` prints it (setup lines skipped)."""
    printed = subprocess.run(["make", "-n", "run"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.splitlines()
    [line] = [line for line in printed if "full_pipeline" in line]
    return line


def test_a_terminal_run_shows_on_its_job_page_and_the_overview_timeline(tmp_path, free_port):
    """`make run`'s command (for catalogue_job, on an empty store) from a terminal, then the
    UI's webserver on the same instance: the run is listed on the job's page (Pipeline.runs,
    filtered by the loaded location's repository) and carries that location as its origin
    (the Overview timeline and the Jobs list group runs by it)."""
    home, store = tmp_path / "dagster_home", tmp_path / "store"
    home.mkdir()
    shutil.copy(REPO_ROOT / "pipelines" / "dagster_home" / "dagster.yaml", home)
    env = {**os.environ, "DAGSTER_HOME": str(home), "FASHION_GAN_STORE": str(store),
           "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow/mlflow.db"}
    command = make_run_command().replace("full_pipeline", "catalogue_job")
    server = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(free_port)], cwd=REPO_ROOT, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        cli = subprocess.run(command, shell=True, cwd=REPO_ROOT, env=env, capture_output=True,
                             text=True, timeout=600)
        assert cli.returncode == 0, cli.stderr[-3000:]
        assert wait_loaded(free_port, server) == [LOCATION]
        selector = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY,
                    "pipelineName": "catalogue_job"}
        job = graphql(free_port, """query($s: PipelineSelector!) { pipelineOrError(params: $s) {
            __typename ... on Pipeline { runs { runId status } } } }""",
                      {"s": selector})["pipelineOrError"]
        assert job["__typename"] == "Pipeline"
        assert [r["status"] for r in job["runs"]] == ["SUCCESS"]
        runs = graphql(free_port, """{ runsOrError { ... on Runs { results { runId jobName
            repositoryOrigin { repositoryLocationName repositoryName } } } } }""")
        [run] = runs["runsOrError"]["results"]
        assert run["runId"] == job["runs"][0]["runId"] and run["jobName"] == "catalogue_job"
        assert run["repositoryOrigin"] == {"repositoryLocationName": LOCATION,
                                           "repositoryName": REPOSITORY}
        assert_picture_shown(free_port, "catalogue", "picture")
    finally:  # the webserver and the code server it started (its own process group)
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def assert_picture_shown(port: int, asset: str, label: str) -> None:
    """The asset's latest `label` entry is markdown short enough for the UI to render in
    place, and its picture is served by the webserver."""
    data = graphql(port, """query($k: AssetKeyInput!) { assetOrError(assetKey: $k) {
        ... on Asset { assetMaterializations(limit: 1) { metadataEntries { label
        ... on MarkdownMetadataEntry { mdStr } } } } } }""", {"k": {"path": [asset]}})
    [event] = data["assetOrError"]["assetMaterializations"]
    entries = {e["label"]: e.get("mdStr") for e in event["metadataEntries"]}
    text = entries[label]
    assert len(text) < 1000 and text.startswith("![")  # rendered in place, no click
    url = text[text.index("(") + 1:-1]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{url}", timeout=60) as response:
        assert response.headers["content-type"] == "image/jpeg"
        Image.open(io.BytesIO(response.read())).verify()
    assert entries["preview"].startswith("![")  # the full picture stays behind the click


@pytest.fixture(scope="module")
def defs():
    from pipelines.definitions import defs

    return defs


def html_in(text: str) -> list[str]:
    """Raw HTML the UI's markdown renderer would swallow (`<shop>` read as a tag)."""
    tokens = MarkdownIt("commonmark").parse(text)
    found = [t.content for t in tokens if t.type == "html_block"]
    for t in tokens:
        found += [c.content for c in t.children or [] if c.type == "html_inline"]
    return found


def test_descriptions_render_as_written(defs):
    graph = defs.resolve_asset_graph()
    texts = {key.to_user_string(): graph.get(key).description or ""
             for key in graph.get_all_asset_keys()}
    texts |= {f"job {job.name}": job.description or "" for job in defs.jobs}
    for name, text in texts.items():
        assert not html_in(text), f"{name}: {html_in(text)} would vanish from {text!r}"
    assert "raw/<shop>/" in texts["raw_products"] and "demo" in texts["raw_products"]
    assert "`<column>_<value>`" in texts["attribute_labels"]
    assert html_in("Lands in raw/<shop>/.")  # what the check catches


def test_light_jobs_run_their_steps_in_one_process(defs):
    from dagster import in_process_executor

    for name in ("catalogue_job", "scrape_job"):
        assert defs.resolve_job_def(name).executor_def is in_process_executor
    assert defs.resolve_job_def("full_pipeline").executor_def is not in_process_executor


def make_mlflow_ui_command() -> list[str]:
    """The server command `make mlflow-ui` runs, as `make -n` prints it."""
    printed = subprocess.run(["make", "-n", "mlflow-ui"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.replace("\\\n", " ").splitlines()
    [line] = [line for line in printed if " ui " in line and "mlflow" in line]
    return [word.strip('"') for word in line.split()]


def wait_page(url: str, server: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"the MLflow UI exited with {server.returncode}"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return response.read().decode()
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer")


def visible_text(html: str) -> str:
    """The words of a rendered page (styles, scripts and tags dropped)."""
    html = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_experiment_opens_as_model_training(tmp_path, free_port):
    """MLflow 3.17 opens a browser that has not chosen yet in its GenAI view (traces, latency,
    no Models link); `make mlflow-ui` serves the UI so a fresh browser lands in Model training.
    The page is rendered by headless Chromium in a new profile, as a newcomer's browser."""
    from training.tracking import EXPERIMENT, mlflow_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with mlflow_run("first-run", uri, str(tmp_path / "artifacts")):
        pass
    import mlflow

    experiment = mlflow.MlflowClient(uri).get_experiment_by_name(EXPERIMENT)
    command = make_mlflow_ui_command()
    assert "--app-name" in command and "fashion-gan" in command
    for option, value in (("--backend-store-uri", uri), ("-p", str(free_port))):
        command[command.index(option) + 1] = value
    command[command.index("--default-artifact-root") + 1] = str(tmp_path / "artifacts")
    server = subprocess.Popen([*command, "--workers", "1"], cwd=REPO_ROOT,
                              start_new_session=True, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        root = f"http://127.0.0.1:{free_port}/"
        assert "mlflow.workflowType_v1" in wait_page(root, server)
        browser = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser is None:
            pytest.skip("no Chromium here to render the page (the served index is checked)")
        page = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
             "--dump-dom", f"{root}#/experiments/{experiment.experiment_id}"],
            capture_output=True, text=True, timeout=180).stdout
        text = visible_text(page)
        # the Model training sidebar and runs table, not GenAI's Overview of traces
        for seen in ("Model registry", "Models", "first-run"):
            assert seen in text, f"{seen!r} not on the page: {text[:600]}"
        for unseen in ("Observability", "Evaluation runs", "Latency"):
            assert unseen not in text, f"{unseen!r} on the page: {text[:600]}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_one_definition_per_metric_name(tmp_path, colour_store):
    """dcgan_symmetric's figures on its asset page, in its MLflow run and on the leaderboard
    (its table and its MLflow run): one name, one computation on the same samples and seed,
    so one value; the family's own report adds only names of its own. Trained with seed 3:
    the evaluation seed is not the training seed."""
    import mlflow
    import pandas as pd
    from dagster import DagsterInstance, RunConfig, materialize

    from pipelines.assets.training import (
        ASSETS_BY_NAME,
        ClassifierConfig,
        LeaderboardConfig,
        asset_config,
        attribute_classifier,
        gan_leaderboard,
    )
    from pipelines.resources import MLflowResource, StorageResource
    from training.leaderboard import METRICS

    store = tmp_path / "store"
    (store / "datasets").mkdir(parents=True)
    shutil.copy(colour_store, store / "datasets" / "packshots.h5")
    uri = f"sqlite:///{store}/mlflow/mlflow.db"
    result = materialize(
        [attribute_classifier, ASSETS_BY_NAME["dcgan_symmetric"], gan_leaderboard],
        resources={"storage": StorageResource(root=str(store)),
                   "mlflow": MLflowResource(tracking_uri=uri,
                                            artifact_root=str(store / "mlflow" / "artifacts"))},
        instance=DagsterInstance.ephemeral(),
        run_config=RunConfig(ops={
            "attribute_classifier": ClassifierConfig(steps=3, width=8),
            "dcgan_symmetric": asset_config("dcgan_symmetric", steps=2, batch_size=4, ngf=8,
                                            ndf=8, repair_steps=3, eval_samples=60, seed=3),
            "gan_leaderboard": LeaderboardConfig(samples=60)}))
    assert result.success

    def metadata(asset: str) -> dict:
        [event] = result.asset_materializations_for_node(asset)
        return {k: v.value for k, v in event.metadata.items()}

    asset, board = metadata("dcgan_symmetric"), metadata("gan_leaderboard")
    shown, report = asset["metrics"], asset["dcgan_report"]
    assert {"frechet_distance", "symmetry_error_generated", "symmetry_error_real"} <= set(shown)
    assert not set(report) & set(METRICS), "the family report reuses a shared metric's name"
    client = mlflow.MlflowClient(uri)
    logged = client.get_run(asset["mlflow_run_id"]).data.metrics
    [row] = pd.read_csv(store / "evaluation" / "leaderboard.csv").to_dict("records")
    version = row["version"]
    board_logged = client.get_run(board["mlflow_run_id"]).data.metrics
    for name, value in shown.items():
        assert logged[name] == value, name
        # the leaderboard samples the registered (exported) generator: float rounding only
        assert row[name] == pytest.approx(value, rel=1e-3, abs=1e-4), name
        assert board_logged[f"fashion-dcgan/v{version}/{name}"] == pytest.approx(row[name])
    assert board_logged["fashion-dcgan/champion_version"] == version
    assert "symmetry_error_real" not in report and "symmetry_error_generated" not in report
