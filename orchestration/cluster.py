"""Extraction across many GPU workers: the Dask processes, the pool limit and the backfill.

    python -m orchestration.cluster workers --devices 0,1   # a scheduler and one worker per device here
    python -m orchestration.cluster slurm --jobs 8 --partition gpu   # a scheduler here, workers as SLURM jobs
    python -m orchestration.cluster backfill                 # every checkpoint not yet extracted, then the warehouse

The design, and the SLURM and Kubernetes set-ups, are in docs/distributed.md. In short: Dagster
splits a backfill into runs of `[cluster] partitions_per_run` contiguous checkpoints
(`BackfillPolicy.multi_run`), its run queue starts as many at once as the `extraction` pool allows
(`[cluster] workers`), and each run's extraction step executes on a Dask worker holding one device
(orchestration/dask_steps.py). The Dagster daemon must be running (`dagster-daemon run`, or
`dagster dev`), with an instance whose pools are enforced per run (orchestration/dagster-cluster.yaml).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.utils import make_new_backfill_id

from extract.config import REPO_ROOT, Settings
from orchestration.definitions import defs
from orchestration.defs.partitions import checkpoint_partitions
from orchestration.defs.resources import SeedconvSettings
from orchestration.defs.sensors import RANGE_START
from orchestration.materialize import EXTRACTION, WAREHOUSE, extraction_ranges, run_assets

EXTRACTION_POOL = "extraction"  # checkpoint_extraction's pool
# Each worker advertises one device as this Dask resource; an extraction step takes it
# (orchestration/dask_steps.py, GPU_SLOT_TAG), so a worker runs one extraction at a time.
GPU_RESOURCE = "GPU=1"
FINISHED = {
    BulkActionStatus.COMPLETED,
    BulkActionStatus.COMPLETED_SUCCESS,
    BulkActionStatus.COMPLETED_FAILED,
    BulkActionStatus.FAILED,
    BulkActionStatus.CANCELED,
}


def free_port() -> int:
    """A TCP port free on loopback now (for a scheduler started right after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scheduler_command(host: str, port: int) -> list[str]:
    """The Dask scheduler; no dashboard (it would need a web port of its own)."""
    return [
        sys.executable,
        "-m",
        "distributed.cli.dask_scheduler",
        "--host",
        host,
        "--port",
        str(port),
        "--no-dashboard",
    ]


def worker_command(scheduler: str, name: str, preload: Path | None = None) -> list[str]:
    """One Dask worker holding one device: one thread (Dagster steps are not thread-safe), its own
    process (no nanny: a worker that dies is gone, and its task goes to another worker)."""
    command = [
        sys.executable, "-m", "distributed.cli.dask_worker", scheduler,
        "--name", name, "--nthreads", "1", "--no-nanny", "--resources", GPU_RESOURCE, "--no-dashboard",
    ]  # fmt: skip
    return command + (["--preload", str(preload)] if preload else [])


def worker_environment(device: str | None) -> dict[str, str]:
    """The environment of a worker bound to one device: CUDA numbers the visible devices from 0,
    so the extraction's default device (cuda, the first visible) is this one. None: a CPU worker."""
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "" if device is None else device}


