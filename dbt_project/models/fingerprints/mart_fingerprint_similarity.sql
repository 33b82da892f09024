-- Activation-fingerprint similarity over training (McEntire 2026): per seed and checkpoint,
-- the cosine similarity of its fingerprint to the same seed's previous fingerprinted
-- checkpoint and the regime it falls in (chaotic / transition / stable by the dbt vars
-- regime_chaotic_below and regime_stable_from). A small table rebuilt whole: one row per
-- (suite, size, step, seed).

with similarity as (

    select * from {{ ref('int_fingerprint_similarity') }}

),

final as (

    select
        suite,
        size,
        step,
        seed,
        n_params,
        prev_step,
        similarity_prev,
        regime

    from similarity

)

select * from final
order by suite, n_params, seed, step
