"""A training step killed mid-run, then the run re-executed from failure (what the UI's
"Re-execute from failure" does, here through `python -m pipelines.launch --from-failure`'s
function): the new run continues in the killed run's folder from its last checkpoint, ends at
the configured step count, registers the model and marks the killed attempt's MLflow run
KILLED. A real sqlite Dagster instance, the project's multiprocess executor (the step in its
own process, SIGKILLed by the pid its STEP_START event records), a real MLflow store; nothing
mocked."""

import json
import multiprocessing.forkserver
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    ExecutorDefinition,
    JobDefinition,
    ReexecutionOptions,
    RunConfig,
    define_asset_job,
    execute_job,
    in_process_executor,
)
from dagster._core.definitions.reconstruct import ReconstructableJob

from pipelines.assets.training import ASSETS_BY_NAME, asset_config
from pipelines.executors import multiprocess
from pipelines.launch import reexecute_from_failure
from pipelines.resources import MLflowResource, StorageResource
from training.checkpoint import load_plain
from training.loop import keep_rows_before

ASSET = "dcgan_baseline"
STEPS = 40  # ~0.15 s a step on a busy 2-core box: several seconds to kill it in
TINY = dict(steps=STEPS, batch_size=8, ngf=8, ndf=8, nz=16, log_every=1, checkpoint_every=5,
            sample_every=STEPS, repair_steps=3, eval_samples=20)


def build_job(executor: ExecutorDefinition) -> JobDefinition:
    """The asset alone. The resources follow FASHION_GAN_STORE, so a step process, which
    rebuilds the job, writes to the test's store."""
    job = define_asset_job("kill_resume_job", selection=[ASSET], executor_def=executor)
    return Definitions(assets=[ASSETS_BY_NAME[ASSET]], jobs=[job],
                       resources={"storage": StorageResource(), "mlflow": MLflowResource()},
                       ).resolve_job_def("kill_resume_job")


def training_job() -> JobDefinition:
    """Under the project's multiprocess executor: the step in a process of its own."""
    return build_job(multiprocess)


def training_job_here() -> JobDefinition:
    """The same job run in the test's process: the re-executions that only check which folder
    a run picks, without paying for another step process."""
    return build_job(in_process_executor)


def by_file(job_fn) -> ReconstructableJob:
    """The job as its step processes rebuild it: by this file's path, not by module name (a
    step process does not have tests/ on its import path)."""
    return ReconstructableJob.for_file(__file__, job_fn.__name__)


@pytest.fixture
def fresh_forkserver():
    """The project's executor forks step processes from Python's forkserver, which keeps the
    environment of the moment it started: stop any server an earlier test started, so this
    test's FASHION_GAN_STORE reaches the steps, and stop this test's after it."""
    multiprocessing.forkserver._forkserver._stop()  # the stdlib's own tests use it so
    yield
    multiprocessing.forkserver._forkserver._stop()


def run_config(**changes) -> dict:
    return RunConfig(ops={ASSET: asset_config(ASSET, **{**TINY, **changes})}).to_config_dict()


def reexecute(job_fn, instance: DagsterInstance, options: ReexecutionOptions,
              config: dict | None = None) -> tuple[str, dict]:
    """(run id, the asset's metadata) of a successful re-execution."""
    with execute_job(by_file(job_fn), instance, run_config=config,
                     reexecution_options=options) as result:
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run.parent_run_id == options.parent_run_id
        [event] = result.asset_materializations_for_node(ASSET)
        return result.run_id, {k: v.value for k, v in event.metadata.items()}


def test_resume_drops_the_rows_a_killed_run_wrote_past_its_checkpoint(tmp_path):
    history = tmp_path / "losses.jsonl"
    history.write_text("".join(json.dumps({"step": s, "d": 0.5}) + "\n" for s in range(7))
                       + '{"step": 7, "d"')  # the kill cut the last line short
    keep_rows_before(history, 5)
    assert [json.loads(line)["step"] for line in history.read_text().splitlines()] == [
        0, 1, 2, 3, 4]
    keep_rows_before(history, 0)  # killed before its first checkpoint: all rows are redone
    assert history.read_text() == ""


def step_pid(instance: DagsterInstance, run_id: str) -> int:
    """The pid of the process running the training step (its STEP_START event's)."""
    [event] = instance.all_logs(run_id, of_type=DagsterEventType.STEP_START)
    return event.dagster_event.pid


def failures(instance: DagsterInstance) -> list[str]:
    """What went wrong in the instance's runs (for an assertion's message)."""
    return [str(e.dagster_event.event_specific_data) for run in instance.get_runs()
            for e in instance.all_logs(run.run_id) if e.dagster_event and
            e.dagster_event.event_type in (DagsterEventType.STEP_FAILURE,
                                           DagsterEventType.RUN_FAILURE)]


