"""Which executor runs the jobs, chosen by configuration, not code.

FASHION_GAN_EXECUTOR unset (or `multiprocess`): today's executors, a process per step (forked
from a server that imported the code once) with training steps one at a time, and the light
jobs (crawl, catalogue) in the run's own process.
FASHION_GAN_EXECUTOR=dask: dagster-dask's executor for every job, on the scheduler at
DASK_SCHEDULER_ADDRESS (tcp://host:port), else on a local cluster of one worker that holds the
accelerator. Its config is dagster-dask's own, so a run's `execution: config: cluster: ...`
(existing, local, ssh, pbs, slurm, kube, ...) overrides the default (README, "Running on a Dask
cluster").

`python -m pipelines.executors` (make run-dask) starts a local cluster of CPU workers and one
accelerator worker, prints its dashboard link and runs full_pipeline on it.
"""

import argparse
import os
from collections.abc import Mapping, Sequence

from dagster import (
    ExecutorDefinition,
    Field,
    in_process_executor,
    multiple_process_executor_requirements,
    multiprocess_executor,
)

from pipelines.assets.pools import ACCELERATOR, TRAINING_TAG

EXECUTOR_ENV = "FASHION_GAN_EXECUTOR"
ADDRESS_ENV = "DASK_SCHEDULER_ADDRESS"
CHOICES = ("multiprocess", "dask")
CODE_LOCATION = "pipelines.definitions"  # the module workspace.yaml loads

# Steps run in parallel except training steps, which take the machine's accelerator (or all of
# its cores) one at a time. Each step's process is forked from a server that imported the code
# location (torch, torchvision, mlflow, the assets) once, instead of spawned to import it again:
# on 2 cores that import takes 12-19 s, which every step paid (benchmarks/README.md, "make run").
# The server is Python's multiprocessing forkserver: started by a process's first run, it keeps
# that process's environment (FASHION_GAN_STORE, ...) for the process's later runs. Every run
# launched by `make run`, pipelines.launch, the UI or the daemon has a process of its own; a
# process that executes several runs over different stores (a notebook calling execute_job)
# should use in_process_executor or set the environment before its first run.
multiprocess = multiprocess_executor.configured({
    # named: without preload_modules, dagster 1.13.27 preloads nothing but its executor (its
    # config reads a missing list as an empty one, not as "the job's module")
    "start_method": {"forkserver": {"preload_modules": [CODE_LOCATION]}},
    "tag_concurrency_limits": [
        {"key": "fashion-gan/device", "value": TRAINING_TAG["fashion-gan/device"], "limit": 1}]})
# LocalCluster's arguments when no scheduler is named: one worker, holding the accelerator, so
# training steps take it in turn as they do under the multiprocess executor (LocalCluster gives
# every worker the same resources; make run-dask starts CPU workers beside it instead).
LOCAL_CLUSTER = {"n_workers": 1, "resources": {ACCELERATOR: 1}}


def dask_executor_def(address: str | None = None) -> ExecutorDefinition:
    """dagster-dask's executor with its own config schema, the cluster defaulting to the
    existing scheduler at `address`, else a local cluster (LOCAL_CLUSTER)."""
    from dagster_dask import dask_executor

    cluster = dask_executor.config_schema.as_field().config_type.fields["cluster"]
    default = {"existing": {"address": address}} if address else {"local": LOCAL_CLUSTER}
    return ExecutorDefinition(
        name=dask_executor.name,
        config_schema={"cluster": Field(cluster.config_type, default_value=default,
                                        description=cluster.description)},
        requirements=multiple_process_executor_requirements(),
        executor_creation_fn=_create_dask_executor,
        description=f"dagster-dask, default cluster {default}")


def _create_dask_executor(init_context):
    """What dagster-dask's executor definition builds, as PoolSafeDaskExecutor."""
    ((cluster_type, cluster_configuration),) = init_context.executor_config["cluster"].items()
    return pool_safe_dask_executor_class()(cluster_type, cluster_configuration)


