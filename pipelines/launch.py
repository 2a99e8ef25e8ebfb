"""Run a job from the terminal so the Dagster UI counts it as that job's run.

`dagster job execute -m pipelines.definitions` records a run with no code-location origin, and
the UI lists a job's runs (job page, Jobs list, Overview timeline) by that origin: such a run
shows under Runs and in the catalog only. This runs the job the same way (same instance, job
executor, logs and tags) with the origin of the code location `workspace.yaml` names, the one
`make ui` loads, so a terminal run and a UI launch look alike.

    python -m pipelines.launch -j full_pipeline
    python -m pipelines.launch -j scrape_job --partition zalando -c run.yaml
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


def launch(job_name: str, run_config: Mapping | None = None, tags: Mapping | None = None,
           partition: str | None = None, workspace: Path = WORKSPACE, instance=None):
    """Execute `job_name` of workspace.yaml's code location synchronously in `instance`
    (default: DAGSTER_HOME's) and return the result; the run carries the location's origin."""
    from dagster import DagsterInstance
    from dagster._core.definitions.reconstruct import ReconstructableRepository
    from dagster._core.execution.api import execute_run
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
    job_def = recon_job.get_definition()
    run_tags = {**job_def.run_tags, **(tags or {})}
    if partition is not None:
        keys = job_def.partitions_def.get_partition_keys() if job_def.partitions_def else []
        if partition not in keys:
            raise SystemExit(f"--partition {partition!r}: {job_name} takes one of "
                             f"{', '.join(keys) or 'none'}")
        run_tags.update(job_def.get_tags_for_partition_key(partition, selected_asset_keys=None))
    remote = RemoteJobOrigin(RemoteRepositoryOrigin(origin, repo_def.name), job_name)
    instance = instance or DagsterInstance.get()
    run = instance.create_run_for_job(
        job_def=job_def, run_config=run_config or {}, tags=run_tags,
        remote_job_origin=remote, job_code_origin=recon_job.get_python_origin(),
        repository_load_data=repo_def.repository_load_data)
    return execute_run(recon_job, run, instance)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelines.launch",
        description="Run a job of the code location the Dagster UI loads (workspace.yaml), "
                    "so it shows on the job's page and the Overview timeline.")
    parser.add_argument("-j", "--job", required=True, help="e.g. full_pipeline, catalogue_job")
    parser.add_argument("-c", "--config", action="append", default=[], type=Path,
                        help="run config YAML file (repeatable, merged in order)")
    parser.add_argument("--partition", help="partition key, e.g. zalando for scrape_job")
    parser.add_argument("--tags", default="{}", help="JSON object of run tags")
    parser.add_argument("-w", "--workspace", type=Path, default=WORKSPACE)
    args = parser.parse_args(argv)
    config: dict = {}
    for path in args.config:
        if not path.is_file():
            parser.error(f"-c {path}: no such file")
        config = merge(config, yaml.safe_load(path.read_text()) or {})
    try:
        tags = json.loads(args.tags)
    except json.JSONDecodeError as e:
        parser.error(f"--tags {args.tags!r}: not JSON ({e})")
    result = launch(args.job, config, tags, args.partition, args.workspace)
    print(f"run {result.run_id}: {'success' if result.success else 'FAILURE'}")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
