-- The share of checkpoints at which every seed is in the same fingerprint regime (McEntire
-- 2026), per size: over the checkpoints where at least one seed has a regime (a seed's first
-- checkpoint has none). One row per (suite, size) with fingerprints.

with cross_seed as (

    select * from {{ ref('mart_fingerprint_cross_seed') }}

),

per_size as (

    select
        suite,
        size,
        max(n_params) as n_params,
        count(all_seeds_agree) as n_checkpoints,
        -- avg skips the NULLs: checkpoints where no seed has a regime
        avg(cast(all_seeds_agree as double)) as share_all_agree

    from cross_seed
    group by suite, size

)

select * from per_size
order by suite, n_params
