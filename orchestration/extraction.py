"""The extraction asset: one dynamic partition per checkpoint, all seeds together."""


import dagster as dg

from extract import pipeline
from extract.suites import parse_partition_key
from orchestration.inputs import mini_suite
from orchestration.partitions import checkpoint_partitions
from orchestration.resources import SeedconvSettings


@dg.multi_asset(
    name="checkpoint_extraction",
    group_name="extraction",
    partitions_def=checkpoint_partitions,
    # The tables of one checkpoint partition, written together from one read of every seed.
    specs=[
        dg.AssetSpec(
            key,
            description=description,
            deps=[mini_suite, "eval_tokens", "unigram", "icl_sequences"],
            kinds={"pytorch", "parquet"},
        )
        for key, description in [
            ("token_stats", "Per token and seed: surprisal, entropy, KL to uniform and unigram, top-k."),
            ("pair_kl", "Per token and ordered seed pair: exact KL(p_a || p_b), fp32."),
            ("icl_scores", "Per seed and sequence: surprisal of the target token given a short and a long context."),
            ("checkpoint_manifests", "Per partition: inputs' identities, row counts, timings."),
        ]
    ],
    # One extraction at a time: each holds every seed's model and saturates the device.
    pool="extraction",
)
def checkpoint_extraction(context: dg.AssetExecutionContext, seedconv: SeedconvSettings):
    """Every seed of one (suite, size, step): token statistics, exact pairwise KL and ICL scores."""
    suite, size, step = parse_partition_key(context.partition_key)
    manifest = pipeline.extract_checkpoint(seedconv.load(), suite, size, step)
    timings = manifest["timings_s"]
    n_tokens = manifest["rows"]["token_stats"] // len(manifest["seeds"])
    common = {"n_params": manifest["n_params"], "seeds": ", ".join(map(str, manifest["seeds"]))}
    yield dg.MaterializeResult(asset_key="token_stats", metadata={**common, "rows": manifest["rows"]["token_stats"]})
    yield dg.MaterializeResult(asset_key="pair_kl", metadata={**common, "rows": manifest["rows"]["pair_kl"]})
    yield dg.MaterializeResult(
        asset_key="icl_scores",
        metadata={**common, "rows": manifest["rows"]["icl_scores"], "seconds": round(timings["icl"], 2)},
    )
    yield dg.MaterializeResult(
        asset_key="checkpoint_manifests",
        metadata={
            **common,
            "device": manifest["device"],
            "eval_set_hash": manifest["eval_set_hash"],
            "seconds": round(timings["total"], 2),
            "tokens_per_second": round(n_tokens / max(timings["forward"] + timings["statistics"], 1e-9), 1),
        },
    )
