-- ICL score per seed (Fehlauer et al. 2025, after Olsson et al. 2022): the mean over sequences
-- of the surprisal of the token at target_position given short_context tokens before it minus
-- given long_context tokens before it. Positive: the model uses the longer context.
-- The contexts are part of the grouping: a partition that mixed settings would show twice per
-- seed and fail the key test.

with checkpoints as (

    select * from {{ ref('stg_checkpoints') }}

),

icl_scores as (

    select * from {{ ref('stg_icl_scores') }}

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
order by suite, n_params, step, seed
