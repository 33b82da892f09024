"""The pieces of the distributed extraction one at a time, without a cluster: the backfill policy
and executor a [cluster] section selects, the schedule waiting for extraction runs, and a retried
run keeping what it committed. tests/orchestration/test_distributed.py runs them together."""

from __future__ import annotations

import dagster as dg

from extract import pipeline
from extract.config import ClusterConfig
from extract.lake.checks import MANIFESTS
from extract.lake.partition_store import read_manifest
from extract.lake.tables import checkpoint_dir
from orchestration.defs.checkpoint_extraction import backfill_policy
from orchestration.defs.executor import executor
from orchestration.defs.schedules import extraction_in_flight, refresh_warehouse
from orchestration.defs.sensors import extraction_job, extraction_requests
from tests.helpers.micro import MICRO_CONFIG


def test_one_machine_runs_a_backfill_as_one_run_a_cluster_splits_it():
    assert backfill_policy(ClusterConfig()) == dg.BackfillPolicy.single_run()
    split = backfill_policy(ClusterConfig(scheduler="tcp://10.0.0.1:8786", partitions_per_run=4))
    assert split == dg.BackfillPolicy.multi_run(max_partitions_per_run=4)


def test_a_scheduler_address_puts_every_step_on_its_dask_workers(tmp_path, monkeypatch):
    config = tmp_path / "seedconv.toml"
    config.write_text(MICRO_CONFIG)
    monkeypatch.setenv("SEEDCONV_CONFIG", str(config))
    assert executor().executor is None  # Dagster's default: this machine

    config.write_text(MICRO_CONFIG + '[cluster]\nscheduler = "tcp://10.0.0.1:8786"\n')
    chosen = executor().executor
    assert chosen.name == "dask_workers"
    assert chosen.apply_config_mapping({}).value == {"config": {"address": "tcp://10.0.0.1:8786"}}


def _started(instance: dg.DagsterInstance, job_name: str, assets: set[str] | None) -> dg.DagsterRun:
    selection = frozenset(dg.AssetKey(name) for name in assets) if assets is not None else None
    run = dg.DagsterRun(job_name=job_name, status=dg.DagsterRunStatus.STARTED, asset_selection=selection)
    return instance.add_run(run)


def test_the_warehouse_waits_for_extraction_runs_in_flight(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        assert not extraction_in_flight(instance)
        _started(instance, "__ASSET_JOB", {"mart_expected_convergence"})  # a warehouse run is no reason
        assert not extraction_in_flight(instance)

        backfill_range = _started(instance, "__ASSET_JOB", {MANIFESTS, "token_stats"})
        assert extraction_in_flight(instance)
        # An extraction has landed since the last build, yet the schedule waits for the rest.
        instance.report_runless_asset_event(dg.AssetMaterialization(MANIFESTS, partition="micro|a|step0"))
        assert isinstance(refresh_warehouse(dg.build_schedule_context(instance=instance)), dg.SkipReason)

        instance.report_run_failed(backfill_range)
        assert not extraction_in_flight(instance)
        assert isinstance(refresh_warehouse(dg.build_schedule_context(instance=instance)), dg.RunRequest)

        _started(instance, extraction_job.name, None)  # the sensor's request: the whole job
        assert extraction_in_flight(instance)


def test_a_retried_run_keeps_the_checkpoints_it_committed(warehouse_copy):
    settings = warehouse_copy()
    lake, partitions = settings.paths.lake, [("a", 1), ("a", 2)]
    list(pipeline.extract_checkpoints(settings, "micro", partitions[:1], run_id="run-1"))

    assert pipeline.committed_by_run(lake, "micro", partitions, "run-1") == {("a", 1)}
    assert pipeline.committed_by_run(lake, "micro", partitions, "run-2") == set()  # a new run redoes it
    manifest = read_manifest(checkpoint_dir(lake, "micro", "a", 1))
    assert manifest["extraction_run"] == "run-1" and manifest["host"]

    list(pipeline.extract_checkpoints(settings, "micro", partitions[:1]))  # outside Dagster: no run
    assert read_manifest(checkpoint_dir(lake, "micro", "a", 1))["extraction_run"] is None
    assert pipeline.committed_by_run(lake, "micro", partitions, "run-1") == set()


def test_the_sensor_requests_new_checkpoints_in_ranges_on_a_cluster():
    keys = [f"mini|s|step{step}" for step in (0, 1, 2, 4, 8)]
    alone = extraction_requests(keys, per_run=1)
    assert [request.partition_key for request in alone] == keys and len({r.run_key for r in alone}) == 5
    ranges = extraction_requests(keys, per_run=2)
    bounds = [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"]) for r in ranges
    ]
    assert bounds == [(keys[0], keys[1]), (keys[2], keys[3]), (keys[4], keys[4])]
    assert len({request.run_key for request in ranges}) == 3  # each range requested once
