"""The schedule that rebuilds the warehouse and the report when new extractions have landed."""

import dagster as dg

from extract.lake.checks import MANIFESTS
from orchestration.defs.dbt_warehouse import published_warehouse
from orchestration.defs.sensors import extraction_job

# Everything built from the lake: the dbt models, the Python analyses, the published copy, the
# figures and the report. Selected by group, so a new mart or figure joins without an edit here.
UPSTREAM_GROUPS = ("inputs", "extraction")
warehouse_job = dg.define_asset_job(
    "warehouse_job", selection=dg.AssetSelection.all() - dg.AssetSelection.groups(*UPSTREAM_GROUPS)
)


def extraction_is_newer(last_extraction: float | None, last_build: float | None) -> bool:
    return last_extraction is not None and (last_build is None or last_extraction > last_build)


IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def extraction_in_flight(instance: dg.DagsterInstance) -> bool:
    """Whether an extraction run is queued or running (a backfill's ranges on a cluster, a
    sensor's request): the warehouse is built once they have ended, not between them."""
    manifests = dg.AssetKey(MANIFESTS)
    runs = instance.get_runs(dg.RunsFilter(statuses=IN_FLIGHT))
    # A backfill's run names its assets; the sensor's runs are of extraction_job, whole.
    return any(manifests in (run.asset_selection or ()) or run.job_name == extraction_job.name for run in runs)


def _latest_timestamp(instance: dg.DagsterInstance, key: dg.AssetKey) -> float | None:
    event = instance.get_latest_materialization_event(key)
    return event.timestamp if event else None


@dg.schedule(job=warehouse_job, cron_schedule="*/15 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING)
def refresh_warehouse(context: dg.ScheduleEvaluationContext):
    """Every 15 minutes: dbt build, regression, publish and report, if any checkpoint was extracted
    since and no extraction is under way."""
    instance = context.instance
    if extraction_in_flight(instance):
        return dg.SkipReason("extraction runs are under way: the warehouse is built after them")
    if not extraction_is_newer(
        _latest_timestamp(instance, dg.AssetKey(MANIFESTS)),
        _latest_timestamp(instance, published_warehouse.key),
    ):
        return dg.SkipReason("no extraction since the last warehouse build")
    return dg.RunRequest()
