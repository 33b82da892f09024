-- BLiMP accuracy per seed and checkpoint: the share of minimal pairs whose good sentence the
-- seed finds the more probable, over all pairs (each pair weighs the same) and as the mean of
-- its per-paradigm accuracies (each paradigm weighs the same; equal when every paradigm has as
-- many pairs). One row per (suite, size, step, seed).

with per_paradigm as (

    select
        suite, size, step, seed, uid,
        count(*) as n_pairs,
        sum(cast(correct as integer)) as n_correct
    from {{ ref('int_blimp_seed_scores') }}
    group by suite, size, step, seed, uid

),

checkpoints as (

    select suite, size, step, n_params from {{ ref('stg_checkpoints') }}

)

select
    per_paradigm.suite,
    per_paradigm.size,
    per_paradigm.step,
    checkpoints.n_params,
    per_paradigm.seed,
    sum(per_paradigm.n_pairs) as n_pairs,
    count(*) as n_paradigms,
    sum(per_paradigm.n_correct) / sum(per_paradigm.n_pairs) as accuracy,
    avg(per_paradigm.n_correct / per_paradigm.n_pairs) as macro_accuracy

from per_paradigm
inner join checkpoints
    on per_paradigm.suite = checkpoints.suite
    and per_paradigm.size = checkpoints.size
    and per_paradigm.step = checkpoints.step
group by per_paradigm.suite, per_paradigm.size, per_paradigm.step, checkpoints.n_params, per_paradigm.seed
