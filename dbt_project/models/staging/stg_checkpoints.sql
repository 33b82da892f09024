-- One row per complete checkpoint partition: a partition is complete when its manifest exists.
-- The partition's identity is its path (the same hive keys the Parquet files carry); the
-- manifest's own suite/size/step are kept beside it and checked by
-- assert_manifest_matches_partition.
--
-- A table, not a view: the snapshot of complete partitions every model of one build works
-- from (a partition landing mid-build waits for the next), read once instead of once per use;
-- manifest_digest tells the incremental models which partitions were rewritten.

{{ config(materialized='table') }}

with source as (

    select * from {{ source('lake', 'checkpoint_manifests') }}

),

located as (

    select
        regexp_extract(
            replace(filename, '\', '/'),
            'suite=([^/]+)/size=([^/]+)/step=([^/]+)/manifest\.json$',
            ['suite', 'size', 'step']
        ) as partition_path,
        *

    from source

),

renamed as (

    select
        partition_path.suite as suite,
        partition_path.size as size,
        cast(partition_path.step as bigint) as step,
        n_params,
        len(seeds) as n_seeds,
        list_sort(seeds) as seeds,
        -- ordered pairs of distinct seeds: pair_kl's rows per token
        len(seeds) * (len(seeds) - 1) as n_pairs,
        -- seeds of the suite without a checkpoint at this step; none in manifests written before
        -- a partition could go without a seed
        list_sort(coalesce(seeds_missing, [])) as seeds_missing,
        len(coalesce(seeds_missing, [])) as n_seeds_missing,
        -- the step the size trains to, as the suite said at extraction; NULL when it did not
        final_step,
        eval_set,
        eval_set_hash,
        top_k,
        device,
        code_version,
        -- the machine and the orchestrator's run that wrote it; NULL in manifests written before
        -- extraction could be distributed, and for extractions run outside Dagster
        host,
        extraction_run,
        cast(created_at as timestamptz) as created_at,
        "rows".token_stats as token_stats_rows,
        "rows".pair_kl as pair_kl_rows,
        "rows".icl_scores as icl_scores_rows,
        -- NULL in manifests written before fingerprints, weight statistics and log-likelihoods
        "rows".fingerprints as fingerprints_rows,
        "rows".weight_stats as weight_stats_rows,
        "rows".weight_sketches as weight_sketches_rows,
        "rows".loglik as loglik_rows,
        -- NULL in manifests written before BLiMP, and in a masked suite's (no BLiMP scores)
        "rows".blimp_scores as blimp_scores_rows,
        probe_set_hash,
        loglik_set_hash,
        weight_sketch_dim,
        blimp_set_hash,
        -- manifests written before masked suites existed are all of causal LMs
        coalesce(objective, 'causal') as objective,
        timings_s,
        checkpoints,
        located.suite as manifest_suite,
        located.size as manifest_size,
        located.step as manifest_step,
        filename as manifest_path,
        -- the manifest's exact bytes: a rerun of the partition writes a new created_at
        md5(content) as manifest_digest

    from located

)

select * from renamed
