"""How long a damaged partition takes to be found, extracted again and back in the marts.

    python -m benchmarks.repair [--warehouse warehouse] [--partition mini/m/64]

Works on a copy of a built warehouse (default: the one `make demo` builds), its Dagster instance
included, so the warehouse itself is never touched. Cuts one committed file of the partition to
half its bytes (the failure of issue 21: a truncated pair_kl.parquet), then times what the
pipeline does about it:

1. found: the per-build guard (sizes and Parquet footers of every partition against its
   manifest) sets the partition aside;
2. repaired and back: `materialize_all`, what `make demo` runs (and what the sensor
   `repair_damaged` and the schedule do in the UI): the damaged partition's extraction, then the
   warehouse build, the publish and the report;

and checks that the partition's rows are back in `mart_expected_convergence` of the published
copy. Prints the times; asserts nothing but that the rows came back.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from extract.config import REPO_ROOT, load_settings
from extract.lake.integrity import committed_partitions
from extract.lake.repair import damaged_partitions, guard
from extract.lake.tables import checkpoint_dir

SQL = "select count(*) from mart_expected_convergence where suite = ? and size = ? and step = ?"


def marts_rows(database: Path, suite: str, size: str, step: int) -> int:
    with duckdb.connect(str(database), read_only=True) as connection:
        return connection.execute(SQL, [suite, size, step]).fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warehouse", type=Path, default=REPO_ROOT / "warehouse", help="a built warehouse root")
    parser.add_argument("--partition", default="mini/m/64", help="suite/size/step of the partition to damage")
    args = parser.parse_args(argv)
    suite, size, step = args.partition.split("/")
    step = int(step)
    source = args.warehouse.resolve()
    if not (source / "published" / "seedconv.duckdb").exists():
        raise SystemExit(f"{source} holds no built warehouse: run make demo first")

    with tempfile.TemporaryDirectory(prefix="repair-bench-") as work:
        root = Path(work) / "warehouse"
        shutil.copytree(source, root, symlinks=True)
        os.environ["SEEDCONV_WAREHOUSE"] = str(root)
        os.environ["DAGSTER_HOME"] = str(root / "dagster")
        settings = load_settings(None, root)
        lake = settings.paths.lake
        before = marts_rows(settings.paths.published_duckdb, suite, size, step)

        damaged_file = checkpoint_dir(lake, suite, size, step) / "pair_kl.parquet"
        with damaged_file.open("r+b") as handle:
            handle.truncate(damaged_file.stat().st_size // 2)

        n_partitions = len(committed_partitions(lake))
        started = time.perf_counter()
        found = guard(lake)
        found_s = time.perf_counter() - started
        assert (suite, size, step) in found and (suite, size, step) in damaged_partitions(lake)

        # Imported here: the Dagster definitions read the environment set above.
        import dagster as dg

        from orchestration.materialize import materialize_all

        lines: list[str] = []
        started = time.perf_counter()
        with dg.DagsterInstance.get() as instance:
            materialize_all(instance, log=lines.append)
        repaired_s = time.perf_counter() - started
        after = marts_rows(settings.paths.published_duckdb, suite, size, step)
        if after != before or damaged_partitions(lake):
            raise SystemExit(f"the partition is not back: {after} rows in the marts, {before} before")

    print(f"partition {suite}/{size}/step{step}: {damaged_file.name} cut to half its bytes")
    print(f"found by the build's guard (sizes and footers of {n_partitions} partitions): {found_s:.2f} s")
    for line in lines:
        print(f"  materialize_all: {line}")
    print(f"extracted again, warehouse rebuilt and published: {repaired_s:.1f} s")
    print(f"found, repaired and back in the marts: {found_s + repaired_s:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
