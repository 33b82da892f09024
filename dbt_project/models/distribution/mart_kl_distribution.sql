-- Per checkpoint, over every ordered seed pair: the distribution of KL(p_a || p_b) over all
-- (context, pair) values (percentiles, maximum, mean), top-1 agreement with its standard error
-- across contexts and its range across pairs, delta_p over all (context, pair) values
-- (symmetric about 0, so its mean is 0 and its RMS and tails say how far the true token's
-- probability moves), and the mean over pairs of the per-pair surprisal correlations:
-- llama.cpp's KL-divergence statistics pooled over seed pairs (int_pair_distribution).
-- A table rebuilt whole. Users order by n_params, step.

with checkpoints as (

    select suite, size, step, n_params, n_seeds, n_seeds_missing from {{ ref('stg_checkpoints') }}

),

distribution as (

    select * from {{ ref('int_pair_distribution') }}

),

pooled as (

    select * from distribution where pooled

),

across_pairs as (

    select
        suite,
        size,
        step,
        min(top1_agreement) as top1_agreement_pair_min,
        max(top1_agreement) as top1_agreement_pair_max

    from distribution
    where not pooled
    group by suite, size, step

)

select
    pooled.suite,
    pooled.size,
    pooled.step,
    checkpoints.n_params,
    checkpoints.n_seeds,
    checkpoints.n_seeds_missing,
    pooled.n_pairs,
    pooled.* exclude (suite, size, step, pooled, n_pairs, seed_a, seed_b),
    across_pairs.top1_agreement_pair_min,
    across_pairs.top1_agreement_pair_max

from pooled
inner join checkpoints
    on pooled.suite = checkpoints.suite
    and pooled.size = checkpoints.size
    and pooled.step = checkpoints.step
inner join across_pairs
    on pooled.suite = across_pairs.suite
    and pooled.size = across_pairs.size
    and pooled.step = across_pairs.step
