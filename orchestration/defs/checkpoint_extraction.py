"""The extraction asset: one dynamic partition per checkpoint, all seeds together."""

import dagster as dg

from extract import pipeline
from extract.config import ClusterConfig, load_settings
from extract.lake.checks import CHECKS, MANIFESTS, CheckOutcome
from extract.progress import Progress
from extract.registry import EXTRACTION_INPUTS, PARTITION_TABLES
from extract.sources.suites import parse_partition_key, partition_key
from orchestration.dask_steps import GPU_SLOT_TAG
from orchestration.defs.inputs import mini_suite
from orchestration.defs.partitions import checkpoint_partitions
from orchestration.defs.resources import SeedconvSettings


def backfill_policy(cluster: ClusterConfig) -> dg.BackfillPolicy:
    """On one machine, a backfill of many checkpoints runs as one process: model skeletons are
    built once per size and the next checkpoint is read while the current one computes. On a
    cluster, it splits into runs of `partitions_per_run` contiguous checkpoints (each still reusing
    skeletons and reading ahead), which the run queue starts as the `extraction` pool allows."""
    if cluster.distributed:
        return dg.BackfillPolicy.multi_run(max_partitions_per_run=cluster.partitions_per_run)
    return dg.BackfillPolicy.single_run()


@dg.multi_asset(
    name="checkpoint_extraction",
    group_name="extraction",
    partitions_def=checkpoint_partitions,
    # The tables of one checkpoint partition, as the registry declares them, written together from
    # one read of every seed; then the manifests.
    specs=[
        dg.AssetSpec(
            name,
            description=description,
            deps=[mini_suite, *(table.name for table in EXTRACTION_INPUTS)],
            kinds={"pytorch", "parquet"},
            # Materialized partition by partition: a quarantined checkpoint is left out (and
            # marked failed), the others of the same run are materialized.
            skippable=True,
        )
        for name, description in [
            *((table.name, table.description) for table in PARTITION_TABLES),
            (MANIFESTS, "Per partition: inputs' identities, row counts, timings."),
        ]
    ],
    # Read back from the lake after every run: what is stored, not what was meant to be.
    check_specs=[
        dg.AssetCheckSpec(name, asset=asset, description=(check.__doc__ or "").split("\n\n")[0])
        for asset, checks in CHECKS.items()
        for name, check in checks.items()
    ],
    # One extraction per device: each holds every seed's model and saturates it. The pool's limit
    # is 1 on one machine and `[cluster] workers` on a cluster, where each step also takes a Dask
    # worker's GPU slot (ignored by the default executor).
    pool="extraction",
    op_tags=GPU_SLOT_TAG,
    # Read when the definitions load (orchestration/defs/executor.py says why that is safe).
    backfill_policy=backfill_policy(load_settings().cluster),
)
def checkpoint_extraction(context: dg.AssetExecutionContext, seedconv: SeedconvSettings):
    """Every seed of each (suite, size, step) in the run: token statistics, exact pairwise KL, ICL scores,
    activation fingerprints, weight statistics, log-likelihood vectors and BLiMP scores (the last
    three and ICL for causal suites only; a masked LM's targets are predicted masked)."""
    settings = seedconv.load()
    quarantined = {}
    progress = Progress(total=len(context.partition_keys))
    # A retry of this run (Dagster's, or Dask's when a worker died) keeps what an earlier attempt
    # committed: each checkpoint is committed once per run, however often the run is attempted.
    run = context.run.tags.get(ROOT_RUN_TAG, context.run.run_id)
    for suite, partitions in partitions_by_suite(context.partition_keys).items():
        kept = pipeline.committed_by_run(settings.paths.lake, suite, partitions, run)
        for size, step in kept:
            context.log.info(progress.finished(partition_key(suite, size, step), 0, "kept from an earlier attempt"))
        todo = [partition for partition in partitions if partition not in kept]
        for manifest in pipeline.extract_checkpoints(settings, suite, todo, run_id=run):
            key = partition_key(suite, manifest["size"], manifest["step"])
            if "quarantined" in manifest:
                context.log.error(manifest["reason"])
                context.log.info(progress.finished(key, 0, "quarantined"))
                quarantined[key] = manifest["reason"]
                continue
            metadata = partition_metadata(manifest)
            context.log.info(progress.finished(key, manifest["n_tokens"] * len(manifest["seeds"])))
            for asset, values in metadata.items():
                context.log_event(dg.AssetMaterialization(asset_key=asset, partition=key, metadata=values))
    partitions = [parse_partition_key(key) for key in context.partition_keys]
    for asset, checks in CHECKS.items():
        for name, check in checks.items():
            yield check_result(asset, name, check(settings.paths.lake, partitions))
    if quarantined:
        # Failing the run after the others are stored marks exactly these partitions failed in
        # the UI; the check `token_stats:logits_finite` says why.
        raise dg.Failure(
            description=f"{len(quarantined)} of {len(partitions)} partitions quarantined: NaN or infinite outputs",
            metadata={QUARANTINED: dg.MetadataValue.md("\n".join(f"- {r}" for r in quarantined.values()))},
        )


def check_result(asset: str, name: str, outcome: CheckOutcome) -> dg.AssetCheckResult:
    """One check over the run's partitions; the failing ones and why in its metadata."""
    metadata: dict = {"partitions_checked": outcome.checked, **outcome.figures}
    if outcome.failures:
        metadata["failing_partitions"] = dg.MetadataValue.md(
            "\n".join(f"- `{key}`: {reason}" for key, reason in sorted(outcome.failures.items()))
        )
    return dg.AssetCheckResult(
        asset_key=asset, check_name=name, passed=outcome.passed, severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
    )  # fmt: skip


# Dagster's tag naming the first run of a run and its retries.
ROOT_RUN_TAG = "dagster/root_run_id"
QUARANTINED = "quarantined_partitions"  # the Failure's metadata key, read by orchestration.materialize


def partitions_by_suite(keys: list[str]) -> dict[str, list[tuple[str, int]]]:
    """Partition keys grouped by suite, each suite's (size, step) in the keys' order."""
    grouped: dict[str, list[tuple[str, int]]] = {}
    for key in keys:
        suite, size, step = parse_partition_key(key)
        grouped.setdefault(suite, []).append((size, step))
    return grouped


def partition_metadata(manifest: dict) -> dict[str, dict]:
    """Each asset's materialization metadata for one partition: rows written, and for the
    manifests, speed and inputs."""
    common = {"n_params": manifest["n_params"], "seeds": ", ".join(str(s) for s in manifest["seeds"])}
    if manifest.get("seeds_missing"):
        # A seed without a checkpoint at this step (extract/sources/suites.py): compared without it.
        common["seeds_missing"] = ", ".join(str(s) for s in manifest["seeds_missing"])
    compute = manifest["timings_s"]["compute"]
    return {
        # A masked LM's partition has no ICL, log-likelihood or BLiMP table: 0 rows, not missing.
        **{table.name: {**common, "rows": manifest["rows"].get(table.name, 0)} for table in PARTITION_TABLES},
        MANIFESTS: {
            **common,
            "device": manifest["device"],
            "forward_dtype": manifest["forward_dtype"],
            "eval_set_hash": manifest["eval_set_hash"],
            "seconds": round(compute, 2),
            # evaluation tokens times seeds, per second of compute, as benchmarks/extraction.py counts
            "tokens_per_second": round(manifest["n_tokens"] * len(manifest["seeds"]) / max(compute, 1e-9), 1),
        },
    }
