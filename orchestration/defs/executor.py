"""Where a run's steps execute: on this machine (Dagster's default executor), or on the Dask
workers of `[cluster] scheduler` (docs/distributed.md).

Read when the definitions load, like the backfill policy of checkpoint_extraction: the daemon,
the webserver and every run worker load the same seedconv.toml ($SEEDCONV_CONFIG). In-process
runs (`make demo`, orchestration.materialize) execute in their own process whatever this says.
"""

import dagster as dg

from extract.config import load_settings
from orchestration.dask_steps import dask_workers_executor


@dg.definitions
def executor() -> dg.Definitions:
    cluster = load_settings().cluster
    if not cluster.distributed:
        return dg.Definitions()
    return dg.Definitions(executor=dask_workers_executor.configured({"address": cluster.scheduler}))
