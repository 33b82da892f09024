-- When the seeds enter each fingerprint regime (McEntire 2026, Table 2: the mean, the sample
-- standard deviation and the range across seeds of the step each first enters it, the paper's
-- "± steps" of synchronisation): per size, measure (comparison: fixed_gap or log_spaced) and
-- regime, how many of the size's seeds ever reach it and the spread of the step they first do;
-- and how many end training in it, with the spread of the step from which they stay
-- (int_regime_entry.settled_step). One row per (suite, size, comparison, regime) for each
-- measure the size has, every regime listed (n_seeds_entered 0 when none reached it).

with similarity as (

    select * from {{ ref('int_fingerprint_similarity') }}

),

entries as (

    select * from {{ ref('int_regime_entry') }}

),

sizes as (

    select
        suite,
        size,
        comparison,
        max(n_params) as n_params,
        max(gap) as gap,
        count(distinct seed) as n_seeds

    from similarity
    group by suite, size, comparison

),

regimes as (

    select * from (values ('chaotic'), ('transition'), ('stable')) as regimes (regime)

),

over_seeds as (

    select
        suite,
        size,
        comparison,
        regime,
        count(*) as n_seeds_entered,
        avg(first_step) as mean_first_step,
        stddev_samp(first_step) as std_first_step,
        min(first_step) as min_first_step,
        max(first_step) as max_first_step,
        count(settled_step) as n_seeds_settled,
        avg(settled_step) as mean_settled_step,
        stddev_samp(settled_step) as std_settled_step

    from entries
    group by suite, size, comparison, regime

),

final as (

    select
        sizes.suite,
        sizes.size,
        sizes.n_params,
        sizes.comparison,
        sizes.gap,
        regimes.regime,
        sizes.n_seeds,
        coalesce(over_seeds.n_seeds_entered, 0) as n_seeds_entered,
        over_seeds.mean_first_step,
        over_seeds.std_first_step,
        over_seeds.min_first_step,
        over_seeds.max_first_step,
        coalesce(over_seeds.n_seeds_settled, 0) as n_seeds_settled,
        over_seeds.mean_settled_step,
        over_seeds.std_settled_step

    from sizes
    cross join regimes
    left join over_seeds
        on sizes.suite = over_seeds.suite
        and sizes.size = over_seeds.size
        and sizes.comparison = over_seeds.comparison
        and regimes.regime = over_seeds.regime

)

select * from final
order by suite, n_params, comparison, case regime when 'chaotic' then 1 when 'transition' then 2 else 3 end
