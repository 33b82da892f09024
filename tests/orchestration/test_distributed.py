"""Extraction across workers: a Dask scheduler, two workers and the Dagster daemon, real processes
on loopback started and stopped here, extract a backfill of six checkpoints split into two runs.
One worker is killed with SIGKILL mid-partition; its range is run again on the other worker.
The workers are plain processes, then SLURM jobs on a single-node SLURM started here (skipped,
with the reason, where slurm-wlm is not installed).

What must hold: every checkpoint committed exactly once, the lake equal to a single-process
extraction's, and nothing half-written visible.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pyarrow.parquet as pq
import pytest

from extract import pipeline
from extract.config import REPO_ROOT, load_settings
from extract.lake.checks import MANIFESTS
from extract.lake.partition_store import read_manifest
from extract.lake.tables import checkpoint_dir
from extract.registry import PARTITION_TABLES
from extract.sources.suites import partition_key
from orchestration.cluster import (
    ProcessGroup,
    daemon_command,
    free_port,
    scheduler_command,
    worker_command,
    worker_environment,
)
from orchestration.defs.partitions import checkpoint_partitions
from orchestration.defs.schedules import refresh_warehouse
from orchestration.defs.sensors import local_checkpoint_keys
from tests.helpers import slurm
from tests.helpers.lakes import assert_same_rows
from tests.helpers.micro import MICRO_CONFIG

pytestmark = pytest.mark.fault

PARTITIONS = [("a", 0), ("a", 1), ("a", 2), ("a", 4), ("a", 8), ("b", 0)]
KEYS = [partition_key("micro", size, step) for size, step in PARTITIONS]
PAUSING_WORKER = REPO_ROOT / "tests" / "helpers" / "pausing_worker.py"


def _wait_for(condition, timeout_s: float, what: str, processes: ProcessGroup, driver: subprocess.Popen):
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        assert driver.poll() is None, f"{what}: the backfill ended first\n{processes.tail()}"
        assert time.monotonic() < deadline, f"{what} within {timeout_s:.0f} s\n{processes.tail()}"
        time.sleep(0.2)
    return value


def _tables(lake: Path, size: str, step: int) -> dict:
    directory = checkpoint_dir(lake, "micro", size, step)
    return {table.name: pq.read_table(directory / f"{table.name}.parquet").to_pandas() for table in PARTITION_TABLES}


def _start_workers(kind: str, processes: ProcessGroup, port: int, env: dict) -> None:
    """Two workers of the scheduler at `port`: plain processes, or SLURM jobs (dask-jobqueue)."""
    if kind == "processes":
        processes.start("scheduler", scheduler_command("127.0.0.1", port), env)
        for index in range(2):
            command = worker_command(f"tcp://127.0.0.1:{port}", f"cpu{index}", preload=PAUSING_WORKER)
            processes.start(f"worker{index}", command, {**worker_environment(None), **env})
        return
    slurm = [sys.executable, "-m", "orchestration.cluster", "slurm", "--jobs", "2", "--partition", "debug"]
    slurm += ["--host", "127.0.0.1", "--port", str(port), "--cpus-per-job", "1", "--memory", "4GB"]
    slurm += ["--gpus-per-job", "0", "--walltime", "00:30:00", "--preload", str(PAUSING_WORKER)]
    processes.start("slurm-cluster", slurm, env)


def _kill(pid: int, processes: ProcessGroup) -> None:
    """SIGKILL, then wait for the process to be gone (reaped, when it is a child of this test)."""
    os.kill(pid, signal.SIGKILL)
    child = next((process for _, process in processes.started if process.pid == pid), None)
    if child is not None:
        assert child.wait(timeout=60) == -signal.SIGKILL
        return
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2:3]:
        assert time.monotonic() < deadline, f"worker {pid} survived SIGKILL"
        time.sleep(0.1)


@pytest.fixture(params=["processes", "slurm"])
def workers(request, tmp_path):
    """How the workers start, and the environment they start in (SLURM's daemons, for `slurm`)."""
    if request.param == "processes":
        yield request.param, {}
        return
    if reason := slurm.unavailable():
        pytest.skip(reason)
    with slurm.Slurm(tmp_path / "slurm") as cluster:
        yield request.param, {"SLURM_CONF": str(cluster.conf)}


@pytest.mark.timeout(900)
def test_backfill_across_two_workers_survives_a_killed_worker(workers, warehouse_copy, tmp_path):
    kind, worker_env = workers
    reference = warehouse_copy("reference")
    list(pipeline.extract_checkpoints(reference, "micro", PARTITIONS))

    port = free_port()
    config = tmp_path / "seedconv.toml"
    config.write_text(
        MICRO_CONFIG + f'\n[cluster]\nscheduler = "tcp://127.0.0.1:{port}"\npartitions_per_run = 3\nworkers = 2\n'
    )
    settings = load_settings(config, warehouse_copy("cluster").paths.root)
    lake = settings.paths.lake
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO_ROOT / "orchestration" / "dagster-cluster.yaml").read_text())
    claim, commits = tmp_path / "paused", tmp_path / "commits.log"
    env = {
        **os.environ,
        **worker_env,
        "DAGSTER_HOME": str(home),
        "SEEDCONV_CONFIG": str(config),
        "SEEDCONV_WAREHOUSE": str(settings.paths.root),
        "SEEDCONV_TEST_PAUSE_CLAIM": str(claim),
        "SEEDCONV_TEST_COMMIT_LOG": str(commits),
        "DASK_TEMPORARY_DIRECTORY": str(tmp_path / "dask"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    # Every checkpoint known to the instance, so the daemon's sensor requests none beside the backfill.
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions(checkpoint_partitions.name, local_checkpoint_keys(settings))
    processes = ProcessGroup(tmp_path / "logs")
    try:
        _start_workers(kind, processes, port, env)
        processes.start("daemon", daemon_command(), env)
        started = time.monotonic()
        submit = [sys.executable, "-m", "orchestration.cluster", "backfill", "--no-warehouse"]
        backfill = processes.start("backfill", [*submit, "--partitions", ",".join(KEYS)], env)

        # The first worker to reach the second checkpoint of its range pauses before committing it.
        pid, target = _wait_for(
            lambda: claim.exists() and claim.read_text().split(" ", 1),
            300,
            "a worker paused mid-range",
            processes,
            backfill,
        )
        first_of_range = _committed_before(commits, int(pid))
        before_kill = read_manifest(first_of_range)
        _kill(int(pid), processes)
        assert not Path(target).exists(), "the killed worker's partition is half visible"

        assert backfill.wait(timeout=600) == 0, processes.tail()
        elapsed = time.monotonic() - started
    finally:
        processes.stop()

    # Both workers extracted; the retried range went to the survivor.
    committers = Counter(line.split(" ", 1)[0] for line in commits.read_text().splitlines())
    assert len(committers) == 2, committers
    assert sum(committers.values()) == len(PARTITIONS), "a partition was committed twice"
    # The range's first checkpoint, committed before the kill, was kept by the retry, not redone.
    assert read_manifest(first_of_range) == before_kill

    with dg.DagsterInstance.from_config(str(home)) as instance:
        (backfill_id,) = [backfill.backfill_id for backfill in instance.get_backfills()]
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        # Two ranges of three, each one run: the killed worker's task was retried by Dask, in its run.
        assert len(runs) == 2 and all(run.status == dg.DagsterRunStatus.SUCCESS for run in runs)
        # One materialization per checkpoint: none lost, none repeated by the retry.
        events = instance.fetch_materializations(dg.AssetKey(MANIFESTS), limit=100).records
        assert Counter(event.partition_key for event in events) == Counter(KEYS)
        # The schedule builds the warehouse now that no extraction is under way.
        assert isinstance(refresh_warehouse(dg.build_schedule_context(instance=instance)), dg.RunRequest)

    for size, step in PARTITIONS:
        manifest = read_manifest(checkpoint_dir(lake, "micro", size, step))
        assert manifest["extraction_run"] in {run.run_id for run in runs}
        assert_same_rows(_tables(lake, size, step), _tables(reference.paths.lake, size, step))
    stored = sorted(path.parent.name for path in (lake / "checkpoints").glob("suite=micro/size=*/step=*/manifest.json"))
    assert len(stored) == len(PARTITIONS)
    print(f"6 checkpoints on 2 workers ({kind}), one killed and its range retried: {elapsed:.1f} s")


def _committed_before(commits: Path, pid: int) -> Path:
    """The partition the worker committed before it paused: the first of its range."""
    mine = [line.split(" ", 1)[1] for line in commits.read_text().splitlines() if int(line.split(" ", 1)[0]) == pid]
    assert len(mine) == 1, mine
    return Path(mine[0])