def test_a_killed_training_step_resumes_from_its_checkpoint_on_reexecution(
        tmp_path, colour_store, monkeypatch, fresh_forkserver):
    import mlflow

    from training.classifier import save_classifier, train_classifier

    store = tmp_path / "store"
    (store / "datasets").mkdir(parents=True)
    shutil.copy(colour_store, store / "datasets" / "packshots.h5")
    # the metrics' feature space (the registry has no classifier yet)
    save_classifier(train_classifier(colour_store, steps=2, batch_size=8, width=8),
                    store / "models" / "attribute_classifier.pt", 8)
    monkeypatch.setenv("FASHION_GAN_STORE", str(store))  # the step processes inherit it
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    job, config = by_file(training_job), run_config()
    t0 = time.monotonic()
    (tmp_path / "dagster_home").mkdir()
    with DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        first: dict = {}

        def launch() -> None:  # the run's orchestration, as a run worker would do it
            try:
                first["result"] = execute_job(job, instance, run_config=config)
            except BaseException as e:  # noqa: BLE001 -- reported by the assertion below
                first["error"] = e

        thread = threading.Thread(target=launch)
        thread.start()
        try:
            while not (checkpoints := list((store / "runs" / ASSET).glob("*/checkpoint.pt"))):
                assert thread.is_alive() and time.monotonic() - t0 < 180, \
                    f"no checkpoint before the run ended or stalled: {first.get('error')!r} " \
                    f"{failures(instance)}"
                time.sleep(0.05)
            [run] = instance.get_runs()
            pid = step_pid(instance, run.run_id)
            assert pid != os.getpid()  # the step's own process, not the orchestrator
            os.kill(pid, signal.SIGKILL)
        finally:
            thread.join(300)
        killed = first["result"]
        assert not killed.success
        assert instance.get_run_by_id(killed.run_id).status == DagsterRunStatus.FAILURE
        [ckpt] = checkpoints
        run_dir = ckpt.parent
        killed_at = int(load_plain(ckpt, "checkpoint")["step"])
        assert 0 < killed_at < STEPS  # killed mid-training, after a checkpoint
        print(f"killed at step {killed_at} after {time.monotonic() - t0:.1f} s")

        # the killed run's own config, as the UI's "Re-execute from failure" takes it
        result = reexecute_from_failure(killed.run_id, instance=instance,
                                        recon_job=by_file(training_job))
        assert result.success, failures(instance)
        rerun = result.run_id
        run = instance.get_run_by_id(rerun)
        assert (run.parent_run_id, run.root_run_id) == (killed.run_id, killed.run_id)
        assert run.tags["dagster/is_resume_retry"] == "true"
        [event] = result.asset_materializations_for_node(ASSET)
        meta = {k: v.value for k, v in event.metadata.items()}
        logged = [e.user_message for e in instance.all_logs(rerun)]
        print(f"re-executed after {time.monotonic() - t0:.1f} s")

        # a re-execution of the run that succeeded trains afresh, in its own folder
        again, again_meta = reexecute(training_job_here, instance,
                                      ReexecutionOptions(parent_run_id=rerun), run_config(steps=3))
        # so does one of the killed run with other options: its checkpoint would refuse them
        changed, changed_meta = reexecute(training_job_here, instance,
                                          ReexecutionOptions(parent_run_id=killed.run_id),
                                          run_config(steps=3, lr=1e-3))
        print(f"two more re-executions after {time.monotonic() - t0:.1f} s")

    # resumed in the killed run's folder from its checkpoint, not from step 0
    assert meta["run_dir"] == str(run_dir)
    assert meta["resumed_from"] == killed_at and meta["steps"] == STEPS
    assert int(load_plain(ckpt, "checkpoint")["step"]) == STEPS
    rows = [json.loads(line) for line in (run_dir / "losses.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(STEPS))  # each step once, none cut short

    uri = f"sqlite:///{store}/mlflow/mlflow.db"
    client = mlflow.MlflowClient(uri)
    version = client.get_model_version("fashion-dcgan", "1")
    version_run = client.get_run(version.run_id)
    assert meta["model"] == "fashion-dcgan version 1"
    assert version.run_id == meta["mlflow_run_id"]
    assert version.tags["dagster_run_id"] == rerun
    # the re-execution's MLflow run logged the steps it trained, from the checkpoint on
    metric = next(k for k in rows[-1] if k != "step")
    history = client.get_metric_history(version.run_id, metric)
    assert [m.step for m in history] == list(range(killed_at, STEPS))
    assert Path(meta["run_dir"]).name == killed.run_id[:8]
    # the killed attempt's MLflow run, left RUNNING by its dead process, is KILLED now
    [attempt] = client.search_runs([version_run.info.experiment_id],
                                   f"tags.dagster_run_id = '{killed.run_id}'")
    assert attempt.info.status == "KILLED" and attempt.info.end_time
    assert any(attempt.info.run_id in m and "KILLED" in m for m in logged)

    for run_id, fresh in ((again, again_meta), (changed, changed_meta)):
        assert fresh["run_dir"] == str(run_dir.parent / run_id[:8])
        assert fresh["resumed_from"] == 0 and fresh["steps"] == 3
    assert (again_meta["model"], changed_meta["model"]) == (
        "fashion-dcgan version 2", "fashion-dcgan version 3")
