"""Run a job from the terminal so the Dagster UI counts it as that job's run.

`dagster job execute -m pipelines.definitions` records a run with no code-location origin, and
the UI lists a job's runs (job page, Jobs list, Overview timeline) by that origin: such a run
shows under Runs and in the catalog only. This runs the job the same way (same instance, job
executor, logs and tags) with the origin of the code location `workspace.yaml` names, the one
`make ui` loads, so a terminal run and a UI launch look alike.

    python -m pipelines.launch -j full_pipeline
    python -m pipelines.launch -j scrape_job --partition zalando -c run.yaml
    python -m pipelines.launch --from-failure RUN_ID

`--from-failure` re-executes a failed run as the UI's Re-execute → From failure does (Dagster
1.13's CLI has none): the steps that failed or did not run, with the parent's config and tags,
the new run linked to its parent; a killed training step resumes from its checkpoint.
"""

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from training.paths import REPO_ROOT

WORKSPACE = REPO_ROOT / "workspace.yaml"


def location_origin(workspace: Path = WORKSPACE):
    """The code location workspace.yaml defines (the project has exactly one)."""
    from dagster._core.workspace.load import location_origins_from_yaml_paths

    origins = location_origins_from_yaml_paths([str(workspace)])
    if len(origins) != 1:
        raise SystemExit(f"{workspace}: expected one code location, found {len(origins)}")
    return origins[0]


def merge(base: dict, extra: Mapping) -> dict:
    """Run config files merged in order, nested keys combined (as `dagster -c a -c b` does)."""
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, Mapping) and \
            isinstance(out.get(key), Mapping) else value
    return out


def location_job(job_name: str, workspace: Path = WORKSPACE):
    """(reconstructable job, its remote origin) of `job_name` in workspace.yaml's code location:
    what a run needs to be listed under the job in the UI."""
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin

    origin = location_origin(workspace)
    target = origin.loadable_target_origin
    recon_repo = ReconstructableRepository.for_module(
        target.module_name, target.attribute or "defs", target.working_directory or str(REPO_ROOT))
    repo_def = recon_repo.get_definition()
    if job_name not in repo_def.job_names:
        raise SystemExit(f"no job {job_name!r}; jobs: {', '.join(sorted(repo_def.job_names))}")
    recon_job = recon_repo.get_reconstructable_job(job_name)
    recon_job = recon_job.with_repository_load_data(repo_def.repository_load_data)
    return recon_job, RemoteJobOrigin(RemoteRepositoryOrigin(origin, repo_def.name), job_name)


def launch(job_name: str, run_config: Mapping | None = None, tags: Mapping | None = None,
           partition: str | None = None, workspace: Path = WORKSPACE, instance=None):
    """Execute `job_name` of workspace.yaml's code location synchronously in `instance`
    (default: DAGSTER_HOME's) and return the result; the run carries the location's origin."""
    from dagster import DagsterInstance
    from dagster._core.execution.api import execute_run

    recon_job, remote = location_job(job_name, workspace)
    job_def = recon_job.get_definition()
    run_tags = {**job_def.run_tags, **(tags or {})}
    if partition is not None:
        keys = job_def.partitions_def.get_partition_keys() if job_def.partitions_def else []
        if partition not in keys:
            raise SystemExit(f"--partition {partition!r}: {job_name} takes one of "
                             f"{', '.join(keys) or 'none'}")
        run_tags.update(job_def.get_tags_for_partition_key(partition, selected_asset_keys=None))
    instance = instance or DagsterInstance.get()
    run = instance.create_run_for_job(
        job_def=job_def, run_config=run_config or {}, tags=run_tags,
        remote_job_origin=remote, job_code_origin=recon_job.get_python_origin(),
        repository_load_data=recon_job.repository.repository_load_data)
    return execute_run(recon_job, run, instance)


