-- A manifest describes the partition it sits in: its suite/size/step equal the path's, and its
-- row counts equal the rows of the partition's Parquet files (icl_scores where the manifest
-- counts them: manifests written before ICL was extracted do not).

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

token_stats_rows as (

    select suite, size, step, count(*) as n_rows
    from {{ ref('stg_token_stats') }}
    group by suite, size, step

),

pair_kl_rows as (

    select suite, size, step, count(*) as n_rows
    from {{ ref('stg_pair_kl') }}
    group by suite, size, step

),

icl_scores_rows as (

    select suite, size, step, count(*) as n_rows
    from {{ ref('stg_icl_scores') }}
    group by suite, size, step

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
    coalesce(token_stats_rows.n_rows, 0) as token_stats_rows_found,
    checkpoints.pair_kl_rows,
    coalesce(pair_kl_rows.n_rows, 0) as pair_kl_rows_found,
    checkpoints.icl_scores_rows,
    coalesce(icl_scores_rows.n_rows, 0) as icl_scores_rows_found

from checkpoints
left join token_stats_rows
    on checkpoints.suite = token_stats_rows.suite
    and checkpoints.size = token_stats_rows.size
    and checkpoints.step = token_stats_rows.step
left join pair_kl_rows
    on checkpoints.suite = pair_kl_rows.suite
    and checkpoints.size = pair_kl_rows.size
    and checkpoints.step = pair_kl_rows.step
left join icl_scores_rows
    on checkpoints.suite = icl_scores_rows.suite
    and checkpoints.size = icl_scores_rows.size
    and checkpoints.step = icl_scores_rows.step
where checkpoints.manifest_suite is distinct from checkpoints.suite
    or checkpoints.manifest_size is distinct from checkpoints.size
    or checkpoints.manifest_step is distinct from checkpoints.step
    or checkpoints.token_stats_rows is distinct from coalesce(token_stats_rows.n_rows, 0)
    or checkpoints.pair_kl_rows is distinct from coalesce(pair_kl_rows.n_rows, 0)
    or (
        checkpoints.icl_scores_rows is not null
        and checkpoints.icl_scores_rows <> coalesce(icl_scores_rows.n_rows, 0)
    )
