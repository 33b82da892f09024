-- When the seeds enter each fingerprint regime (McEntire 2026): per size and regime, how many
-- of the size's seeds ever reach it and the spread across them of the step they first do; and
-- how many end training in it, with the spread of the step from which they stay
-- (int_regime_entry.settled_step). One row per (suite, size, regime), every regime listed
-- (n_seeds_entered 0 when none reached it).

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
        max(n_params) as n_params,
        count(distinct seed) as n_seeds

    from similarity
    group by suite, size

),

regimes as (

    select * from (values ('chaotic'), ('transition'), ('stable')) as regimes (regime)

),

over_seeds as (

    select
        suite,
        size,
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
    group by suite, size, regime

),

final as (

    select
        sizes.suite,
        sizes.size,
        sizes.n_params,
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
        and regimes.regime = over_seeds.regime

)

select * from final
order by suite, n_params, case regime when 'chaotic' then 1 when 'transition' then 2 else 3 end
