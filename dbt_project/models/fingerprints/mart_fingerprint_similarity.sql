-- Activation-fingerprint similarity over training (McEntire 2026, eqs. 1-2): per seed,
-- checkpoint and measure, the cosine similarity of the seed's fingerprint to its own at
-- prev_step and the regime it falls in. comparison says which measure: fixed_gap (prev_step =
-- step - the configured gap, the paper's) or log_spaced (the previous checkpoint of the
-- log-spaced schedule); tau_low and tau_high are the thresholds the regime was set by (dbt vars
-- regime_tau_low / regime_tau_high, or the suite's own in regime_suites). A small table rebuilt
-- whole: one row per (suite, size, step, seed, comparison).

with similarity as (

    select * from {{ ref('int_fingerprint_similarity') }}

),

final as (

    select
        suite,
        size,
        step,
        seed,
        comparison,
        n_params,
        prev_step,
        similarity_prev,
        regime,
        tau_low,
        tau_high

    from similarity

)

select * from final
order by suite, n_params, comparison, seed, step
