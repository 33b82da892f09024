-- Agreement between seeds at the same checkpoint: the cosine similarity and the linear CKA of
-- their fingerprints over every unordered seed pair (the comparison McEntire 2026 names and
-- skips; int_fingerprint_seed_pairs says why the raw cosine alone misleads). How far their
-- regimes agree depends on the measure the regimes come from: int_regime_checkpoints, per
-- measure. One row per (suite, size, step) with fingerprints.

with seed_checkpoints as (

    -- every fingerprinted checkpoint of a seed is in one measure at least
    select distinct suite, size, step, seed, n_params from {{ ref('int_fingerprint_checkpoints') }}

),

seed_pairs as (

    select * from {{ ref('int_fingerprint_seed_pairs') }}

),

over_seeds as (

    select
        suite,
        size,
        step,
        max(n_params) as n_params,
        count(*) as n_seeds

    from seed_checkpoints
    group by suite, size, step

),

over_pairs as (

    select
        suite,
        size,
        step,
        count(*) as n_pairs,
        avg(similarity) as mean_similarity,
        min(similarity) as min_similarity,
        avg(cka) as mean_cka,
        min(cka) as min_cka

    from seed_pairs
    group by suite, size, step

),

final as (

    select
        over_seeds.suite,
        over_seeds.size,
        over_seeds.step,
        over_seeds.n_params,
        over_seeds.n_seeds,
        coalesce(over_pairs.n_pairs, 0) as n_pairs,
        over_pairs.mean_similarity,
        over_pairs.min_similarity,
        over_pairs.mean_cka,
        over_pairs.min_cka

    from over_seeds
    left join over_pairs
        on over_seeds.suite = over_pairs.suite
        and over_seeds.size = over_pairs.size
        and over_seeds.step = over_pairs.step

)

select * from final
order by suite, n_params, step
