"""The sensor that notices new checkpoints (local step folders, hub revisions) and requests their extraction.

A step is requested once it is complete (`extract.sources.suites.complete_steps`): every seed
of the suite has its checkpoint, or lacks it for good: known missing (a hub suite's built-in
list), or its run (a local folder, a hub repository's branches) already has a later step. A seed
with neither may still be training or uploading, so the step waits for it rather than being
extracted without it and never again. At least two seeds must have the step. Each key is
requested once; the partition then compares the seeds that have the step, and its manifest
names the missing ones.
"""

import time

import dagster as dg

from extract.config import Settings
from extract.sources.suites import LocalSuite, SuiteUnavailable, open_suite, partition_key
from orchestration.defs.partitions import checkpoint_partitions
from orchestration.defs.resources import SeedconvSettings

extraction_job = dg.define_asset_job("extraction_job", selection=dg.AssetSelection.groups("extraction"))


def local_checkpoint_keys(settings: Settings) -> list[str]:
    """Partition keys of every complete checkpoint in the local suites (each seed has the step
    or has later steps already)."""
    keys = []
    for config in settings.all_suites:
        suite = open_suite(config)
        if isinstance(suite, LocalSuite):
            keys += [partition_key(suite.name, size, step) for size, step in suite.partitions()]
    return keys


def hub_checkpoint_keys(settings: Settings, log=lambda message: None) -> list[str]:
    """Partition keys of the complete revisions of a hub suite (each seed has published the step,
    is known to lack it, or has published later steps), for the hub suites configured with no
    `steps` (which follow what the Hub publishes). A suite whose revisions cannot be listed
    (offline) is skipped with a log line."""
    keys = []
    for config in settings.all_suites:
        if config.kind != "hub" or config.steps:
            continue
        suite = open_suite(config)
        try:
            for size in suite.sizes():
                keys += [partition_key(suite.name, size, step) for step in suite.published_steps(size)]
        except SuiteUnavailable as error:
            log(f"{suite.name}: new revisions not checked: {error}")
    return keys


def new_checkpoint_requests(found: list[str], known: set[str]) -> list[str]:
    """Keys found on disk that Dagster does not know yet, in discovery order."""
    return [key for key in found if key not in known]


RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def extraction_requests(keys: list[str], per_run: int) -> list[dg.RunRequest]:
    """One run per new checkpoint; on a cluster (`per_run` > 1), runs of `per_run` consecutive new
    checkpoints, as a backfill splits them. A sweep found at once (a suite just configured,
    checkpoints copied in) then builds each size's skeletons once per range, not once per
    checkpoint. The new keys are appended to the partitions in this order, so each range holds
    exactly its keys."""
    if per_run <= 1:
        return [dg.RunRequest(partition_key=key, run_key=key) for key in keys]
    ranges = [keys[start : start + per_run] for start in range(0, len(keys), per_run)]
    return [
        dg.RunRequest(run_key=f"{chunk[0]}..{chunk[-1]}", tags={RANGE_START: chunk[0], RANGE_END: chunk[-1]})
        for chunk in ranges
    ]


# Local folders are listed every minute; the Hub every 15 minutes, since listing costs one API
# call per (size, seed) (50 for PolyPythia) and a training run pushes checkpoints hours apart.
HUB_INTERVAL_S = 15 * 60


def hub_is_due(cursor: str | None, now: float, interval_s: float = HUB_INTERVAL_S) -> bool:
    """Whether the Hub's revisions should be listed now; the cursor is the time they last were."""
    return cursor is None or now - float(cursor) >= interval_s


@dg.sensor(job=extraction_job, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def new_checkpoints(context: dg.SensorEvaluationContext, seedconv: SeedconvSettings) -> dg.SensorResult:
    """Adds a partition for each new complete checkpoint (a local suite's new step folders, a hub
    suite's new revisions) and requests its extraction (in ranges on a cluster)."""
    settings = seedconv.load()
    found, cursor, now = local_checkpoint_keys(settings), context.cursor, time.time()
    if hub_is_due(cursor, now):
        found += hub_checkpoint_keys(settings, log=context.log.info)
        cursor = str(now)
    keys = new_checkpoint_requests(found, set(context.instance.get_dynamic_partitions(checkpoint_partitions.name)))
    if not keys:
        return dg.SensorResult(skip_reason="no new checkpoints", cursor=cursor)
    per_run = settings.cluster.partitions_per_run if settings.cluster.distributed else 1
    return dg.SensorResult(
        run_requests=extraction_requests(keys, per_run),
        dynamic_partitions_requests=[checkpoint_partitions.build_add_request(keys)],
        cursor=cursor,
    )
