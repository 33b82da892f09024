"""The warehouse at scale: `dbt build` on a synthetic lake of the paper's size and of 100 times its
tokens, and what adding one partition costs.

    python -m benchmarks.warehouse [--scale paper|100x|both] [--out warehouse/bench]

For each scale: write (or reuse) the synthetic lake of benchmarks/synthetic_lake.py without one
partition, time a full `dbt build` into a fresh DuckDB file, a no-op `dbt build` (the fixed
overhead: dbt's start, the models rebuilt whole, the tests), then add the partition and time the
incremental `dbt build`. Everything is written under the output folder (git-ignored), the repo's
dbt_project/target is untouched. Prints figures, asserts nothing.

Targets (on a 2-core machine): full build <= 30 s at paper scale, <= 5 minutes at 100x.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

from benchmarks.synthetic_lake import (
    Grid,
    InsufficientDiskSpace,
    lake_bytes,
    paper_grid,
    remove_partition,
    write_synthetic_lake,
)
from extract.config import REPO_ROOT

DBT_PROJECT = REPO_ROOT / "dbt_project"
SCALES = {"paper": 1, "100x": 100}
TARGET_S = {"paper": 30.0, "100x": 300.0}


@dataclass
class DbtRun:
    seconds: float
    statuses: dict[str, int]


@dataclass
class ScaleResult:
    scale: str
    grid: Grid
    added: tuple[str, int]
    token_stats_rows: int
    pair_kl_rows: int
    lake_bytes: int
    duckdb_bytes: int
    generate_s: float
    generated: int
    full: DbtRun
    noop: DbtRun
    incremental: DbtRun

    @property
    def partition_share(self) -> float:
        return 1 / len(self.grid.partitions)


def dbt_executable() -> str:
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def dbt_environment(folder: Path) -> dict[str, str]:
    """dbt reads the lake under `folder` and writes its DuckDB file, target/ and logs/ there."""
    env = os.environ.copy()
    env.update(
        {
            "SEEDCONV_LAKE": str(folder / "lake"),
            "SEEDCONV_DUCKDB": str(folder / "seedconv.duckdb"),
            "DBT_PROFILES_DIR": str(DBT_PROJECT),
            "DBT_TARGET_PATH": str(folder / "target"),
            "DBT_LOG_PATH": str(folder / "logs"),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
            "DO_NOT_TRACK": "1",
            "DBT_VERSION_CHECK": "False",
            "DBT_USE_COLORS": "False",
        }
    )
    return env


def run_dbt_build(folder: Path, *args: str) -> DbtRun:
    """`dbt build` from dbt_project/ as the Dagster asset runs it; seconds of wall clock."""
    started = time.perf_counter()
    proc = subprocess.run(
        [dbt_executable(), "build", *args],
        cwd=DBT_PROJECT,
        env=dbt_environment(folder),
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"dbt build failed in {folder}:\n{proc.stdout[-6000:]}{proc.stderr[-2000:]}")
    results = json.loads((folder / "target" / "run_results.json").read_text())["results"]
    statuses: dict[str, int] = {}
    for result in results:
        statuses[result["status"]] = statuses.get(result["status"], 0) + 1
    return DbtRun(seconds, statuses)


def held_out_partition(grid: Grid) -> tuple[str, int]:
    """The partition added last: a middle step of a middle size (not a last step, whose arrival
    also rebuilds its size's final-surprisal conditions)."""
    return grid.sizes[len(grid.sizes) // 2], grid.steps[len(grid.steps) // 2]


def bench_scale(scale: str, out: Path, workers: int, log, fresh_lake: bool = False) -> ScaleResult:
    grid = paper_grid(SCALES[scale])
    folder = out / scale
    lake = folder / "lake"
    added = held_out_partition(grid)
    base = [p for p in grid.partitions if p != added]
    if fresh_lake and lake.exists():
        log(f"[{scale}] deleting {lake}")
        shutil.rmtree(lake)

    log(f"[{scale}] lake: {len(base)} partitions of {grid.n_tokens:,} tokens in {lake}")
    remove_partition(lake, grid.suite, *added)
    report = write_synthetic_lake(lake, grid, base, workers=workers, log=lambda m: log(f"[{scale}] wrote {m}"))
    generate_s = report.seconds

    database = folder / "seedconv.duckdb"
    database.unlink(missing_ok=True)
    log(f"[{scale}] full dbt build")
    full = run_dbt_build(folder)
    log(f"[{scale}] no-op dbt build")
    noop = run_dbt_build(folder)
    log(f"[{scale}] adding {grid.suite}/{added[0]}/step{added[1]}")
    write_synthetic_lake(lake, grid, [added])
    log(f"[{scale}] incremental dbt build")
    incremental = run_dbt_build(folder)

    with duckdb.connect(str(database), read_only=True) as con:
        token_stats_rows, pair_kl_rows = con.execute(
            "select sum(token_stats_rows), sum(pair_kl_rows) from int_partition_checks"
        ).fetchone()
    return ScaleResult(
        scale=scale,
        grid=grid,
        added=added,
        token_stats_rows=int(token_stats_rows),
        pair_kl_rows=int(pair_kl_rows),
        lake_bytes=lake_bytes(lake),
        duckdb_bytes=database.stat().st_size,
        generate_s=generate_s,
        generated=len(report.written),
        full=full,
        noop=noop,
        incremental=incremental,
    )


def format_table(results: list[ScaleResult]) -> str:
    header = (
        "scale",
        "token_stats rows",
        "pair_kl rows",
        "lake GB",
        "generate s",
        "full build s",
        "target s",
        "no-op s",
        "+1 partition s",
        "+1 / full",
        "partition share",
    )
    rows = [header]
    for r in results:
        generated = f"{r.generate_s:.0f}" if r.generated else f"{r.generate_s:.0f} (reused)"
        rows.append(
            (
                r.scale,
                f"{r.token_stats_rows:,}",
                f"{r.pair_kl_rows:,}",
                f"{r.lake_bytes / 1e9:.2f}",
                generated,
                f"{r.full.seconds:.1f}",
                f"{TARGET_S[r.scale]:.0f}",
                f"{r.noop.seconds:.1f}",
                f"{r.incremental.seconds:.1f}",
                f"{r.incremental.seconds / r.full.seconds:.3f}",
                f"{r.partition_share:.3f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    notes = []
    for r in results:
        extra = r.incremental.seconds - r.noop.seconds
        notes.append(
            f"{r.scale}: added {r.grid.suite}/{r.added[0]}/step{r.added[1]}; incremental - no-op = {extra:.1f} s "
            f"({extra / r.full.seconds:.3f} of the full build; the partition is {r.partition_share:.3f} of the "
            f"rows); DuckDB file {r.duckdb_bytes / 1e9:.2f} GB; full build nodes {r.full.statuses}"
        )
    return "\n".join(lines + [""] + notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", choices=("paper", "100x", "both"), default="both")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO_ROOT / "warehouse" / "bench",
        help="folder for the lakes, DuckDB files and dbt output (default: warehouse/bench)",
    )
    parser.add_argument(
        "--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes generating partitions"
    )
    parser.add_argument("--fresh-lake", action="store_true", help="delete and regenerate the lakes (else reused)")
    args = parser.parse_args(argv)
    scales = ["paper", "100x"] if args.scale == "both" else [args.scale]

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    results, refused = [], []
    for scale in scales:
        try:
            results.append(bench_scale(scale, args.out, args.workers, log, args.fresh_lake))
        except InsufficientDiskSpace as error:
            refused.append(f"{scale}: not run, {error}")
    if results:
        print(format_table(results))
    for line in refused:
        print(line)
    return 1 if refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
