-- McEntire (2026), Table 4: the mean cosine similarity of a fingerprint to the one it is
-- compared with, by regime, per size and measure (comparison: fixed_gap, the paper's, or
-- log_spaced). As the paper's section 3.2 says, computed per seed, then averaged: each seed's
-- mean over its checkpoints in the regime, then the mean across the seeds that have any
-- (seed_std_similarity: their sample standard deviation). One row per (suite, size,
-- comparison, regime) for each measure the size has, every regime listed (n_seeds 0 and NULL
-- similarity when no seed is ever in it).

with similarity as (

    select * from {{ ref('int_fingerprint_similarity') }}

),

measures as (

    select
        suite,
        size,
        comparison,
        max(n_params) as n_params,
        max(gap) as gap

    from similarity
    group by suite, size, comparison

),

regimes as (

    select * from (values ('chaotic'), ('transition'), ('stable')) as regimes (regime)

),

per_seed as (

    select
        suite,
        size,
        comparison,
        regime,
        seed,
        count(*) as n_checkpoints,
        avg(similarity_prev) as mean_similarity

    from similarity
    where regime is not null
    group by suite, size, comparison, regime, seed

),

over_seeds as (

    select
        suite,
        size,
        comparison,
        regime,
        count(*) as n_seeds,
        cast(sum(n_checkpoints) as bigint) as n_checkpoints,
        avg(mean_similarity) as mean_similarity,
        stddev_samp(mean_similarity) as seed_std_similarity

    from per_seed
    group by suite, size, comparison, regime

),

final as (

    select
        measures.suite,
        measures.size,
        measures.n_params,
        measures.comparison,
        measures.gap,
        regimes.regime,
        coalesce(over_seeds.n_seeds, 0) as n_seeds,
        coalesce(over_seeds.n_checkpoints, 0) as n_checkpoints,
        over_seeds.mean_similarity,
        over_seeds.seed_std_similarity

    from measures
    cross join regimes
    left join over_seeds
        on measures.suite = over_seeds.suite
        and measures.size = over_seeds.size
        and measures.comparison = over_seeds.comparison
        and regimes.regime = over_seeds.regime

)

select * from final
order by suite, n_params, comparison, case regime when 'chaotic' then 1 when 'transition' then 2 else 3 end
