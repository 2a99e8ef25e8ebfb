"""Wall time of catalogue_job launched the way the UI launches it (benchmarks/README.md).

`dagster dev` as `make ui` starts it (webserver and daemon) on a free loopback port, with the
project's dagster.yaml in a temporary DAGSTER_HOME (queued runs, dequeued by the daemon into a
run worker process) and a demo crawl of --products in a temporary store; catalogue_job is
launched through GraphQL's launchRun, as the Launchpad does, and timed from launch to the end
of the run, and by the run's own start and end (the duration the run's page shows).

    python benchmarks/light_jobs.py                   # the code location as it is
    python benchmarks/light_jobs.py --definitions-from 5fdb33a   # an older definitions.py
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.demo_store import demo_store  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOCATION = "pipelines.definitions"


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", method="POST",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.load(response)
    if body.get("errors"):
        raise RuntimeError(body["errors"])
    return body["data"]


def wait_loaded(port: int, server: subprocess.Popen, timeout: float = 900) -> None:
    """Until the webserver answers and its code location has loaded (or failed: raise)."""
    query = """{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus
                 locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {server.returncode}")
        try:
            entries = graphql(port, query)["workspaceOrError"]["locationEntries"]
        except OSError:
            time.sleep(1)
            continue
        if entries and all(e["loadStatus"] == "LOADED" for e in entries):
            for e in entries:
                if e["locationOrLoadError"]["__typename"] == "PythonError":
                    raise RuntimeError(e["locationOrLoadError"]["message"])
            return
        time.sleep(1)
    raise TimeoutError("the code location did not load")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def workspace_for(rev: str | None, tmp: Path) -> Path:
    """workspace.yaml, or one loading definitions.py as of git revision `rev` (same name)."""
    if rev is None:
        return REPO / "workspace.yaml"
    old = tmp / "old_definitions.py"
    old.write_text(subprocess.check_output(["git", "show", f"{rev}:pipelines/definitions.py"],
                                           cwd=REPO, text=True))
    path = tmp / "workspace.yaml"
    path.write_text(f"load_from:\n  - python_file:\n      relative_path: {old}\n"
                    f"      working_directory: {REPO}\n      location_name: {LOCATION}\n")
    return path


def launch_and_time(port: int, job: str) -> dict:
    launched = graphql(port, """mutation($p: ExecutionParams!) { launchRun(executionParams: $p) {
        __typename ... on LaunchRunSuccess { run { runId } } ... on PythonError { message } } }""",
                       {"p": {"selector": {"repositoryLocationName": LOCATION,
                                           "repositoryName": "__repository__",
                                           "jobName": job}, "runConfigData": {}}})["launchRun"]
    if launched["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(launched)
    start = time.monotonic()
    run_id = launched["run"]["runId"]
    while True:
        run = graphql(port, """query($id: ID!) { runOrError(runId: $id) { ... on Run {
            status startTime endTime } } }""", {"id": run_id})["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            break
        time.sleep(0.5)
    return {"run_id": run_id, "status": run["status"],
            "launch_to_end_s": round(time.monotonic() - start, 1),
            "run_start_to_end_s": round(run["endTime"] - run["startTime"], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--job", default="catalogue_job")
    parser.add_argument("--definitions-from", help="git revision of pipelines/definitions.py")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        home, store = tmp / "dagster_home", tmp / "store"
        home.mkdir()
        shutil.copy(REPO / "pipelines" / "dagster_home" / "dagster.yaml", home)
        demo_store(store, args.products)
        env = {**os.environ, "DAGSTER_HOME": str(home), "FASHION_GAN_STORE": str(store),
               "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow/mlflow.db"}
        port = free_port()
        server = subprocess.Popen(
            [str(BIN / "dagster"), "dev", "-w", str(workspace_for(args.definitions_from, tmp)),
             "-h", "127.0.0.1", "-p", str(port)], cwd=REPO, env=env, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_loaded(port, server)
            for _ in range(args.runs):
                print(json.dumps({"job": args.job, "definitions": args.definitions_from or
                                  "working tree", **launch_and_time(port, args.job)}),
                      flush=True)
        finally:  # dagster dev, its webserver, daemon and code servers (its own group)
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


if __name__ == "__main__":
    main()
