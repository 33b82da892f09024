-- BLiMP per paradigm and checkpoint (Fehlauer et al. 2025): E[conv] = minus the mean two-point
-- KL over the paradigm's minimal pairs and every ordered pair of distinct seeds, the KL taken
-- per minimal pair first (mart_blimp_pair_kl), never from p(good) averaged over the paradigm;
-- its spread across minimal pairs; and BLiMP accuracy (the share of pairs whose good sentence
-- is the more probable), mean over seeds and its spread across seeds. Each minimal pair weighs
-- the same. One row per (suite, size, step, uid); the KL columns are NULL with a single seed.

with seed_scores as (

    select * from {{ ref('int_blimp_seed_scores') }}

),

per_pair as (

    -- each minimal pair's conv: -mean KL over ordered seed pairs
    select suite, size, step, uid, pair_index, count(*) as n_seed_pairs, avg(kl) as mean_kl
    from {{ ref('mart_blimp_pair_kl') }}
    group by suite, size, step, uid, pair_index

),

over_pairs as (

    select
        suite,
        size,
        step,
        uid,
        max(n_seed_pairs) as n_seed_pairs,
        avg(mean_kl) as expected_kl,
        stddev_samp(-mean_kl) as conv_std

    from per_pair
    group by suite, size, step, uid

),

per_seed as (

    select
        suite, size, step, uid, field, linguistics_term, seed,
        count(*) as n_pairs,
        avg(cast(correct as double)) as accuracy
    from seed_scores
    group by suite, size, step, uid, field, linguistics_term, seed

),

over_seeds as (

    select
        suite,
        size,
        step,
        uid,
        field,
        linguistics_term,
        count(*) as n_seeds,
        max(n_pairs) as n_pairs,
        avg(accuracy) as accuracy,
        stddev_samp(accuracy) as accuracy_seed_std

    from per_seed
    group by suite, size, step, uid, field, linguistics_term

),

checkpoints as (

    select suite, size, step, n_params from {{ ref('stg_checkpoints') }}

)

select
    over_seeds.suite,
    over_seeds.size,
    over_seeds.step,
    checkpoints.n_params,
    over_seeds.uid,
    over_seeds.field,
    over_seeds.linguistics_term,
    over_seeds.n_pairs,
    over_seeds.n_seeds,
    coalesce(over_pairs.n_seed_pairs, 0) as n_seed_pairs,
    -over_pairs.expected_kl as expected_conv,
    over_pairs.expected_kl,
    over_pairs.conv_std,
    over_seeds.accuracy,
    over_seeds.accuracy_seed_std

from over_seeds
inner join checkpoints
    on over_seeds.suite = checkpoints.suite
    and over_seeds.size = checkpoints.size
    and over_seeds.step = checkpoints.step
left join over_pairs
    on over_seeds.suite = over_pairs.suite
    and over_seeds.size = over_pairs.size
    and over_seeds.step = over_pairs.step
    and over_seeds.uid = over_pairs.uid