class ProcessGroup:
    """Processes started in sessions of their own, each logging to a file of `logs`; stopping one
    stops its children too (the daemon's code server and run workers). Stopped in reverse order."""

    def __init__(self, logs: Path):
        self.logs, self.started = logs, []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        process = subprocess.Popen(
            command, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started.append((name, process))
        return process

    def stop(self) -> None:
        for _, process in reversed(self.started):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for _, process in self.started:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    def tail(self, chars: int = 3000) -> str:
        """The end of every log, for an error message."""
        return "\n".join(f"--- {path.name}\n{path.read_text()[-chars:]}" for path in sorted(self.logs.glob("*.log")))


def daemon_command() -> list[str]:
    """The Dagster daemon over this project's definitions: backfills, the run queue, sensors."""
    return [sys.executable, "-m", "dagster._daemon", "run", "-m", "orchestration.definitions"]


def set_extraction_pool(instance: dg.DagsterInstance, workers: int) -> None:
    """As many extraction runs at once as there are workers."""
    instance.event_log_storage.set_concurrency_slots(EXTRACTION_POOL, workers)


def submit_backfill(instance: dg.DagsterInstance, keys: list[str], title: str = "extraction") -> str:
    """An asset backfill of the extraction assets over `keys`, as the UI's "Materialize" on the
    selected partitions would submit it; the daemon splits it by the asset's backfill policy."""
    instance.add_dynamic_partitions(checkpoint_partitions.name, keys)
    backfill_id, graph = make_new_backfill_id(), defs.resolve_asset_graph()
    instance.add_backfill(
        PartitionBackfill.from_asset_partitions(
            backfill_id=backfill_id,
            asset_graph=graph,
            partition_names=keys,
            asset_selection=list(EXTRACTION.resolve(graph)),
            backfill_timestamp=time.time(),
            tags={},
            dynamic_partitions_store=instance,
            all_partitions=False,
            title=title,
            description=None,
            run_config=None,
        )
    )
    return backfill_id


def wait_for_backfill(
    instance: dg.DagsterInstance, backfill_id: str, timeout_s: float = 7 * 24 * 3600, log: Callable = print
) -> BulkActionStatus:
    """Polls until the backfill has ended; logs its runs' statuses as they change."""
    deadline, seen = time.monotonic() + timeout_s, None
    while True:
        backfill = instance.get_backfill(backfill_id)
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        statuses = sorted(f"{run.tags.get(RANGE_START, '')}: {run.status.value}" for run in runs)
        if statuses != seen:
            log(f"backfill {backfill_id} {backfill.status.value}: " + ", ".join(statuses))
            seen = statuses
        if backfill.status in FINISHED:
            return backfill.status
        if time.monotonic() > deadline:
            raise TimeoutError(f"backfill {backfill_id} still {backfill.status.value} after {timeout_s:.0f} s")
        time.sleep(2)


def backfill_keys(instance: dg.DagsterInstance, settings: Settings, every_partition: bool) -> list[str]:
    """The checkpoints to extract, in partition order: those not yet materialized (or all)."""
    order = instance.get_dynamic_partitions(checkpoint_partitions.name)
    keys = []
    for first, last in extraction_ranges(instance, settings, every_partition):
        keys += order[order.index(first) : order.index(last) + 1]
    return keys


def backfill(
    every_partition: bool, build_warehouse: bool, partitions: list[str] | None = None, log: Callable = print
) -> BulkActionStatus:
    """Extracts the checkpoints on the cluster (`partitions`, or those not yet extracted), then
    builds the warehouse once, in this process."""
    settings = SeedconvSettings().load()
    if not settings.cluster.distributed:
        raise SystemExit("[cluster] scheduler is empty: `python -m orchestration.materialize` extracts on this machine")
    with dg.DagsterInstance.get() as instance:
        set_extraction_pool(instance, settings.cluster.workers)
        keys = partitions or backfill_keys(instance, settings, every_partition)
        if not keys:
            log("every checkpoint is extracted already")
            status = BulkActionStatus.COMPLETED_SUCCESS
        else:
            started = time.perf_counter()
            backfill_id = submit_backfill(instance, keys)
            log(f"backfill {backfill_id}: {len(keys)} checkpoints, {settings.cluster.partitions_per_run} per run")
            status = wait_for_backfill(instance, backfill_id, log=log)
            log(f"backfill {backfill_id} {status.value} in {time.perf_counter() - started:.1f} s")
        if build_warehouse:
            # One DuckDB writer, once every extraction run has ended; quarantined checkpoints
            # (a failed run) are left out as `make demo` leaves them out.
            run_assets(instance, WAREHOUSE)
            log("warehouse and report built")
    return status


def start_workers(devices: list[str], port: int) -> None:
    """A scheduler on this machine and one worker per device, until interrupted."""
    address = f"tcp://127.0.0.1:{port}"
    processes = [subprocess.Popen(scheduler_command("127.0.0.1", port))]
    time.sleep(2)
    for index, device in enumerate(devices):
        name = f"gpu{device}" if device else f"cpu{index}"
        processes.append(subprocess.Popen(worker_command(address, name), env=worker_environment(device or None)))
    print(f"scheduler {address}, {len(devices)} workers: set [cluster] scheduler = {address!r}")
    try:
        while all(process.poll() is None for process in processes):
            time.sleep(1)
    finally:
        for process in processes:
            process.terminate()


def start_slurm_workers(
    jobs: int,
    port: int,
    host: str,
    partition: str | None = None,
    account: str | None = None,
    walltime: str = "24:00:00",
    cpus_per_job: int = 8,
    memory: str = "64GB",
    gpus_per_job: int = 1,
    preload: Path | None = None,
):
    """A scheduler in this process and `jobs` workers, each a SLURM job holding one GPU
    (dask-jobqueue's SLURMCluster). SLURM sets each job's CUDA_VISIBLE_DEVICES to its GPU, so the
    worker's default device is that one. Keep the returned cluster alive as long as it is used."""
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(
        queue=partition,
        account=account,
        walltime=walltime,
        cores=1,  # one Dask thread: Dagster steps are not thread-safe
        job_cpu=cpus_per_job,  # the CPUs the job books, for reading checkpoints and the tokenizer
        memory=memory,
        processes=1,
        nanny=False,  # as worker_command: a killed worker is gone, its task goes to another
        python=sys.executable,
        job_extra_directives=[f"--gres=gpu:{gpus_per_job}"] if gpus_per_job else [],
        worker_extra_args=["--resources", GPU_RESOURCE] + (["--preload", str(preload)] if preload else []),
        scheduler_options={"host": host, "port": port, "dashboard_address": None},
    )
    cluster.scale(jobs=jobs)
    return cluster


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    workers = commands.add_parser("workers", help="a Dask scheduler and a worker per device on this machine")
    workers.add_argument("--devices", default="0", help="CUDA device numbers, comma-separated; empty items: CPU")
    workers.add_argument("--port", type=int, default=8786)
    slurm = commands.add_parser("slurm", help="a Dask scheduler here and its workers as SLURM jobs, one GPU each")
    slurm.add_argument("--jobs", type=int, required=True, help="workers: SLURM jobs of one GPU each")
    slurm.add_argument("--partition", help="the SLURM partition (sbatch -p)")
    slurm.add_argument("--account", help="the SLURM account (sbatch -A)")
    slurm.add_argument("--walltime", default="24:00:00")
    slurm.add_argument("--cpus-per-job", type=int, default=8)
    slurm.add_argument("--memory", default="64GB", help="memory per job")
    slurm.add_argument("--gpus-per-job", type=int, default=1, help="0: CPU jobs (no --gres)")
    slurm.add_argument("--host", default=socket.gethostname(), help="the scheduler's address, as the nodes reach it")
    slurm.add_argument("--port", type=int, default=8786)
    slurm.add_argument("--preload", type=Path, help="a Dask preload script each worker runs at start")
    run = commands.add_parser("backfill", help="extract the checkpoints not yet extracted on the cluster")
    run.add_argument("--all", action="store_true", help="re-extract partitions already materialized")
    run.add_argument("--partitions", help="these checkpoint keys (suite|size|stepN), comma-separated")
    run.add_argument("--no-warehouse", action="store_true", help="extract only; the schedule builds the warehouse")
    args = parser.parse_args()
    if args.command == "workers":
        start_workers(args.devices.split(","), args.port)
        return
    if args.command == "slurm":
        options = {name: value for name, value in vars(args).items() if name != "command"}
        with start_slurm_workers(**options) as cluster:
            print(f"scheduler {cluster.scheduler_address}, {args.jobs} SLURM jobs submitted", flush=True)
            while True:
                time.sleep(60)
    partitions = args.partitions.split(",") if args.partitions else None
    status = backfill(args.all, build_warehouse=not args.no_warehouse, partitions=partitions)
    if status != BulkActionStatus.COMPLETED_SUCCESS:
        raise SystemExit(f"the backfill ended {status.value}: the failed runs are in the Dagster UI")


if __name__ == "__main__":
    main()
