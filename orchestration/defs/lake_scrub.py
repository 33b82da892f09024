"""The daily scrub: every committed partition re-read against its manifest's sizes and checksums;
a damaged one is set aside and extracted again (the sensor `repair_damaged`)."""

import dagster as dg

from extract.lake.repair import damaged_partitions, guard
from extract.sources.suites import partition_key
from orchestration.defs.partitions import checkpoint_partitions
from orchestration.defs.resources import SeedconvSettings


@dg.op
def scrub_lake(context: dg.OpExecutionContext, seedconv: SeedconvSettings) -> None:
    """Reads every byte of every committed partition; sets the damaged ones aside and fails naming them."""
    damaged = guard(seedconv.load().paths.lake, deep=True)
    if damaged:
        raise dg.Failure(
            description=f"{len(damaged)} damaged partitions set aside; repair_damaged extracts them again",
            metadata={
                "damaged": dg.MetadataValue.md(
                    "\n".join(f"- `{partition_key(*key)}`: {'; '.join(problems)}" for key, problems in damaged.items())
                )
            },
        )
    context.log.info("no damaged partition")


@dg.job(description="Re-read the lake against its manifests; set damaged partitions aside (make verify reads only).")
def scrub_job():
    scrub_lake()


# Daily, at night: the whole lake is read (docs/storage.md has the measured rate).
scrub_schedule = dg.ScheduleDefinition(
    name="scrub_schedule", job=scrub_job, cron_schedule="0 3 * * *", default_status=dg.DefaultScheduleStatus.RUNNING
)


@dg.sensor(job_name="extraction_job", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def repair_damaged(context: dg.SensorEvaluationContext, seedconv: SeedconvSettings) -> dg.SensorResult:
    """Requests the extraction of each partition set aside as damaged and not extracted since; one
    request per damage found (its time is in the run key)."""
    damaged = damaged_partitions(seedconv.load().paths.lake)
    if not damaged:
        return dg.SensorResult(skip_reason="no damaged partition")
    requests = [
        dg.RunRequest(partition_key=partition_key(*key), run_key=f"{partition_key(*key)}@{reason['found_at']}")
        for key, reason in damaged.items()
    ]
    known = set(context.instance.get_dynamic_partitions(checkpoint_partitions.name))
    unknown = [request.partition_key for request in requests if request.partition_key not in known]
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[checkpoint_partitions.build_add_request(unknown)] if unknown else [],
    )
