"""Materializes every asset from the command line, as `make demo` does.

    python -m orchestration.materialize

Runs go to the Dagster instance in $DAGSTER_HOME, so `dagster dev` afterwards shows them.
Order: inputs (corpus, tagger, mini suite, evaluation set, tags), then the checkpoint partitions
not yet materialized (all of them with --all) in as few extraction runs as their order allows,
then dbt, the regression, publish, figures and the report page. Checkpoints whose models give
NaN or infinite outputs are quarantined: everything else is built, and they are named at the end.
"""

import argparse
import time

import dagster as dg

from extract.config import Settings
from extract.lake.checks import MANIFESTS
from extract.lake.repair import damaged_partitions
from extract.sources.suites import partition_key
from orchestration.definitions import defs
from orchestration.defs.checkpoint_extraction import QUARANTINED
from orchestration.defs.partitions import checkpoint_partitions
from orchestration.defs.resources import SeedconvSettings
from orchestration.defs.schedules import UPSTREAM_GROUPS
from orchestration.defs.sensors import RANGE_END, RANGE_START, local_checkpoint_keys

# The three stages, as asset selections: the inputs, the extraction (by partition range), and
# everything built from the lake (the schedule's warehouse_job).
INPUTS = dg.AssetSelection.groups("inputs")
EXTRACTION = dg.AssetSelection.groups("extraction")
WAREHOUSE = dg.AssetSelection.all() - dg.AssetSelection.groups(*UPSTREAM_GROUPS)


def run_assets(
    instance: dg.DagsterInstance, selection: dg.AssetSelection, partitions: tuple[str, str] | None = None
) -> list[str]:
    """One in-process run of `selection`, over the partition range (first, last) if given.

    Returns the quarantined checkpoints' reasons when the run failed for those alone (the rest
    of it is stored); any other failure ends the program."""
    job = defs.resolve_implicit_global_asset_job_def()
    keys = list(selection.resolve(defs.resolve_asset_graph()))
    tags = {} if partitions is None else {RANGE_START: partitions[0], RANGE_END: partitions[1]}
    result = job.execute_in_process(
        instance=instance,
        asset_selection=keys,
        tags=tags,
        raise_on_error=False,  # a failure is read from the result: a quarantine lets the rest go on
        # No per-event DEBUG lines; the full event log stays in the instance for the UI.
        run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
    )
    if result.success:
        return []
    failures = [event.step_failure_data for event in result.get_step_failure_events()]
    if failures and all(f.user_failure_data and QUARANTINED in f.user_failure_data.metadata for f in failures):
        return [failure.user_failure_data.metadata[QUARANTINED].value for failure in failures]
    errors = "\n".join(_raised(failure.error) for failure in failures if failure.error)
    where = f" for {partitions[0]} .. {partitions[1]}" if partitions else ""
    raise SystemExit(f"materialization failed{where}:\n{errors}")


def _raised(error) -> str:
    """The message of the exception the asset raised, out of Dagster's wrapping."""
    while error.cls_name.startswith("Dagster") and error.cause is not None:
        error = error.cause
    return error.message.strip()


def materialize_all(instance: dg.DagsterInstance, every_partition: bool = False, log=print) -> None:
    started = time.perf_counter()
    run_assets(instance, INPUTS)
    log(f"inputs ready ({time.perf_counter() - started:.0f} s)")

    quarantined = []
    for first, last in extraction_ranges(instance, SeedconvSettings().load(), every_partition):
        quarantined += run_assets(instance, EXTRACTION, partitions=(first, last))
        log(f"extracted {first} .. {last} ({time.perf_counter() - started:.0f} s)")

    run_assets(instance, WAREHOUSE)
    log(f"warehouse and report built ({time.perf_counter() - started:.0f} s)")
    if quarantined:
        # The warehouse holds every other checkpoint; these are named, and the exit status says so.
        raise SystemExit("quarantined, so not in the warehouse (NaN or infinite outputs):\n" + "\n".join(quarantined))


def extraction_ranges(
    instance: dg.DagsterInstance, settings: Settings, every_partition: bool = False
) -> list[tuple[str, str]]:
    """The (first, last) partition ranges to extract: every complete checkpoint of the local suites
    not yet materialized (a quarantined one is tried again, and one set aside as damaged), or all of them with
    `every_partition`. One run per unbroken stretch of the partition order, as a backfill from
    the UI would do. Adds the checkpoints to the instance's partitions."""
    keys = local_checkpoint_keys(settings)
    instance.add_dynamic_partitions(checkpoint_partitions.name, keys)
    done = set() if every_partition else _materialized_partitions(instance)
    # A partition set aside as damaged is extracted again, although Dagster saw it materialized.
    done -= {partition_key(*key) for key in damaged_partitions(settings.paths.lake)}
    todo = {key for key in keys if key not in done}
    return contiguous_ranges(instance.get_dynamic_partitions(checkpoint_partitions.name), todo)


def contiguous_ranges(order: list[str], wanted: set[str]) -> list[tuple[str, str]]:
    """(first, last) of each maximal run of consecutive keys of `order` that are all wanted."""
    ranges, first, last = [], None, None
    for key in order:
        if key in wanted:
            first, last = first or key, key
        elif first is not None:
            ranges.append((first, last))
            first = None
    if first is not None:
        ranges.append((first, last))
    return ranges


def _materialized_partitions(instance: dg.DagsterInstance) -> set[str]:
    # The manifest is written last, so its materialization marks a complete partition.
    return set(instance.get_materialized_partitions(dg.AssetKey(MANIFESTS)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--all", action="store_true", help="re-extract partitions already materialized")
    args = parser.parse_args()
    with dg.DagsterInstance.get() as instance:
        materialize_all(instance, every_partition=args.all)
    paths = SeedconvSettings().load().paths
    print(f"\nReport page:      {paths.reports / 'report.html'}")
    print(f"DuckDB warehouse: {paths.published_duckdb}\nFigures:          {paths.reports}/<suite>/")


if __name__ == "__main__":
    main()