def pool_safe_dask_executor_class():
    """dagster-dask's DaskExecutor, handing Dask a copy of the run without its op-concurrency
    summary. dagster-dask 0.29.27 submits the run (a NamedTuple) as a task argument and
    distributed 2026.8 walks tuples for futures, which that summary (a `@record`, present on
    every run with a pool step: all training steps) refuses: "Iteration is not allowed on
    `@record` RunOpConcurrency". The summary only queues runs; steps never read it."""
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster_dask.executor import DaskExecutor
    from dagster_shared.record import copy

    class PoolSafeDaskExecutor(DaskExecutor):
        def execute(self, plan_context, execution_plan):
            run = plan_context.dagster_run
            if run.run_op_concurrency is not None:
                plan_context = PlanOrchestrationContext(
                    plan_context.plan_data._replace(
                        dagster_run=copy(run, run_op_concurrency=None)),
                    plan_context.log, plan_context.executor, plan_context.output_capture,
                    plan_context.resume_from_failure)
            return super().execute(plan_context, execution_plan)

    return PoolSafeDaskExecutor


def choose_executors(environ: Mapping[str, str] | None = None
                     ) -> tuple[ExecutorDefinition, ExecutorDefinition]:
    """(the jobs' executor, the light jobs' executor) from FASHION_GAN_EXECUTOR. Under Dask both
    are the Dask executor: a worker imports the code once and keeps it, so a step there costs
    no re-import, the reason the light jobs run in-process otherwise."""
    environ = os.environ if environ is None else environ
    choice = (environ.get(EXECUTOR_ENV) or "multiprocess").strip().lower()
    if choice not in CHOICES:
        raise ValueError(f"{EXECUTOR_ENV}={environ[EXECUTOR_ENV]!r}: expected one of "
                         f"{', '.join(CHOICES)}")
    if choice == "dask":
        dask = dask_executor_def(environ.get(ADDRESS_ENV) or None)
        return dask, dask
    return multiprocess, in_process_executor


def start_local_cluster(cpu_workers: int = 1, dashboard_port: int = 8787):
    """A cluster on 127.0.0.1: `cpu_workers` CPU-only workers and one accelerator worker, a
    thread each (Dagster steps are not thread-safe). Workers inherit this process's
    environment, FASHION_GAN_STORE and FASHION_GAN_EXECUTOR included."""
    from distributed import Nanny, Scheduler, SpecCluster

    def worker(**options) -> dict:
        return {"cls": Nanny, "options": {"nthreads": 1, "host": "127.0.0.1", **options}}

    workers = {f"cpu-{i}": worker() for i in range(cpu_workers)}
    workers[ACCELERATOR] = worker(resources={ACCELERATOR: 1})
    return SpecCluster(workers=workers, scheduler={"cls": Scheduler, "options": {
        "host": "127.0.0.1", "dashboard_address": f"127.0.0.1:{dashboard_port}"}})


def main(argv: Sequence[str] | None = None) -> int:
    """Start the local cluster, then `python -m pipelines.launch` with the other arguments
    (default `-j full_pipeline`) on it."""
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.executors",
        description="Run a job on a local Dask cluster; other arguments go to pipelines.launch.")
    parser.add_argument("--cpu-workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--dashboard-port", type=int, default=8787)
    args, rest = parser.parse_known_args(argv)
    if not {"-j", "--job"} & set(rest):
        rest = ["-j", "full_pipeline", *rest]
    os.environ[EXECUTOR_ENV] = "dask"  # before the workers start: they inherit it
    with start_local_cluster(args.cpu_workers, args.dashboard_port) as cluster:
        os.environ[ADDRESS_ENV] = cluster.scheduler_address
        print(f"Dask dashboard: {cluster.dashboard_link} (scheduler "
              f"{cluster.scheduler_address}: {args.cpu_workers} CPU worker(s) and one "
              f"accelerator worker)", flush=True)
        from pipelines.launch import main as launch_main

        return launch_main(rest)


if __name__ == "__main__":
    raise SystemExit(main())
