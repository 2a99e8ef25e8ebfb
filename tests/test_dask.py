"""The graph on a real Dask cluster: `dask scheduler` and two `dask worker` processes on
127.0.0.1, one holding the accelerator resource; catalogue_job (pipelines.launch) and one
training asset (`dagster asset materialize`) launched from terminals with FASHION_GAN_EXECUTOR=dask
and DASK_SCHEDULER_ADDRESS, as the README says. Every step runs in a worker process, the training
step on the accelerator worker, and the files equal an in-process run's on a copy of the store."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from crawl_fixtures import free_port, write_crawl
from dagster import DagsterEventType, DagsterInstance, RunConfig, materialize

from pipelines.assets.catalogue import (
    CatalogueConfig,
    attribute_labels,
    catalogue,
    dataset_splits,
    packshot_store,
)
from pipelines.assets.training import ClassifierConfig, attribute_classifier
from pipelines.executors import ADDRESS_ENV, EXECUTOR_ENV, choose_executors
from pipelines.resources import MLflowResource, StorageResource
from training.paths import REPO_ROOT

BIN = Path(sys.executable).parent
CATALOGUE = {"ops": {"catalogue": {"config": {"image_size": 64, "workers": 1}}}}
TRAINING = {"ops": {"attribute_classifier": {"config": {"steps": 3, "width": 8}}}}


def start(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=REPO_ROOT, env=env, start_new_session=True,
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def stop(proc: subprocess.Popen) -> None:
    """End a process this test started, and its own process group (a worker's nanny child)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)  # a worker's graceful stop takes 15 s on a busy box: nothing to keep
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two single-thread workers on loopback, with the environment a cluster's
    workers need (README): the store root and the executor choice."""
    from distributed import Client

    tmp = tmp_path_factory.mktemp("dask")
    store = tmp / "store"
    write_crawl(store)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"FASHION_GAN_STORE": str(store), EXECUTOR_ENV: "dask",
            "DAGSTER_HOME": str(tmp / "dagster_home"), "OMP_NUM_THREADS": "1"}
    (tmp / "dagster_home").mkdir()
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [start([str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port),
                    "--no-dashboard"], env, tmp / "scheduler.log")]
    try:
        for name, extra in (("cpu", []), ("accelerator", ["--resources", "accelerator=1"])):
            procs.append(start([str(BIN / "dask"), "worker", address, "--name", name,
                                "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                                "--preload", "pipelines.definitions", *extra],
                               env, tmp / f"worker-{name}.log"))
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            workers = client.scheduler_info()["workers"]
            pids = client.run(os.getpid)  # the worker processes (not their nannies)
            by_name = {w["name"]: pids[addr] for addr, w in workers.items()}
            resources = {w["name"]: w["resources"] for w in workers.values()}
        yield {"tmp": tmp, "store": store, "env": {**env, ADDRESS_ENV: address},
               "pids": by_name, "resources": resources}
    finally:
        for proc in reversed(procs):
            stop(proc)


def launched(cluster, command: list[str], config: dict) -> tuple[int, dict[str, int]]:
    """Run a launcher from a terminal against the cluster; (its pid, {step: pid of the process
    that ran it}) read from the STEP_START events of the run it wrote (the newest)."""
    path = cluster["tmp"] / "run.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    proc = subprocess.Popen([*command, "-c", str(path)], cwd=REPO_ROOT, env=cluster["env"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.monotonic()
    out, _ = proc.communicate(timeout=600)
    print(f"{command[2:5]}: {time.monotonic() - t0:.1f} s")
    assert proc.returncode == 0, out[-4000:]
    with DagsterInstance.from_config(cluster["env"]["DAGSTER_HOME"]) as instance:
        run = instance.get_runs(limit=1)[0]
        assert run.is_success
        steps = {e.step_key: e.dagster_event.pid for e in instance.all_logs(
            run.run_id, of_type=DagsterEventType.STEP_START)}
    return proc.pid, steps


def reference_run(store: Path, tracking: Path):
    """catalogue_job's assets and attribute_classifier in this process (in-process executor),
    logged to the MLflow store under `tracking` (the cluster's: its tables exist already)."""
    return materialize(
        [catalogue, attribute_labels, dataset_splits, packshot_store, attribute_classifier],
        instance=DagsterInstance.ephemeral(),
        resources={"storage": StorageResource(root=str(store)),
                   "mlflow": MLflowResource(tracking_uri=f"sqlite:///{tracking}/mlflow.db",
                                            artifact_root=str(tracking / "artifacts"))},
        run_config=RunConfig(ops={"catalogue": CatalogueConfig(image_size=64, workers=1),
                                  "attribute_classifier": ClassifierConfig(steps=3, width=8)}))


def test_env_chooses_the_executor_and_the_dask_config_is_dagster_dasks():
    heavy, light = choose_executors({})
    assert heavy.name == "multiprocess" and light.name == "in_process"
    heavy, light = choose_executors({EXECUTOR_ENV: "dask", ADDRESS_ENV: "tcp://10.0.0.5:8786"})
    assert heavy is light and heavy.name == "dask"
    assert heavy.config_schema.as_field().default_value == {
        "cluster": {"existing": {"address": "tcp://10.0.0.5:8786"}}}
    local = choose_executors({EXECUTOR_ENV: "dask"})[0].config_schema.as_field().default_value
    assert local["cluster"]["local"]["resources"] == {"accelerator": 1}
    with pytest.raises(ValueError, match="FASHION_GAN_EXECUTOR='ray'"):
        choose_executors({EXECUTOR_ENV: "ray"})


def test_steps_run_on_the_workers_and_training_on_the_accelerator(cluster):
    started = time.monotonic()
    assert cluster["resources"] == {"cpu": {}, "accelerator": {"accelerator": 1}}
    workers = set(cluster["pids"].values())
    launcher, steps = launched(cluster, [str(BIN / "python"), "-m", "pipelines.launch", "-j",
                                         "catalogue_job"], CATALOGUE)
    assert set(steps) >= {"catalogue", "attribute_labels", "dataset_splits", "packshot_store"}
    assert set(steps.values()) <= workers and launcher not in steps.values()
    assert os.getpid() not in steps.values()
    launcher, steps = launched(cluster, [str(BIN / "dagster"), "asset", "materialize", "-m",
                                         "pipelines.definitions", "--select",
                                         "attribute_classifier"], TRAINING)
    assert steps == {"attribute_classifier": cluster["pids"]["accelerator"]}
    assert launcher != cluster["pids"]["accelerator"]
    print(f"cluster runs: {time.monotonic() - started:.1f} s")
    # no MLFLOW_TRACKING_URI on the workers: their MLflowResource followed FASHION_GAN_STORE
    import mlflow

    store = cluster["store"]
    client = mlflow.MlflowClient(f"sqlite:///{store}/mlflow/mlflow.db")
    [run] = client.search_runs([client.get_experiment_by_name("fashion-gan").experiment_id])
    assert run.info.run_name == "attribute-classifier"

    # the same assets in this process on a copy of the crawl: the same files
    here = cluster["tmp"] / "reference"
    shutil.copytree(store / "raw", here / "raw")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in a Dask worker (its nanny sets OMP_NUM_THREADS=1)
    try:
        assert reference_run(here, store / "mlflow").success
    finally:
        torch.set_num_threads(threads)
    print(f"reference: {time.monotonic() - started:.1f} s")
    for name in ("catalogue.parquet", "img_attr.parquet", "splits.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(store / "catalogue" / name),
                                      pd.read_parquet(here / "catalogue" / name))
    images = sorted(p.relative_to(store) for p in (store / "catalogue" / "images").rglob("*.jpg"))
    assert len(images) == 18
    for path in images:
        assert (store / path).read_bytes() == (here / path).read_bytes(), path
    with h5py.File(store / "datasets" / "packshots.h5") as a, \
            h5py.File(here / "datasets" / "packshots.h5") as b:
        assert set(a) == set(b)
        for key in a:
            np.testing.assert_array_equal(a[key][()], b[key][()], err_msg=key)
    dask_model = torch.load(store / "models" / "attribute_classifier.pt", weights_only=False)
    here_model = torch.load(here / "models" / "attribute_classifier.pt", weights_only=False)
    assert_same(dask_model, here_model)


def assert_same(a, b, where: str = "") -> None:
    """Nested checkpoints equal: tensors exactly, the rest by ==."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where
