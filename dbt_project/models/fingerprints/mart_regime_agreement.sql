-- The share of checkpoints at which every seed is in the same fingerprint regime (McEntire
-- 2026), per size and measure (comparison: fixed_gap or log_spaced): over the checkpoints where
-- at least one seed has a regime (the first checkpoint of a measure has none; Table 3 in
-- mart_mcentire_table3_regime_share counts it, as the paper does). One row per (suite, size,
-- comparison) with fingerprints.

with agreement as (

    select * from {{ ref('int_regime_checkpoints') }}

),

per_size as (

    select
        suite,
        size,
        comparison,
        max(n_params) as n_params,
        max(gap) as gap,
        count(all_seeds_agree) as n_checkpoints,
        -- avg skips the NULLs: checkpoints where no seed has a regime
        avg(cast(all_seeds_agree as double)) as share_all_agree

    from agreement
    group by suite, size, comparison

)

select * from per_size
order by suite, n_params, comparison
