-- BLiMP convergence per checkpoint (Fehlauer et al. 2025, fig. 2 left): E[conv] = the mean over
-- paradigms of each paradigm's E[conv] (mart_blimp_paradigm: the two-point KL per minimal pair,
-- averaged over the paradigm's pairs and ordered seed pairs), so each paradigm weighs the same;
-- a 1-sigma band across ordered seed pairs (the standard deviation over seed pairs of each
-- pair's mean KL, averaged the same way: over its paradigms of its mean over their minimal
-- pairs), as mart_expected_convergence's pair_conv_std; and BLiMP accuracy (each seed's mean
-- over paradigms of its paradigm accuracy) with its mean, minimum and maximum across seeds.
-- One row per (suite, size, step) with BLiMP scores: causal suites only.

with paradigms as (

    select * from {{ ref('mart_blimp_paradigm') }}

),

over_paradigms as (

    select
        suite,
        size,
        step,
        count(*) as n_paradigms,
        sum(n_pairs) as n_pairs,
        max(n_seed_pairs) as n_seed_pairs,
        avg(expected_conv) as expected_conv

    from paradigms
    group by suite, size, step

),

seed_pair_paradigms as (

    select suite, size, step, seed_a, seed_b, uid, avg(kl) as mean_kl
    from {{ ref('mart_blimp_pair_kl') }}
    group by suite, size, step, seed_a, seed_b, uid

),

seed_pairs as (

    select suite, size, step, seed_a, seed_b, avg(mean_kl) as mean_kl
    from seed_pair_paradigms
    group by suite, size, step, seed_a, seed_b

),

over_seed_pairs as (

    select suite, size, step, stddev_samp(-mean_kl) as pair_conv_std
    from seed_pairs
    group by suite, size, step

),

accuracy as (

    select
        suite,
        size,
        step,
        avg(macro_accuracy) as accuracy,
        min(macro_accuracy) as accuracy_min,
        max(macro_accuracy) as accuracy_max,
        stddev_samp(macro_accuracy) as accuracy_seed_std

    from {{ ref('mart_blimp_accuracy') }}
    group by suite, size, step

),

checkpoints as (

    select suite, size, step, n_params, n_seeds, blimp_set_hash from {{ ref('stg_checkpoints') }}

)

select
    checkpoints.suite,
    checkpoints.size,
    checkpoints.step,
    checkpoints.n_params,
    checkpoints.n_seeds,
    checkpoints.blimp_set_hash,
    over_paradigms.n_paradigms,
    over_paradigms.n_pairs,
    over_paradigms.n_seed_pairs,
    over_paradigms.expected_conv,
    over_seed_pairs.pair_conv_std,
    over_paradigms.expected_conv - over_seed_pairs.pair_conv_std as band_low,
    over_paradigms.expected_conv + over_seed_pairs.pair_conv_std as band_high,
    -over_paradigms.expected_conv as expected_kl,
    accuracy.accuracy,
    accuracy.accuracy_min,
    accuracy.accuracy_max,
    accuracy.accuracy_seed_std

from over_paradigms
inner join checkpoints
    on over_paradigms.suite = checkpoints.suite
    and over_paradigms.size = checkpoints.size
    and over_paradigms.step = checkpoints.step
inner join accuracy
    on over_paradigms.suite = accuracy.suite
    and over_paradigms.size = accuracy.size
    and over_paradigms.step = accuracy.step
left join over_seed_pairs
    on over_paradigms.suite = over_seed_pairs.suite
    and over_paradigms.size = over_seed_pairs.size
    and over_paradigms.step = over_seed_pairs.step
