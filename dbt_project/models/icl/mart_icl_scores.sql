-- ICL score per seed (Fehlauer et al. 2025, after Olsson et al. 2022): the mean over sequences
-- of the surprisal of the token at target_position given short_context tokens before it minus
-- given long_context tokens before it. Positive: the model uses the longer context.
-- The contexts are part of the grouping: a partition that mixed settings would show twice per
-- seed and fail the key test. Incremental by partition (macros/partitions.sql): only the new
-- partitions' icl_scores files are read.

{{ config(
    materialized='incremental',
    incremental_strategy='replace_partitions',
    partition_inputs=['manifest'],
    on_schema_change='sync_all_columns',
    post_hook="{{ record_partitions() }}",
) }}

{% set partitions = partition_plan().todo %}
{#- a full build reads every complete partition: no filter needed -#}
{% set in_partitions = partitions_predicate(partitions) if is_incremental() else 'true' %}

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}
    where {{ in_partitions }}

),

icl_scores as (

    select * from {{ ref('stg_icl_scores') }}
    where {{ in_partitions }}

),

per_seed as (

    select
        suite,
        size,
        step,
        seed,
        short_context,
        long_context,
        target_position,
        count(*) as n_sequences,
        avg(surprisal_short - surprisal_long) as icl_score,
        stddev_samp(surprisal_short - surprisal_long) / sqrt(count(*)) as icl_score_se,
        avg(surprisal_short) as mean_surprisal_short,
        avg(surprisal_long) as mean_surprisal_long

    from icl_scores
    group by suite, size, step, seed, short_context, long_context, target_position

),

final as (

    select
        per_seed.suite,
        per_seed.size,
        per_seed.step,
        per_seed.seed,
        checkpoints.n_params,
        per_seed.short_context,
        per_seed.long_context,
        per_seed.target_position,
        per_seed.n_sequences,
        per_seed.icl_score,
        per_seed.icl_score_se,
        per_seed.mean_surprisal_short,
        per_seed.mean_surprisal_long

    from per_seed
    inner join checkpoints
        on per_seed.suite = checkpoints.suite
        and per_seed.size = checkpoints.size
        and per_seed.step = checkpoints.step

)

select * from final
