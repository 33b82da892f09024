"""Extraction across Dask workers: a backfill's time with 1 and 2 workers, and the projected wall
time of the whole PolyPythia sweep on N workers.

    python -m benchmarks.distributed [--workers 1 2] [--size m] [--partitions 8] [--per-run 4]
                                     [--seconds-per-partition 14m=138.6 ...]

Copies the demo's mini suite and evaluation inputs (run `make demo` first) to
warehouse/bench/distributed/ and, for each worker count, starts a Dask scheduler, the workers
(the machine's cores shared out among them, as GPUs would not be shared), and the Dagster daemon
on orchestration/dagster-cluster.yaml; then backfills the size's first `--partitions` checkpoints
in runs of `--per-run`, as `python -m orchestration.cluster backfill` does. Prints per worker
count: the runs' span (the first run's start to the last one's end), the backfill's wall time
(submission to the daemon marking it complete; the daemon looks every 30 s), and the partitions'
own compute seconds from their manifests.

The projection: a sweep is `checkpoints` partitions per size in runs of `--per-run`; each run
costs its partitions' seconds plus the per-run overhead this benchmark measured with one worker
(the span less the compute, per run: starting the run, loading the models); runs go to the first
free worker, longest first. The seconds per partition are what `benchmarks.pythia_scale`
measured on the workers' device (docs/performance.md); the default, 14m=138.6, is Pythia-14m
with 10 seeds on this 2-core CPU.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import shutil
import time
from pathlib import Path

import dagster as dg

from extract.config import load_settings
from extract.lake.tables import checkpoint_dir
from extract.sources.suites import open_suite, partition_key
from orchestration.cluster import (
    ProcessGroup,
    daemon_command,
    free_port,
    scheduler_command,
    set_extraction_pool,
    submit_backfill,
    wait_for_backfill,
    worker_command,
    worker_environment,
)
from orchestration.defs.partitions import checkpoint_partitions
from orchestration.defs.sensors import local_checkpoint_keys

POLYPYTHIA_SIZES = ("14m", "31m", "70m", "160m", "410m")
POLYPYTHIA_CHECKPOINTS = 154  # per seed and size; 10 seeds each, compared together in a partition


def sweep_wall_time(seconds_per_partition: dict[str, float], checkpoints: int, workers: int, per_run: int,
                    run_overhead_s: float) -> float:  # fmt: skip
    """The makespan of every size's runs on `workers`, longest run first to the first free worker."""
    runs = []
    for seconds in seconds_per_partition.values():
        full, rest = divmod(checkpoints, per_run)
        runs += [per_run * seconds + run_overhead_s] * full + ([rest * seconds + run_overhead_s] if rest else [])
    free_at = [0.0] * workers
    for run in sorted(runs, reverse=True):
        heapq.heappush(free_at, heapq.heappop(free_at) + run)
    return max(free_at)


