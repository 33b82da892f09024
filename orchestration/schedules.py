"""The schedule that rebuilds the warehouse and the report when new extractions have landed."""


import dagster as dg

from orchestration.analysis import loglik_analysis, regression_coefficients
from orchestration.reports import figure_assets, report_page, token_rankings_table
from orchestration.warehouse import published_warehouse, warehouse_models

warehouse_job = dg.define_asset_job(
    "warehouse_job",
    selection=dg.AssetSelection.assets(
        warehouse_models,
        regression_coefficients,
        loglik_analysis,
        published_warehouse,
        *figure_assets,
        token_rankings_table,
        report_page,
    ),
)


def extraction_is_newer(last_extraction: float | None, last_build: float | None) -> bool:
    return last_extraction is not None and (last_build is None or last_extraction > last_build)


def _latest_timestamp(instance: dg.DagsterInstance, key: dg.AssetKey) -> float | None:
    event = instance.get_latest_materialization_event(key)
    return event.timestamp if event else None


@dg.schedule(job=warehouse_job, cron_schedule="*/15 * * * *", default_status=dg.DefaultScheduleStatus.RUNNING)
def refresh_warehouse(context: dg.ScheduleEvaluationContext):
    """Every 15 minutes: dbt build, regression, publish and report, if any checkpoint was extracted since."""
    instance = context.instance
    if not extraction_is_newer(
        _latest_timestamp(instance, dg.AssetKey("checkpoint_manifests")),
        _latest_timestamp(instance, published_warehouse.key),
    ):
        return dg.SkipReason("no extraction since the last warehouse build")
    return dg.RunRequest()