def reexecute_from_failure(run_id: str, workspace: Path = WORKSPACE, instance=None,
                           tags: Mapping | None = None, recon_job=None, remote_job_origin=None):
    """Re-execute the failed (or canceled) run `run_id` from failure, synchronously, and return
    the result: as the UI's Re-execute → From failure, the steps that failed or never ran, with
    the parent's run config and tags (plus `tags`), linked to its parent and root. The job is
    the parent's job of workspace.yaml's code location (recon_job and remote_job_origin replace
    it, e.g. a test's job by file)."""
    from dagster import DagsterInstance
    from dagster._core.errors import DagsterInvariantViolationError
    from dagster._core.execution.api import create_execution_plan, execute_run
    from dagster._core.execution.plan.state import KnownExecutionState
    from dagster._core.storage.tags import (
        PARENT_RUN_ID_TAG,
        RESUME_RETRY_TAG,
        ROOT_RUN_ID_TAG,
        TAGS_TO_MAYBE_OMIT_ON_RETRY,
    )

    instance = instance or DagsterInstance.get()
    parent = instance.get_run_by_id(run_id)
    if parent is None:
        raise SystemExit(f"no run {run_id!r} in the instance at {instance.root_directory}")
    if recon_job is None:
        recon_job, remote_job_origin = location_job(parent.job_name, workspace)
    load_data = recon_job.repository.get_definition().repository_load_data
    recon_job = recon_job.with_repository_load_data(load_data)
    try:
        step_keys, known_state = KnownExecutionState.build_resume_retry_reexecution(
            instance, parent_run=parent)
    except DagsterInvariantViolationError as e:  # not failed (yet): still running, succeeded
        raise SystemExit(f"run {run_id}: {e}") from e
    if not step_keys:
        raise SystemExit(f"run {run_id}: no step needs re-executing")
    # as dagster's own re-execution (execution/api.py _reexecute_job): plan, then subset
    plan = create_execution_plan(recon_job, parent.run_config, step_keys_to_execute=step_keys,
                                 known_state=known_state, tags=parent.tags)
    if parent.asset_selection:
        recon_job = recon_job.get_subset(asset_selection=parent.asset_selection)
    job_def = recon_job.get_definition()
    root = parent.root_run_id or parent.run_id
    run_tags = {**job_def.run_tags,
                **{k: v for k, v in parent.tags.items() if k not in TAGS_TO_MAYBE_OMIT_ON_RETRY},
                **(tags or {}), PARENT_RUN_ID_TAG: parent.run_id, ROOT_RUN_ID_TAG: root,
                RESUME_RETRY_TAG: "true"}
    run = instance.create_run_for_job(
        job_def=job_def, execution_plan=plan, run_config=parent.run_config, tags=run_tags,
        op_selection=parent.op_selection, asset_selection=parent.asset_selection,
        resolved_op_selection=parent.resolved_op_selection, root_run_id=root,
        parent_run_id=parent.run_id, remote_job_origin=remote_job_origin,
        job_code_origin=recon_job.get_python_origin(),
        repository_load_data=load_data)
    return execute_run(recon_job, run, instance)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.launch",
        description="Run a job of the code location the Dagster UI loads (workspace.yaml), "
                    "so it shows on the job's page and the Overview timeline; or re-execute "
                    "a failed run from failure (Dagster 1.13's CLI has no re-execute).",
        epilog="examples: -j full_pipeline | -j scrape_job --partition zalando -c run.yaml | "
               "--from-failure 3f2c9a1e-... (the run id the UI or the failed launch shows; "
               "the instance is DAGSTER_HOME's)")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("-j", "--job", help="e.g. full_pipeline, catalogue_job")
    which.add_argument("--from-failure", metavar="RUN_ID",
                       help="re-execute this failed run from failure, as the UI's Re-execute → "
                            "From failure: its failed and unrun steps, its config and tags; a "
                            "killed training step resumes from its checkpoint")
    parser.add_argument("-c", "--config", action="append", default=[], type=Path,
                        help="run config YAML file (repeatable, merged in order)")
    parser.add_argument("--partition", help="partition key, e.g. zalando for scrape_job")
    parser.add_argument("--tags", default="{}", help="JSON object of run tags")
    parser.add_argument("-w", "--workspace", type=Path, default=WORKSPACE)
    args = parser.parse_args(argv)
    if args.from_failure and (args.config or args.partition):
        parser.error("--from-failure takes the failed run's config and partition; "
                     "drop -c/--partition")
    config: dict = {}
    for path in args.config:
        if not path.is_file():
            parser.error(f"-c {path}: no such file")
        config = merge(config, yaml.safe_load(path.read_text()) or {})
    try:
        tags = json.loads(args.tags)
    except json.JSONDecodeError as e:
        parser.error(f"--tags {args.tags!r}: not JSON ({e})")
    if args.from_failure:
        result = reexecute_from_failure(args.from_failure, args.workspace, tags=tags)
    else:
        result = launch(args.job, config, tags, args.partition, args.workspace)
    print(f"run {result.run_id}: {'success' if result.success else 'FAILURE'}")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
