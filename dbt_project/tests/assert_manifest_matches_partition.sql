-- A manifest describes the partition it sits in: its suite/size/step equal the path's, and its
-- row counts equal the rows of the partition's Parquet files (icl_scores, fingerprints,
-- weight_stats, weight_sketches, loglik and blimp_scores where the manifest counts them:
-- manifests written before those were extracted do not, nor do a masked suite's count the
-- tables a masked LM has none of), and every weight sketch has the manifest's
-- weight_sketch_dim.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

partition_checks as (

    -- rows of the partition's files, counted while they were read
    select * from {{ ref('int_partition_checks') }}

)

select
    checkpoints.manifest_path,
    checkpoints.suite,
    checkpoints.manifest_suite,
    checkpoints.size,
    checkpoints.manifest_size,
    checkpoints.step,
    checkpoints.manifest_step,
    checkpoints.token_stats_rows,
    coalesce(partition_checks.token_stats_rows, 0) as token_stats_rows_found,
    checkpoints.pair_kl_rows,
    coalesce(partition_checks.pair_kl_rows, 0) as pair_kl_rows_found,
    checkpoints.icl_scores_rows,
    coalesce(partition_checks.icl_scores_rows, 0) as icl_scores_rows_found,
    checkpoints.fingerprints_rows,
    coalesce(partition_checks.fingerprints_rows, 0) as fingerprints_rows_found,
    checkpoints.weight_stats_rows,
    coalesce(partition_checks.weight_stats_rows, 0) as weight_stats_rows_found,
    checkpoints.weight_sketches_rows,
    coalesce(partition_checks.weight_sketches_rows, 0) as weight_sketches_rows_found,
    checkpoints.loglik_rows,
    coalesce(partition_checks.loglik_rows, 0) as loglik_rows_found,
    checkpoints.blimp_scores_rows,
    coalesce(partition_checks.blimp_scores_rows, 0) as blimp_scores_rows_found,
    checkpoints.weight_sketch_dim,
    partition_checks.min_weight_sketch_dim,
    partition_checks.max_weight_sketch_dim

from checkpoints
left join partition_checks
    on checkpoints.suite = partition_checks.suite
    and checkpoints.size = partition_checks.size
    and checkpoints.step = partition_checks.step
where checkpoints.manifest_suite is distinct from checkpoints.suite
    or checkpoints.manifest_size is distinct from checkpoints.size
    or checkpoints.manifest_step is distinct from checkpoints.step
    or checkpoints.token_stats_rows is distinct from coalesce(partition_checks.token_stats_rows, 0)
    or checkpoints.pair_kl_rows is distinct from coalesce(partition_checks.pair_kl_rows, 0)
    or (
        checkpoints.icl_scores_rows is not null
        and checkpoints.icl_scores_rows <> coalesce(partition_checks.icl_scores_rows, 0)
    )
    or (
        checkpoints.fingerprints_rows is not null
        and checkpoints.fingerprints_rows <> coalesce(partition_checks.fingerprints_rows, 0)
    )
    or (
        checkpoints.weight_stats_rows is not null
        and checkpoints.weight_stats_rows <> coalesce(partition_checks.weight_stats_rows, 0)
    )
    or (
        checkpoints.weight_sketches_rows is not null
        and checkpoints.weight_sketches_rows <> coalesce(partition_checks.weight_sketches_rows, 0)
    )
    or (
        checkpoints.loglik_rows is not null
        and checkpoints.loglik_rows <> coalesce(partition_checks.loglik_rows, 0)
    )
    or (
        checkpoints.blimp_scores_rows is not null
        and checkpoints.blimp_scores_rows <> coalesce(partition_checks.blimp_scores_rows, 0)
    )
    or (
        checkpoints.weight_sketch_dim is not null
        and (
            partition_checks.min_weight_sketch_dim is distinct from checkpoints.weight_sketch_dim
            or partition_checks.max_weight_sketch_dim is distinct from checkpoints.weight_sketch_dim
        )
        and coalesce(partition_checks.weight_sketches_rows, 0) > 0
    )
