-- McEntire (2026), Table 3: the fraction of training spent in each fingerprint regime, per size
-- and measure (comparison: fixed_gap, the paper's, or log_spaced). Per seed, the share of its
-- checkpoints in the measure that are in the regime, then the mean across seeds. As in the
-- paper, a measure's first checkpoint (nothing to compare it with, so no regime) counts in the
-- denominator: the three shares sum to less than 1, by share_unclassified. Cross-seed regime
-- agreement: the share of the measure's checkpoints where every seed is in the same regime,
-- over the same checkpoints (the first counts, and never agrees). One row per (suite, size,
-- comparison).

with similarity as (

    select * from {{ ref('int_fingerprint_similarity') }}

),

agreement as (

    select * from {{ ref('int_regime_checkpoints') }}

),

per_seed as (

    select
        suite,
        size,
        comparison,
        seed,
        count(*) as n_checkpoints,
        count(*) filter (where regime = 'chaotic') / count(*) as share_chaotic,
        count(*) filter (where regime = 'transition') / count(*) as share_transition,
        count(*) filter (where regime = 'stable') / count(*) as share_stable,
        count(*) filter (where regime is null) / count(*) as share_unclassified

    from similarity
    group by suite, size, comparison, seed

),

over_seeds as (

    select
        suite,
        size,
        comparison,
        count(*) as n_seeds,
        avg(share_chaotic) as share_chaotic,
        avg(share_transition) as share_transition,
        avg(share_stable) as share_stable,
        avg(share_unclassified) as share_unclassified

    from per_seed
    group by suite, size, comparison

),

over_checkpoints as (

    select
        suite,
        size,
        comparison,
        max(n_params) as n_params,
        max(gap) as gap,
        count(*) as n_checkpoints,
        count(*) filter (where all_seeds_agree) as n_checkpoints_agree

    from agreement
    group by suite, size, comparison

),

final as (

    select
        over_checkpoints.suite,
        over_checkpoints.size,
        over_checkpoints.n_params,
        over_checkpoints.comparison,
        over_checkpoints.gap,
        over_seeds.n_seeds,
        over_checkpoints.n_checkpoints,
        over_seeds.share_chaotic,
        over_seeds.share_transition,
        over_seeds.share_stable,
        over_seeds.share_unclassified,
        over_checkpoints.n_checkpoints_agree,
        over_checkpoints.n_checkpoints_agree / over_checkpoints.n_checkpoints as share_all_agree

    from over_checkpoints
    inner join over_seeds
        on over_checkpoints.suite = over_seeds.suite
        and over_checkpoints.size = over_seeds.size
        and over_checkpoints.comparison = over_seeds.comparison

)

select * from final
order by suite, n_params, comparison
