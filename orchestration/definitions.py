"""Everything Dagster loads: `dagster dev -m orchestration.definitions`."""

import dagster as dg

from orchestration.analysis import loglik_analysis, regression_coefficients
from orchestration.extraction import checkpoint_extraction
from orchestration.inputs import brown_corpus, eval_set, mini_suite, pos_tagger, token_pos
from orchestration.reports import figure_assets, report_page, token_rankings_table
from orchestration.resources import SeedconvSettings
from orchestration.schedules import refresh_warehouse, warehouse_job
from orchestration.sensors import extraction_job, new_checkpoints
from orchestration.warehouse import dbt_resource, published_warehouse, warehouse_models

defs = dg.Definitions(
    assets=[
        brown_corpus,
        pos_tagger,
        mini_suite,
        eval_set,
        token_pos,
        checkpoint_extraction,
        warehouse_models,
        regression_coefficients,
        loglik_analysis,
        published_warehouse,
        *figure_assets,
        token_rankings_table,
        report_page,
    ],
    jobs=[extraction_job, warehouse_job],
    sensors=[new_checkpoints],
    schedules=[refresh_warehouse],
    resources={
        "seedconv": SeedconvSettings(),
        "dbt": dbt_resource,
    },
)
