-- Agreement between seeds at the same checkpoint: the cosine similarity and the linear CKA of
-- their fingerprints over every unordered seed pair (the comparison McEntire 2026 names and
-- skips; int_fingerprint_seed_pairs says why the raw cosine alone misleads), and how far
-- their regimes agree (the paper's share of checkpoints where every seed is in one regime).
-- One row per (suite, size, step) with fingerprints.

with similarity as (

    select * from {{ ref('int_fingerprint_similarity') }}

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
        count(*) as n_seeds,
        count(regime) as n_seeds_with_regime,
        count(distinct regime) as n_regimes

    from similarity
    group by suite, size, step

),

regime_counts as (

    select
        suite,
        size,
        step,
        regime,
        count(*) as n_seeds_in_regime

    from similarity
    where regime is not null
    group by suite, size, step, regime

),

modal_regimes as (

    select
        suite,
        size,
        step,
        max(n_seeds_in_regime) as n_seeds_in_modal_regime

    from regime_counts
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
        over_pairs.min_cka,
        over_seeds.n_regimes,
        -- over every seed with a fingerprint: a seed with no regime is in no regime's count
        modal_regimes.n_seeds_in_modal_regime / over_seeds.n_seeds as modal_regime_share,
        case
            when over_seeds.n_seeds_with_regime = 0 then null
            else over_seeds.n_regimes = 1 and over_seeds.n_seeds_with_regime = over_seeds.n_seeds
        end as all_seeds_agree

    from over_seeds
    left join over_pairs
        on over_seeds.suite = over_pairs.suite
        and over_seeds.size = over_pairs.size
        and over_seeds.step = over_pairs.step
    left join modal_regimes
        on over_seeds.suite = modal_regimes.suite
        and over_seeds.size = modal_regimes.size
        and over_seeds.step = modal_regimes.step

)

select * from final
order by suite, n_params, step