def prepare(demo_root: Path, root: Path) -> None:
    """The demo's trained suites and evaluation inputs, without its extracted checkpoints."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(demo_root / "suites", root / "suites")
    for folder in (demo_root / "lake").iterdir():
        if folder.is_dir() and folder.name != "checkpoints" and not folder.name.startswith("."):
            shutil.copytree(folder, root / "lake" / folder.name)


def measure(workers: int, keys: list[str], per_run: int, demo_root: Path, scratch: Path) -> dict:
    root = scratch / f"workers-{workers}"
    prepare(demo_root, root)
    port = free_port()
    config = root / "seedconv.toml"  # every default, as the demo's, and the cluster
    config.write_text(f'[cluster]\nscheduler = "tcp://127.0.0.1:{port}"\npartitions_per_run = {per_run}\n')
    home = root / "dagster"
    home.mkdir()
    shutil.copy(Path(__file__).parents[1] / "orchestration" / "dagster-cluster.yaml", home / "dagster.yaml")
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SEEDCONV_CONFIG": str(config),
        "SEEDCONV_WAREHOUSE": str(root),
        "OMP_NUM_THREADS": threads,
        "DASK_TEMPORARY_DIRECTORY": str(root / "dask"),
    }
    processes = ProcessGroup(root / "logs")
    try:
        processes.start("scheduler", scheduler_command("127.0.0.1", port), env)
        for index in range(workers):
            processes.start(
                f"worker{index}",
                worker_command(f"tcp://127.0.0.1:{port}", f"w{index}"),
                {**worker_environment(None), **env},
            )
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # Every checkpoint known, so the daemon's sensor requests none beside the backfill.
            known = local_checkpoint_keys(load_settings(config, root))
            instance.add_dynamic_partitions(checkpoint_partitions.name, known)
            set_extraction_pool(instance, workers)
            processes.start("daemon", daemon_command(), env)
            started = time.monotonic()
            backfill_id = submit_backfill(instance, keys)
            status = wait_for_backfill(instance, backfill_id, timeout_s=3600, log=lambda message: None)
            wall = time.monotonic() - started
            if status.value != "COMPLETED_SUCCESS":
                raise SystemExit(f"the backfill with {workers} workers ended {status.value}\n{processes.tail()}")
            records = instance.get_run_records(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            span = max(r.end_time for r in records) - min(r.start_time for r in records)
    finally:
        processes.stop()
    compute = 0.0
    for key in keys:
        _, size, step = key.split("|")
        manifest = json.loads(
            (checkpoint_dir(root / "lake", "mini", size, int(step[4:])) / "manifest.json").read_text()
        )
        compute += manifest["timings_s"]["compute"]
    return {"workers": workers, "runs": len(records), "span": span, "wall": wall, "compute": compute}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--size", default="m", help="the mini suite's size whose checkpoints are extracted")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--per-run", type=int, default=4, help="partitions per run ([cluster] partitions_per_run)")
    parser.add_argument("--seconds-per-partition", nargs="+", default=["14m=138.6"], metavar="SIZE=S")
    args = parser.parse_args()

    demo = load_settings()
    suite = open_suite(demo.suite("mini"))
    keys = [partition_key("mini", size, step) for size, step in suite.partitions() if size == args.size]
    keys = keys[: args.partitions]
    scratch = demo.paths.root / "bench" / "distributed"
    print(f"== a backfill of {len(keys)} checkpoints of mini size {args.size}, {args.per_run} per run ==")
    print("| workers | runs | runs' span s | backfill wall s | partitions' compute s | speed-up (span) |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    results = []
    for workers in args.workers:
        result = measure(workers, keys, args.per_run, demo.paths.root, scratch)
        results.append(result)
        speedup = results[0]["span"] / result["span"]
        print(
            f"| {workers} | {result['runs']} | {result['span']:.1f} | {result['wall']:.1f} | "
            f"{result['compute']:.1f} | {speedup:.2f}x |",
            flush=True,
        )
    single = results[0]
    overhead = max(0.0, (single["span"] - single["compute"]) / single["runs"])
    print(f"\nper-run overhead with {single['workers']} worker(s): {overhead:.1f} s (the span less compute, per run)")

    seconds = {size: float(value) for size, value in (item.split("=") for item in args.seconds_per_partition)}
    print(
        f"\n== projected: the PolyPythia sweep over sizes {', '.join(seconds)} "
        f"({POLYPYTHIA_CHECKPOINTS} checkpoints x 10 seeds each), {args.per_run} checkpoints per run =="
    )
    print("| workers | wall time |")
    print("| ---: | ---: |")
    for workers in (1, 2, 8, 32, 128):
        total = sweep_wall_time(seconds, POLYPYTHIA_CHECKPOINTS, workers, args.per_run, overhead)
        print(f"| {workers} | {total / 3600:.1f} h |")
    runs = sum(math.ceil(POLYPYTHIA_CHECKPOINTS / args.per_run) for _ in seconds)
    print(f"({runs} runs; more workers than runs add nothing: lower --per-run to use them)")
    missing = [size for size in POLYPYTHIA_SIZES if size not in seconds]
    if missing:
        print(f"sizes not given (--seconds-per-partition), so not in the sweep above: {', '.join(missing)}")


if __name__ == "__main__":
    main()
