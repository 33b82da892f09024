-- How far the seeds' fingerprint regimes agree at each checkpoint of a measure (McEntire 2026:
-- "cross-seed regime agreement"): one row per (suite, size, comparison, step) with the seeds
-- that take part in the measure there. The first checkpoint of a measure has no regime.

with similarity as (

    select * from {{ ref('int_fingerprint_similarity') }}

),

over_seeds as (

    select
        suite,
        size,
        comparison,
        step,
        max(n_params) as n_params,
        max(gap) as gap,
        count(*) as n_seeds,
        count(regime) as n_seeds_with_regime,
        count(distinct regime) as n_regimes

    from similarity
    group by suite, size, comparison, step

),

regime_counts as (

    select
        suite,
        size,
        comparison,
        step,
        regime,
        count(*) as n_seeds_in_regime

    from similarity
    where regime is not null
    group by suite, size, comparison, step, regime

),

modal_regimes as (

    select
        suite,
        size,
        comparison,
        step,
        max(n_seeds_in_regime) as n_seeds_in_modal_regime

    from regime_counts
    group by suite, size, comparison, step

),

final as (

    select
        over_seeds.suite,
        over_seeds.size,
        over_seeds.comparison,
        over_seeds.step,
        over_seeds.n_params,
        over_seeds.gap,
        over_seeds.n_seeds,
        over_seeds.n_seeds_with_regime,
        over_seeds.n_regimes,
        -- over every seed of the checkpoint: a seed with no regime is in no regime's count
        modal_regimes.n_seeds_in_modal_regime / over_seeds.n_seeds as modal_regime_share,
        case
            when over_seeds.n_seeds_with_regime = 0 then null
            else over_seeds.n_regimes = 1 and over_seeds.n_seeds_with_regime = over_seeds.n_seeds
        end as all_seeds_agree

    from over_seeds
    left join modal_regimes
        on over_seeds.suite = modal_regimes.suite
        and over_seeds.size = modal_regimes.size
        and over_seeds.comparison = modal_regimes.comparison
        and over_seeds.step = modal_regimes.step

)

select * from final
